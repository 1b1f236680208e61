"""Stable Flower node ids (uint64) derived from datasite emails.

Every participant computes the same id from the shared config, with no registry and
no coordination: the first 8 bytes (big endian) of SHA-256 of the email, lower-cased;
under the ``syft-flwr-0.5`` wire profile, upstream's ``zlib.crc32`` of the email.
A collision between two datasites, or with an id Flower reserves (0, and the
SuperLink's own id), is refused with a clear error instead of silently mixing two
datasites' replies.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

from flwr.common.constant import SUPERLINK_NODE_ID

from syftflwr.errors import ConfigError
from syftflwr.names import validate_email

RESERVED_NODE_IDS = frozenset({0, SUPERLINK_NODE_ID})
"""0 means "unset" in Flower's metadata; SUPERLINK_NODE_ID is the aggregator's node."""


def node_id_for(email: str) -> int:
    """The uint64 node id of ``email`` (same on every machine, every run)."""
    validate_email(email)
    return int.from_bytes(hashlib.sha256(email.lower().encode()).digest()[:8], "big")


def syftflwr05_node_id(email: str) -> int:
    """syft-flwr 0.5's datasite node id: ``zlib.crc32(email.encode())`` (its ``str_to_int``)."""
    return zlib.crc32(validate_email(email).encode())


def node_ids_for(emails: Iterable[str], profile: str = "native") -> dict[str, int]:
    """Map each datasite email to its node id under the wire ``profile`` (syft-flwr 0.5
    uses CRC-32 ids), refusing duplicates and collisions."""
    id_of = syftflwr05_node_id if profile == "syft-flwr-0.5" else node_id_for
    by_id: dict[int, str] = {}
    result: dict[str, int] = {}
    for email in emails:
        node_id = id_of(email)
        if email.lower() in (e.lower() for e in result):
            raise ConfigError(
                f"datasite {email} is listed twice",
                key="datasites",
                fix="list each datasite email once in [tool.syftflwr] datasites",
            )
        if node_id in RESERVED_NODE_IDS:
            raise ConfigError(
                f"datasite {email} hashes to node id {node_id}, which Flower reserves",
                key="datasites",
                fix="use another email address for this datasite",
            )
        if node_id in by_id:
            raise ConfigError(
                f"datasites {by_id[node_id]} and {email} hash to the same node id {node_id}",
                key="datasites",
                fix="use another email address for one of them",
            )
        by_id[node_id] = email
        result[email] = node_id
    return result
