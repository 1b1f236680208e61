"""What an instruction *says*, as a hash: how a resumed aggregator recognises the
instructions its stopped run already sent.

The fingerprint covers the content (every record, every array's dtype/shape/stype and
bytes), ``message_type``, ``group_id`` and the destination node — never the message id,
run id, timestamps or TTL, which differ on every run. Two instructions with the same
fingerprint ask the datasite for exactly the same work, so one's reply is a valid reply
to the other.

It does not depend on Flower's protobuf encoding (records are hashed value by value), so
it is stable across Flower versions and processes.

Next to the fingerprint, :func:`describe_instruction` gives a short digest per part (the
destination, each config/metric entry, each array record), journaled with it: when a
resumed run sends something else, the difference names the part that changed, which
says why (another model, another config value, another datasite).
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord


class ArrayDigests:
    """Digests of array payloads already hashed: one round sends the same global model
    to every datasite, and hashing it once per round instead of once per datasite keeps
    the cost at one pass over the model. Holds a reference to each payload so its
    ``id`` cannot be reused while cached; :meth:`clear` between rounds."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[bytes, bytes]] = {}

    def digest(self, data: bytes) -> bytes:
        hit = self._known.get(id(data))
        if hit is not None and hit[0] is data:
            return hit[1]
        value = hashlib.sha256(data).digest()
        self._known[id(data)] = (data, value)
        return value

    def clear(self) -> None:
        self._known.clear()


def _scalar(value: Any) -> bytes:
    # The type name keeps 1, 1.0 and True apart; repr() of a float is exact.
    if isinstance(value, bytes):
        return b"bytes:" + hashlib.sha256(value).digest()
    if isinstance(value, list):
        return b"list:[" + b",".join(_scalar(v) for v in value) + b"]"
    return f"{type(value).__name__}:{value!r}".encode()


def _frame(h: Any, tag: bytes, data: bytes) -> None:
    """Length-prefixed, so no two different sequences of parts hash alike."""
    h.update(tag)
    h.update(struct.pack(">Q", len(data)))
    h.update(data)


def _array(h: Any, name: str, array: Array, digests: ArrayDigests) -> None:
    _frame(h, b"A", name.encode())
    _frame(h, b"t", f"{array.dtype}|{list(array.shape)}|{array.stype}".encode())
    _frame(h, b"d", digests.digest(bytes(array.data)))


PART_DIGEST_CHARS = 16
"""Hex characters kept per part digest: enough to tell parts apart, small to journal."""


def describe_instruction(
    message: Message, digests: ArrayDigests | None = None
) -> tuple[str, dict[str, str]]:
    """The fingerprint of ``message`` and a short digest of each of its parts (keys
    ``type``, ``group``, ``dst``, ``arrays:<record>``, ``config:<record>/<entry>``,
    ``metrics:<record>/<entry>``), in one pass over its arrays."""
    digests = digests if digests is not None else ArrayDigests()
    md = message.metadata
    h = hashlib.sha256()
    parts: dict[str, str] = {}

    def part(name: str, data: bytes) -> None:
        parts[name] = hashlib.sha256(data).hexdigest()[:PART_DIGEST_CHARS]

    _frame(h, b"v", b"syftflwr-instruction-1")
    for tag, name, value in ((b"type", "type", md.message_type), (b"group", "group", md.group_id),
                             (b"dst", "dst", str(md.dst_node_id))):  # fmt: skip
        _frame(h, tag, value.encode())
        part(name, value.encode())
    if message.has_content():
        for key in sorted(message.content.keys()):
            record = message.content[key]
            if isinstance(record, ArrayRecord):
                _frame(h, b"R:arrays", key.encode())
                record_hash = hashlib.sha256()
                for name, array in record.items():  # array order is meaningful: keep it
                    _array(h, name, array, digests)
                    _array(record_hash, name, array, digests)
                parts[f"arrays:{key}"] = record_hash.hexdigest()[:PART_DIGEST_CHARS]
            elif isinstance(record, MetricRecord | ConfigRecord):
                kind = "metrics" if isinstance(record, MetricRecord) else "config"
                _frame(h, f"R:{kind}".encode(), key.encode())
                for name in sorted(record.keys()):
                    scalar = _scalar(record[name])
                    _frame(h, b"k", name.encode())
                    _frame(h, b"s", scalar)
                    part(f"{kind}:{key}/{name}", scalar)
            else:
                raise TypeError(f"unsupported record type {type(record).__name__} under {key!r}")
    return h.hexdigest(), parts


def instruction_fingerprint(message: Message, digests: ArrayDigests | None = None) -> str:
    """A hex SHA-256 of what ``message`` asks for (see the module docstring)."""
    return describe_instruction(message, digests)[0]


def differing_parts(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The parts (keys of :func:`describe_instruction`) present in only one, or different."""
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
