"""A stand-in for syft-flwr 0.5's P2P file format, written from its source — NOT syft-flwr
itself (0.5 is not on PyPI, so it cannot be installed here) and deliberately independent
of syftflwr's codecs, so the tests compare two implementations rather than one with
itself.

What it follows (OpenMined/syft-flwr, release 0.5):

* ``syft_flwr/serde.py``: a message on the wire is ``message_to_proto(msg).SerializeToString()``
  and is read back with ``message_from_proto(ProtoMessage.FromString(data))``.
* ``syft_flwr/gdrive_io.py`` + syft-client's ``GdriveInboxOutBoxFolder``: a file lives at
  ``SyftBox/syft_outbox_inbox_{sender}_to_{recipient}/{app_name}/rpc/{endpoint}/{name}``;
  the sender writes only into its own outbox.
* ``syft_flwr/rpc/p2p_file_rpc.py``: a request is ``{uuid4 with hyphens}.request``; its reply
  is ``{same}.response`` in the reverse folder.
* ``syft_flwr/events/p2p_fle_events.py``: a failed handler's reply is the UTF-8 JSON
  ``json.dumps({"error": str(e), "timestamp": datetime.now(timezone.utc).isoformat()})``.
* ``syft_flwr/utils.py``: ``app_name`` on the wire is ``flwr/{app_name}``; node ids are
  ``zlib.crc32(email.encode())``; the aggregator's node id is 1; the endpoint is ``messages``.
* ``syft_flwr/fl_orchestrator/flower_client.py``: a SYSTEM message whose config ``action``
  is ``"stop"`` (or whose group_id is ``"final"``) stops the datasite, with no reply;
  a request that cannot be parsed gets no reply either.
"""

from __future__ import annotations

import json
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path

from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

OUTBOX = "syft_outbox_inbox"
ENDPOINT = "messages"
AGGREGATOR_NODE_ID = 1


def to_bytes(message: object) -> bytes:
    return message_to_proto(message).SerializeToString()  # type: ignore[arg-type]


def from_bytes(data: bytes) -> object:
    proto = ProtoMessage()
    proto.ParseFromString(data)
    return message_from_proto(proto)


def error_bytes(text: str, when: datetime | None = None) -> bytes:
    stamp = (when or datetime.now(timezone.utc)).isoformat()  # noqa: UP017 - upstream's spelling
    return json.dumps({"error": text, "timestamp": stamp}).encode("utf-8")


def str_to_int(email: str) -> int:
    return zlib.crc32(email.encode())


def app_folder(app_name: str) -> str:
    return f"flwr/{app_name}"


def endpoint_dir(root: Path, sender: str, recipient: str, app_name: str) -> Path:
    return root / f"{OUTBOX}_{sender}_to_{recipient}" / app_folder(app_name) / "rpc" / ENDPOINT


def new_future_id() -> str:
    return str(uuid.uuid4())


def inbox_senders(root: Path, me: str) -> list[str]:
    """``list_inbox_folders``: folders named ``syft_outbox_inbox_*_to_{me}``."""
    found = []
    for folder in root.iterdir() if root.is_dir() else ():
        name = folder.name
        if name.startswith(f"{OUTBOX}_") and name.endswith(f"_to_{me}") and folder.is_dir():
            found.append(name[len(OUTBOX) + 1 : -len(f"_to_{me}")])
    return found
