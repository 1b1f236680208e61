"""The frame every object syftflwr writes starts with — envelopes (``SYFL``) and chunk
manifests (``SYFC``) alike — and the one parser of it::

    magic (4 bytes) | u8 version | u32 header_len (big endian) | header JSON (header_len)

Everything a reader needs to refuse an object is in its first
``PREFIX_SIZE + max_length`` bytes, so a reader can validate them before reading (or
even allocating) the rest: a multi-gigabyte file of garbage costs its header.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from syftflwr.errors import MalformedMessageError

Buffer = bytes | bytearray | memoryview

PREFIX = struct.Struct(">4sBI")
PREFIX_SIZE = PREFIX.size


def pack_prefix(magic: bytes, version: int, header_len: int) -> bytes:
    """The 9-byte prefix of a frame whose JSON header is ``header_len`` bytes long."""
    return PREFIX.pack(magic, version, header_len)


def encode_frame(magic: bytes, version: int, header: dict[str, Any]) -> bytes:
    """Prefix and compact JSON header, ready for a body to follow."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    return PREFIX.pack(magic, version, len(raw)) + raw


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A frame's parsed header: ``fields`` (the JSON object); the body starts at ``end``."""

    version: int
    fields: dict[str, Any]
    end: int


def read_header(
    data: Buffer,
    *,
    magic: bytes,
    versions: Collection[int],
    max_length: int,
    what: str,
    source: str,
) -> FrameHeader | None:
    """Parse the frame header at the start of ``data`` (the whole object or just its
    first bytes).

    Returns None when ``data`` ends before the header does — the start of an object
    still being written, or a truncated one (the caller knows which). Raises
    :class:`MalformedMessageError`, naming ``source``, when ``data`` cannot be the start
    of a ``what`` frame: wrong magic, unsupported version, a header longer than
    ``max_length`` bytes, or a header that is not a JSON object.
    """
    view = memoryview(data).cast("B")
    if view.nbytes < PREFIX_SIZE:
        start = bytes(view[: len(magic)])
        if magic.startswith(start):
            return None
        raise MalformedMessageError(f"{source}: not a {what} (bad magic {start!r})")
    found, version, length = PREFIX.unpack_from(view)
    if found != magic:
        raise MalformedMessageError(f"{source}: not a {what} (bad magic {found!r})")
    if version not in versions:
        raise MalformedMessageError(
            f"{source}: {what} format version {version} is not supported "
            f"(this syftflwr reads {sorted(versions)}); upgrade syftflwr"
        )
    if length > max_length:
        raise MalformedMessageError(
            f"{source}: oversized {what} header ({length} bytes, at most {max_length})"
        )
    end = PREFIX_SIZE + length
    if view.nbytes < end:
        return None
    try:
        fields = json.loads(bytes(view[PREFIX_SIZE:end]))
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, huge ints, deep nesting
        raise MalformedMessageError(f"{source}: {what} header is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise MalformedMessageError(f"{source}: {what} header is not a JSON object")
    return FrameHeader(version, fields, end)


def read_varint(view: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The protobuf base-128 varint at ``pos`` and the position after it — the one reader
    for Flower messages' fast decoder and the syft-flwr-0.5 profile's protobuf check.
    Raises :class:`IndexError` when it runs past ``end`` (cut short), :class:`ValueError`
    when it is longer than any varint (10 bytes)."""
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise IndexError("varint runs past the end")
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")
