"""The native profile: syftflwr's own envelope (``syftflwr.envelope``), chunked above a
storage's ``max_object_size``; the layout's app folder is the app name itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syftflwr.envelope import Buffer, Request, Response, declared_size, decode, encode_parts
from syftflwr.errors import MalformedMessageError

if TYPE_CHECKING:  # the mailbox imports this module: no import back at run time
    from syftflwr.mailbox.layout import ObjectKind, Route

NAME = "native"


class NativeProfile:
    """syftflwr's envelope, headers and all; every bar of docs/profiles.md applies."""

    name = NAME
    chunking = True

    def wire_app(self, app: str) -> str:
        return app

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
        try:
            size = declared_size(data)
        except MalformedMessageError:
            return False
        return size is None or memoryview(data).nbytes < size

    def check_head(self, head: Buffer, *, source: str) -> int | None:
        return declared_size(head, source=source)


NATIVE = NativeProfile()
