"""The native profile: syftflwr's own envelope (``syftflwr.envelope``), chunked above a
storage's ``max_object_size``; the layout's app folder is the app name itself."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

from syftflwr.envelope import MAGIC, Buffer, Request, Response, decode, encode_parts
from syftflwr.errors import MalformedMessageError

if TYPE_CHECKING:  # the mailbox imports this module: no import back at run time
    from syftflwr.mailbox.layout import ObjectKind, Route

NAME = "native"
_PREFIX = struct.Struct(">4sBI")


class NativeProfile:
    """syftflwr's envelope, headers and all; every bar of docs/profiles.md applies."""

    name = NAME
    chunking = True

    def wire_app(self, app: str) -> str:
        return app

    def folder_names(self, parts: list[str]) -> list[str]:
        return parts

    def encode(self, envelope: Request | Response) -> list[Buffer]:
        prefix, body = encode_parts(envelope)
        return [prefix, body]

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
        envelope = decode(data, source=source)
        if envelope.kind != kind.value:
            raise MalformedMessageError(f"{source} holds a {envelope.kind}, not a {kind.value}")
        return envelope

    def incomplete(self, data: Buffer) -> bool:
        """Empty, or shorter than its own header says (as opposed to garbage)."""
        view = memoryview(data).cast("B")
        if view.nbytes < _PREFIX.size:
            return bytes(view) == MAGIC[: view.nbytes]
        magic, _, header_len = _PREFIX.unpack_from(view)
        if magic != MAGIC:
            return False
        if view.nbytes < _PREFIX.size + header_len:
            return True
        try:
            body_size = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + header_len]))[
                "body_size"
            ]
        except (ValueError, KeyError, TypeError, RecursionError):
            return False
        return isinstance(body_size, int) and view.nbytes < _PREFIX.size + header_len + body_size


NATIVE = NativeProfile()
