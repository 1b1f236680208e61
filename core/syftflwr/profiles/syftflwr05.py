"""The ``syft-flwr-0.5`` wire profile: the bytes OpenMined's syft-flwr 0.5 writes, so a
syftflwr participant can work with syft-flwr participants (docs/profiles.md has the
sources this was read from).

Two file formats, one per upstream transport:

* **P2P files** (syft-flwr's Google Drive transport; used here by gdrive and
  fsspec-local): a ``.request`` holds the bare Flower ``Message`` protobuf, a
  ``.response`` the reply's protobuf or, when the datasite failed, the UTF-8 JSON
  ``{"error": text, "timestamp": iso-8601}``. No header: id, sender, recipient, app and
  endpoint come from the file's name and folder. :class:`P2PProfile`.
* **syft-rpc JSON** (syft-flwr's SyftBox transport, through syft-rpc/syft-event):
  ``SyftRequest``/``SyftResponse`` objects as JSON, the body URL-safe base64 (it holds
  the protobuf, or syft-crypto's encrypted payload). :class:`SyftRpcProfile`, and the
  functions below it for a plugin that lays the files out itself.

Common to both: the app's folder is ``flwr/{app_name}``, the endpoint ``messages``,
datasite node ids are ``zlib.crc32(email)`` (:mod:`syftflwr.flower.node_ids`) and the
aggregator's is 1, and nothing is chunked — a message above the storage's
``max_object_size`` is refused (:func:`syftflwr.profiles.base.refuse_oversized`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer, Request, Response
from syftflwr.errors import MalformedMessageError
from syftflwr.frame import read_varint
from syftflwr.mailbox.layout import ObjectKind, Route
from syftflwr.names import (
    validate_app_name,
    validate_email,
    validate_identifier,
    validate_message_id,
)

NAME = "syft-flwr-0.5"
APP_FOLDER_PREFIX = "flwr"
"""syft-flwr runs every app under ``flwr/{app_name}`` (``setup_client`` in its utils)."""
ENDPOINT = "messages"
AGGREGATOR_NODE_ID = 1
"""syft-flwr's ``SyftGrid`` node id (what a SuperLink uses too)."""
DEFAULT_EXPIRY = 15 * 60.0
"""syft-rpc's ``rpc.send`` default expiry (``"15m"``), used when a request has no TTL."""
_MAX_ERROR_JSON = 1 << 20


def wire_app(app: str) -> str:
    return f"{APP_FOLDER_PREFIX}/{validate_app_name(app, profile=NAME)}"


def logical_app(folder: str, *, source: str) -> str:
    """The app name of a ``flwr/{app}`` folder."""
    prefix, sep, app = folder.partition("/")
    if prefix != APP_FOLDER_PREFIX or not sep:
        raise MalformedMessageError(f"{source}: app {folder!r} is not a syft-flwr app folder")
    return validate_app_name(app, profile=NAME)


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


# --------------------------------------------------------------------------- syft-rpc JSON
def syft_file_id(message_id: str) -> str:
    """The file stem syft-rpc uses for ``message_id``: its UUID with hyphens
    (syft-event names a reply after ``str(request.id)``)."""
    try:
        return str(uuid.UUID(validate_message_id(message_id)))
    except ValueError:
        raise MalformedMessageError(
            f"message id {message_id!r} is not a UUID; syft-rpc needs UUID ids"
        ) from None


def syft_url(recipient: str, app: str, endpoint: str) -> str:
    """``syft://{recipient}/app_data/flwr/{app}/rpc/{endpoint}`` (``rpc.make_url``)."""
    validate_identifier(endpoint, "endpoint")
    return f"syft://{validate_email(recipient)}/app_data/{wire_app(app)}/rpc/{endpoint}"


