"""The ``syft-flwr-0.5`` wire profile: the bytes OpenMined's syft-flwr 0.5 writes, so a
syftflwr participant can work with syft-flwr participants (docs/profiles.md has the
sources this was read from).

Here, the **P2P files** of syft-flwr's Google Drive transport (used by the file
mailboxes: gdrive, fsspec-local): a ``.request`` holds the bare Flower ``Message``
protobuf, a ``.response`` the reply's protobuf or, when the datasite failed, the UTF-8
JSON ``{"error": text, "timestamp": iso-8601}``. No header: id, sender, recipient, app
and endpoint come from the file's name and folder. :class:`P2PProfile`. (syft-flwr's
SyftBox files, syft-rpc JSON, are the syftbox plugin's: ``syftflwr_syftbox.syftflwr05``.)

The app's folder is ``flwr/{app_name}``, the endpoint ``messages``,
datasite node ids are ``zlib.crc32(email)`` (:mod:`syftflwr.flower.node_ids`) and the
aggregator's is 1, and nothing is chunked — a message above the storage's
``max_object_size`` is refused (:func:`syftflwr.mailbox.profile.refuse_oversized`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer, Request, Response
from syftflwr.errors import MalformedMessageError
from syftflwr.frame import read_varint
from syftflwr.mailbox.layout import ObjectKind, Route
from syftflwr.names import validate_app_name, validate_message_id

NAME = "syft-flwr-0.5"
APP_FOLDER_PREFIX = "flwr"
"""syft-flwr runs every app under ``flwr/{app_name}`` (``setup_client`` in its utils)."""
ENDPOINT = "messages"
_MAX_ERROR_JSON = 1 << 20


def wire_app(app: str) -> str:
    return f"{APP_FOLDER_PREFIX}/{validate_app_name(app, profile=NAME)}"


# --------------------------------------------------------------------------- P2P files
def _error_json(text: str) -> bytes:
    return json.dumps({"error": text, "timestamp": datetime.now(UTC).isoformat()}).encode()


def _error_text(data: Buffer) -> str | None:
    """The ``error`` of a syft-flwr error response, None if ``data`` is not one. A Flower
    ``Message`` protobuf never starts with ``{`` (field 15, a deprecated group)."""
    view = memoryview(data).cast("B")
    if not view.nbytes or view[0] != ord("{") or view.nbytes > _MAX_ERROR_JSON:
        return None
    try:
        parsed = json.loads(bytes(view))
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])
    return None


def _walk_protobuf(view: memoryview) -> bool | None:
    """Walk the top-level fields of a protobuf: True if they end exactly at the end of
    ``view``, False if the last one runs past it (cut short), None if it is not a
    protobuf at all. A few fields per Flower ``Message``: cheap at any size."""
    pos, end = 0, view.nbytes
    try:
        while pos < end:
            key, pos = read_varint(view, pos, end)
            field, wire = key >> 3, key & 7
            if field == 0:
                return None
            if wire == 0:
                _, pos = read_varint(view, pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 2:
                size, pos = read_varint(view, pos, end)
                pos += size
            elif wire == 5:
                pos += 4
            else:  # groups (3, 4) are not in Flower's schema; 6, 7 do not exist
                return None
    except ValueError:  # longer than any varint
        return None
    except IndexError:  # a varint runs past the end
        return False
    return pos == end


def _check_protobuf(data: Buffer, *, source: str) -> None:
    """Refuse bytes that cannot be a whole Flower ``Message``: a reader that races a
    non-atomic writer sees a cut-short file, which must be read again, not handed on."""
    state = _walk_protobuf(memoryview(data).cast("B"))
    if state is None:
        raise MalformedMessageError(f"{source}: not a Flower Message protobuf")
    if not state:
        raise MalformedMessageError(f"{source}: a Flower Message protobuf cut short")


class P2PProfile:
    """syft-flwr 0.5's P2P files: bare protobuf requests and responses, JSON errors."""

    name = NAME
    chunking = False

    def wire_app(self, app: str) -> str:
        return wire_app(app)

    def encode(self, envelope: Request | Response) -> list[Buffer]:
        if isinstance(envelope, Response) and not envelope.ok:
            return [_error_json(envelope.error_text)]
        return [envelope.body]

    def decode(
        self,
        data: Buffer,
        *,
        source: str,
        kind: ObjectKind,
        route: Route,
        message_id: str,
        app: str,
    ) -> Request | Response:
        if not memoryview(data).nbytes:
            raise MalformedMessageError(f"{source}: empty file, not a syft-flwr message")
        common: dict[str, Any] = {
            "id": validate_message_id(message_id),
            "sender": route.sender,
            "recipient": route.recipient,
            "app": app,
            "endpoint": route.endpoint,
            "created_at": time.time(),
        }
        if kind is ObjectKind.REQUEST:
            _check_protobuf(data, source=source)
            request = Request(body=data, **common)
            request.validate()
            return request
        if kind is not ObjectKind.RESPONSE:
            raise MalformedMessageError(f"{source}: a {kind.value} is not a message")
        text = _error_text(data)
        if text is not None:
            response = Response(body=text.encode("utf-8", "replace"), status="error", **common)
        else:
            _check_protobuf(data, source=source)
            response = Response(body=data, **common)
        response.validate()
        return response

    def incomplete(self, data: Buffer) -> bool:
        """Empty, a protobuf whose last field runs past the end, or error JSON cut short.
        (A protobuf has no overall length: one cut exactly between two fields looks
        whole; upstream's Drive uploads appear atomically, so only local writers race.)"""
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return True
        if view[0] == ord("{"):
            return _error_text(view) is None and view[view.nbytes - 1] != ord("}")
        return _walk_protobuf(view) is False

    def check_head(self, head: Buffer, *, source: str) -> int | None:
        """Error JSON, or the start of a protobuf (its fields as far as ``head`` goes);
        a protobuf declares no overall size."""
        view = memoryview(head).cast("B")
        if view.nbytes and view[0] != ord("{") and _walk_protobuf(view) is None:
            raise MalformedMessageError(f"{source}: not a Flower Message protobuf")
        return None


P2P = P2PProfile()


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
