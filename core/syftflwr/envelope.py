"""The request/response envelope every transport carries, and its native wire encoding.

Fields (format version 1) — decided once, before any transport was written:

==============  ==============================================================
``id``          message id, unique across machines (uuid4 hex); a response
                carries the id of the request it answers
``sender``      email of the participant that wrote the envelope
``recipient``   email of the participant it is for
``app``         the federated app's name (``[tool.syftflwr] app_name``)
``endpoint``    the app endpoint (Flower traffic uses ``messages``)
``created_at``  POSIX seconds at the sender
``expires_at``  POSIX seconds after which it must not be delivered (or None)
``status``      responses only: ``ok`` or ``error`` (error body: UTF-8 text)
``headers``     small str->str map for transports and core layers (chunking,
                encryption) — never user payload
``body``        opaque bytes (Flower traffic: a protobuf-encoded Message)
==============  ==============================================================

Native wire layout (no base64, the body is written as-is, decoding is zero-copy), a
:mod:`syftflwr.frame`::

    b"SYFL" | u8 format_version | u32 header_len (big endian) | header JSON | body

The header JSON holds every field but the body, plus ``kind`` and ``body_size`` so a
truncated object is detected instead of being half-processed, and so a reader knows an
object's size from its first :data:`HEAD_SIZE` bytes (:func:`declared_size`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.errors import MalformedMessageError, MessageExpiredError
from syftflwr.frame import PREFIX_SIZE, FrameHeader, encode_frame, read_header
from syftflwr.names import (
    new_message_id,
    validate_app_name,
    validate_email,
    validate_identifier,
    validate_message_id,
)

Buffer = bytes | bytearray | memoryview
Status = Literal["ok", "error"]

FORMAT_VERSION = 1
"""Version of the envelope fields and of the native wire layout."""
SUPPORTED_FORMAT_VERSIONS = frozenset({1})

MAGIC = b"SYFL"
MAX_HEADER_SIZE = 64 * 1024
HEAD_SIZE = PREFIX_SIZE + MAX_HEADER_SIZE
"""Bytes of an envelope that hold everything but its body: enough to refuse it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """Fields shared by requests and responses (see the module docstring)."""

    kind: ClassVar[Literal["request", "response"]]

    id: str
    sender: str
    recipient: str
    app: str
    endpoint: str
    body: Buffer = b""
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def validate(self) -> None:
        """Raise :class:`~syftflwr.errors.MessageRejectedError` if any field is unsafe."""
        validate_message_id(self.id)
        validate_email(self.sender)
        validate_email(self.recipient)
        validate_app_name(self.app)
        validate_identifier(self.endpoint, "endpoint")
        if self.format_version not in SUPPORTED_FORMAT_VERSIONS:
            raise MalformedMessageError(
                f"unsupported envelope format version {self.format_version}; "
                f"this syftflwr reads {sorted(SUPPORTED_FORMAT_VERSIONS)} — upgrade syftflwr"
            )

    @property
    def body_size(self) -> int:
        return memoryview(self.body).nbytes

    def is_expired(self, now: float | None = None, skew: float = 0.0) -> bool:
        """True when ``expires_at`` lies more than ``skew`` seconds in the past."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) > self.expires_at + skew

    def check_not_expired(self, now: float | None = None, skew: float = 0.0) -> None:
        if self.is_expired(now, skew):
            raise MessageExpiredError(
                f"{self.kind} {self.id} from {self.sender} expired at {self.expires_at:.3f} "
                f"(tolerated clock skew {skew:g}s)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Envelope):
    """A request to ``recipient``'s ``app``/``endpoint``."""

    kind: ClassVar[Literal["request", "response"]] = "request"

    @classmethod
    def new(
        cls,
        *,
        sender: str,
        recipient: str,
        app: str,
        endpoint: str,
        body: Buffer,
        ttl: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Request:
        """Build and validate a request with a fresh id; ``ttl`` seconds from now."""
        now = time.time()
        request = cls(
            id=new_message_id(),
            sender=sender,
            recipient=recipient,
            app=app,
            endpoint=endpoint,
            body=body,
            created_at=now,
            expires_at=None if ttl is None else now + ttl,
            headers=dict(headers or {}),
        )
        request.validate()
        return request

    def reply(
        self, body: Buffer = b"", *, status: Status = "ok", headers: Mapping[str, str] | None = None
    ) -> Response:
        """The response to this request: same id, app and endpoint; sender/recipient swapped."""
        return Response(
            id=self.id,
            sender=self.recipient,
            recipient=self.sender,
            app=self.app,
            endpoint=self.endpoint,
            body=body,
            expires_at=self.expires_at,
            status=status,
            headers=dict(headers or {}),
        )

    def error_reply(self, text: str) -> Response:
        return self.reply(text.encode("utf-8", "replace"), status="error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Envelope):
    """The answer to a request; ``status == "error"`` carries a UTF-8 error text."""

    kind: ClassVar[Literal["request", "response"]] = "response"
    status: Status = "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def error_text(self) -> str:
        return "" if self.ok else bytes(self.body).decode("utf-8", "replace")


# --------------------------------------------------------------------------- wire format
def header_fields(envelope: Envelope) -> dict[str, Any]:
    """Every field but the body and the format version: the native frame's header, and
    what a sealed envelope's encryption authenticates (:mod:`syftflwr.crypto.seal`)."""
    fields: dict[str, Any] = {
        "kind": envelope.kind,
        "id": envelope.id,
        "sender": envelope.sender,
        "recipient": envelope.recipient,
        "app": envelope.app,
        "endpoint": envelope.endpoint,
        "created_at": envelope.created_at,
        "expires_at": envelope.expires_at,
        "headers": dict(envelope.headers),
    }
    if isinstance(envelope, Response):
        fields["status"] = envelope.status
    return fields


def encode_parts(envelope: Envelope) -> tuple[bytes, Buffer]:
    """Encode to ``(prefix, body)`` so writers can stream both without concatenating."""
    header = {**header_fields(envelope), "body_size": envelope.body_size}
    return encode_frame(MAGIC, envelope.format_version, header), envelope.body


def encode(envelope: Envelope) -> bytes:
    """Encode to one bytes object (copies the body; prefer :func:`encode_parts` for big ones)."""
    prefix, body = encode_parts(envelope)
    return prefix + bytes(body)


def encoded_size(envelope: Envelope) -> int:
    prefix, body = encode_parts(envelope)
    return len(prefix) + memoryview(body).nbytes


def decode(data: Buffer, *, source: str = "message") -> Request | Response:
    """Decode and validate an envelope; the body is a zero-copy view into ``data``.

    Raises :class:`MalformedMessageError` (naming ``source``) on anything that is not a
    complete, well-formed envelope of a supported version, and
    :class:`~syftflwr.errors.UnsafeNameError` on path-shaped names.
    """
    view = memoryview(data).cast("B")
    frame = _header(view, source)
    if frame is None:
        raise MalformedMessageError(f"{source}: truncated ({view.nbytes} bytes), not an envelope")
    header, version = frame.fields, frame.version
    body = view[frame.end :]
    try:
        kind = header["kind"]
        body_size = header["body_size"]
        if not isinstance(body_size, int) or body_size > body.nbytes:
            raise MalformedMessageError(
                f"{source}: truncated body ({body.nbytes} of {body_size} bytes)"
            )
        if body_size != body.nbytes:
            raise MalformedMessageError(
                f"{source}: {body.nbytes} bytes of body where its header declares {body_size}"
            )
        headers = header.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise MalformedMessageError(f"{source}: 'headers' must map strings to strings")
        created_at = _finite(header["created_at"], "created_at")
        raw_expiry = header.get("expires_at")
        expires_at = None if raw_expiry is None else _finite(raw_expiry, "expires_at")
        common: dict[str, Any] = {
            "id": header["id"],
            "sender": header["sender"],
            "recipient": header["recipient"],
            "app": header["app"],
            "endpoint": header["endpoint"],
            "body": body,
            "created_at": created_at,
            "expires_at": expires_at,
            "headers": headers,
            "format_version": version,
        }
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, MalformedMessageError):
            raise
        raise MalformedMessageError(f"{source}: missing or invalid header field ({exc})") from None
    envelope: Request | Response
    if kind == "request":
        envelope = Request(**common)
    elif kind == "response":
        status = header.get("status", "ok")
        if status not in ("ok", "error"):
            raise MalformedMessageError(f"{source}: unknown response status {status!r}")
        envelope = Response(**common, status=status)
    else:
        raise MalformedMessageError(f"{source}: unknown envelope kind {kind!r}")
    envelope.validate()
    return envelope


def _header(data: Buffer, source: str) -> FrameHeader | None:
    return read_header(
        data,
        magic=MAGIC,
        versions=SUPPORTED_FORMAT_VERSIONS,
        max_length=MAX_HEADER_SIZE,
        what="syftflwr envelope",
        source=source,
    )


def declared_size(head: Buffer, *, source: str = "message") -> int | None:
    """The whole encoded size an envelope's header declares, from its first bytes (up to
    :data:`HEAD_SIZE`); None when ``head`` ends before its header does. Raises
    :class:`MalformedMessageError` when ``head`` cannot start an envelope, so a reader
    refuses garbage before reading — or allocating — its body."""
    frame = _header(head, source)
    if frame is None:
        return None
    body_size = frame.fields.get("body_size")
    if isinstance(body_size, bool) or not isinstance(body_size, int) or body_size < 0:
        raise MalformedMessageError(f"{source}: header has no valid body_size ({body_size!r})")
    return frame.end + body_size


def _finite(value: object, name: str) -> float:
    """A timestamp from a header: a finite number (NaN would make a request never expire)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)  # OverflowError for a huge int
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
