"""What a wire profile decides, as one parameter object the mailbox roles are given, and
the native profile.

A profile owns everything that differs on the wire between syftflwr and a system it must
interoperate with: how an envelope becomes stored bytes (and back), the folder an app's
traffic lives in, whether messages above a storage's ``max_object_size`` may be chunked,
how to tell a half-written object from garbage, and how to refuse garbage from its first
bytes. The mailbox roles keep every other guarantee (claims, journal, retention,
hostile-input checks) in every profile. The others are in :mod:`syftflwr.profiles`.
"""

from __future__ import annotations

from typing import Protocol

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer, Request, Response, declared_size, decode, encode_parts
from syftflwr.errors import MalformedMessageError, MessageTooLargeError
from syftflwr.mailbox.layout import ObjectKind, Route


class WireProfile(Protocol):
    """A wire profile; see :mod:`syftflwr.profiles` for the ones shipped."""

    name: str
    """The ``[tool.syftflwr] profile`` value selecting it."""
    chunking: bool
    """Whether messages above ``max_object_size`` may be split (else they are refused)."""

    def wire_app(self, app: str) -> str:
        """The folder (one or two path components) holding ``app``'s traffic."""
        ...

    def encode(self, envelope: Request | Response) -> list[Buffer]:
        """The stored bytes of ``envelope``, as parts a storage writes without joining."""
        ...

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
        """Rebuild the envelope of a ``kind`` object found at ``source``.

        ``route`` is the route it travelled along (its folder owner is the sender),
        ``message_id`` comes from the file name and ``app`` is the logical app name:
        a profile whose files carry no header takes these fields from there.
        Raises :class:`~syftflwr.errors.MalformedMessageError` on anything else.
        """
        ...

    def incomplete(self, data: Buffer) -> bool:
        """True if ``data`` looks like the start of an object still being written."""
        ...

    def check_head(self, head: Buffer, *, source: str) -> int | None:
        """Check an object's first bytes (up to :data:`~syftflwr.envelope.HEAD_SIZE`)
        before the rest is read: raise :class:`~syftflwr.errors.MalformedMessageError`
        when they cannot start a message of this profile; else return the object's
        whole size as its header declares it (None: the format declares none, or
        ``head`` ends before the header does)."""
        ...


def refuse_oversized(size: int, max_object_size: int | None, what: str, profile: str) -> None:
    """Raise :class:`MessageTooLargeError` when ``size`` exceeds ``max_object_size`` in a
    profile that cannot chunk (its peers read one file per message)."""
    if max_object_size is not None and size > max_object_size:
        raise MessageTooLargeError(
            f"{what} is {size:,} bytes, above this transport's max_object_size of "
            f"{max_object_size:,}; the {profile!r} wire profile cannot chunk messages (its "
            "peers read one file per message): send a smaller message, raise the "
            "transport's max_object_size if the storage allows it, or use "
            'profile = "native"'
        )


class NativeProfile:
    """The native profile: syftflwr's own envelope (``syftflwr.envelope``), chunked above
    a storage's ``max_object_size``; the layout's app folder is the app name itself.
    Every bar of docs/profiles.md applies."""

    name = "native"
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

_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