def parse_syft_url(url: str, *, source: str) -> tuple[str, str, str]:
    """``(host, app, endpoint)`` of a syft-flwr RPC URL; anything else is malformed."""
    rest = url.removeprefix("syft://")
    host, _, path = rest.partition("/")
    parts = path.split("/")
    if rest == url or len(parts) != 5 or parts[0] != "app_data" or parts[3] != "rpc":
        raise MalformedMessageError(f"{source}: {url!r} is not a syft-flwr RPC URL")
    app = logical_app(f"{parts[1]}/{parts[2]}", source=source)
    return validate_email(host), app, validate_identifier(parts[4], "endpoint")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _ts(value: object, *, source: str, name: str) -> float:
    if not isinstance(value, str):
        raise MalformedMessageError(f"{source}: {name} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedMessageError(f"{source}: {name} {value!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _b64(body: Buffer) -> str | None:
    view = memoryview(body)
    return base64.urlsafe_b64encode(view).decode("ascii") if view.nbytes else None


def _unb64(value: object, *, source: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise MalformedMessageError(f"{source}: body is not base64 text")
    try:
        return base64.urlsafe_b64decode(value.translate(str.maketrans("+/", "-_")))
    except (binascii.Error, ValueError):
        raise MalformedMessageError(f"{source}: body is not valid base64") from None


def encode_syft_request(request: Request) -> bytes:
    """A syft-rpc ``SyftRequest`` (method GET, as ``rpc.send`` defaults) as JSON."""
    created = request.created_at
    expires = request.expires_at if request.expires_at is not None else created + DEFAULT_EXPIRY
    return json.dumps(
        {
            "id": syft_file_id(request.id),
            "sender": request.sender,
            "url": syft_url(request.recipient, request.app, request.endpoint),
            "body": _b64(request.body),
            "headers": dict(request.headers),
            "created": _iso(created),
            "expires": _iso(expires),
            "method": "GET",
        },
        separators=(",", ":"),
    ).encode()


def encode_syft_response(response: Response) -> bytes:
    """A syft-rpc ``SyftResponse`` as JSON: status 200, or 500 with the error text (what
    syft-event answers when a handler raises)."""
    now = time.time()
    return json.dumps(
        {
            "id": syft_file_id(response.id),
            "sender": response.sender,
            "url": syft_url(response.sender, response.app, response.endpoint),
            "body": _b64(response.body),
            "headers": dict(response.headers),
            "created": _iso(now),
            "expires": _iso(response.expires_at or now + timedelta(days=1).total_seconds()),
            "status_code": 200 if response.ok else 500,
        },
        separators=(",", ":"),
    ).encode()


def _load_json(data: Buffer, *, source: str) -> dict[str, Any]:
    try:
        parsed = json.loads(bytes(memoryview(data)))
    except (ValueError, RecursionError):
        raise MalformedMessageError(f"{source}: not a syft-rpc JSON message") from None
    if not isinstance(parsed, dict):
        raise MalformedMessageError(f"{source}: not a syft-rpc JSON object")
    return parsed


def _uuid_hex(value: object, *, source: str) -> str:
    try:
        return uuid.UUID(str(value)).hex
    except ValueError:
        raise MalformedMessageError(f"{source}: id {value!r} is not a UUID") from None


def decode_syft_request(data: Buffer, *, source: str = "request") -> Request:
    """A ``SyftRequest`` as an envelope (id as 32 hex digits, recipient = the URL's host)."""
    fields = _load_json(data, source=source)
    host, app, endpoint = parse_syft_url(str(fields.get("url", "")), source=source)
    headers = fields.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise MalformedMessageError(f"{source}: 'headers' must map strings to strings")
    request = Request(
        id=_uuid_hex(fields.get("id"), source=source),
        sender=str(fields.get("sender", "")),
        recipient=host,
        app=app,
        endpoint=endpoint,
        body=_unb64(fields.get("body"), source=source),
        created_at=_ts(fields.get("created"), source=source, name="created"),
        expires_at=_ts(fields.get("expires"), source=source, name="expires"),
        headers=headers,
    )
    request.validate()
    return request


def decode_syft_response(data: Buffer, *, recipient: str, source: str = "response") -> Response:
    """A ``SyftResponse`` as an envelope; a status of 400 or more is an ``error``
    response whose body is the text syft-event wrote. ``recipient``: the requester
    (a syft-rpc response does not name it)."""
    fields = _load_json(data, source=source)
    _, app, endpoint = parse_syft_url(str(fields.get("url", "")), source=source)
    status = fields.get("status_code", 200)
    if not isinstance(status, int) or isinstance(status, bool):
        raise MalformedMessageError(f"{source}: status_code {status!r} is not an integer")
    expires = fields.get("expires")
    response = Response(
        id=_uuid_hex(fields.get("id"), source=source),
        sender=str(fields.get("sender", "")),
        recipient=recipient,
        app=app,
        endpoint=endpoint,
        body=_unb64(fields.get("body"), source=source),
        created_at=_ts(fields.get("created"), source=source, name="created"),
        expires_at=None if expires is None else _ts(expires, source=source, name="expires"),
        status="ok" if status < 400 else "error",
    )
    response.validate()
    return response


class SyftRpcProfile:
    """syft-flwr 0.5's SyftBox files (syft-rpc JSON) through the mailbox roles.

    The mailbox's layout is not SyftBox's (syft-rpc writes a request into the
    recipient's datasite, ``app_data/flwr/{app}/rpc/{endpoint}/{sender}/{uuid}.request``,
    and the reply next to it); a plugin using this codec lays the files out itself and
    names them with :func:`syft_file_id`.
    """

    name = NAME
    chunking = False

    def wire_app(self, app: str) -> str:
        return wire_app(app)

    def encode(self, envelope: Request | Response) -> list[Buffer]:
        if isinstance(envelope, Request):
            return [encode_syft_request(envelope)]
        return [encode_syft_response(envelope)]

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
        if kind is ObjectKind.REQUEST:
            return decode_syft_request(data, source=source)
        if kind is ObjectKind.RESPONSE:
            return decode_syft_response(data, recipient=route.recipient, source=source)
        raise MalformedMessageError(f"{source}: a {kind.value} is not a message")

    def incomplete(self, data: Buffer) -> bool:
        """Empty, or JSON cut short (a SyftBox client writes downloads in place)."""
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return True
        if view[0] != ord("{"):
            return False
        try:
            text = bytes(view).decode("utf-8")
        except UnicodeDecodeError as exc:  # cut inside a character: only at the very end
            return exc.start >= view.nbytes - 3 and exc.reason == "unexpected end of data"
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:  # cut short: the parser wanted more at the end
            return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
        except (ValueError, RecursionError):
            return False
        return False

    def check_head(self, head: Buffer, *, source: str) -> int | None:
        """A JSON object; it declares no overall size."""
        check_json_head(head, source=source, what="syft-rpc JSON message")
        return None


def check_json_head(head: Buffer, *, source: str, what: str) -> None:
    """Refuse an object whose first bytes cannot start a JSON object."""
    start = bytes(memoryview(head).cast("B")).lstrip(b" \t\r\n")
    if start and not start.startswith(b"{"):
        raise MalformedMessageError(f"{source}: not a {what} (starts with {start[:8]!r})")


SYFT_RPC = SyftRpcProfile()

_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
