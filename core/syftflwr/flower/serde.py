"""Flower ``Message`` <-> bytes, byte-identical to Flower's protobuf encoding, fast.

``message_to_proto(msg).SerializeToString()`` copies every array's payload at each
nesting level (Array -> ArrayRecord.Item -> ArrayRecord -> RecordDict.Item -> ...).
Here the small parts (metadata, error, config and metric records, an array's
dtype/shape/stype) are still produced by Flower's own ``*_to_proto`` functions, so they
stay exactly what the installed Flower writes; only the length-delimited frames around
the array payloads are written by hand, and the payloads are copied once, by the final
``join``. Protobuf serialises fields in field-number order and omits proto3 defaults,
so the result is the same bytes (``tests/flower/test_serde.py`` proves it on every
installed Flower).

Decoding walks the same frames over a ``memoryview``: each array payload is copied
exactly once (Flower's ``Array`` insists on ``bytes``); everything else is parsed by
protobuf. Input the fast path does not expect (unknown or repeated fields, as another
encoder may legally write) falls back to protobuf's full parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.serde import (
    config_record_from_proto,
    config_record_to_proto,
    message_from_proto,
    metric_record_from_proto,
    metric_record_to_proto,
)
from flwr.common.serde_utils import (
    error_from_proto,
    error_to_proto,
    metadata_from_proto,
    metadata_to_proto,
)
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.proto.message_pb2 import Metadata as ProtoMetadata
from flwr.proto.recorddict_pb2 import Array as ProtoArray
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from syftflwr.envelope import Buffer
from syftflwr.errors import MalformedMessageError, MessageTooLargeError
from syftflwr.flower.compat import make_message
from syftflwr.frame import read_varint
from syftflwr.info import PROTOBUF_LIMIT

_LEN = 2  # protobuf wire type: length-delimited
_Parts = list[Buffer]


# --------------------------------------------------------------------------- wire helpers
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field: int) -> bytes:
    return _varint(field << 3 | _LEN)


_TAGS = {n: _tag(n) for n in (1, 2, 3, 4)}


class _Frame:
    """A length-delimited message under construction: its parts and their total size."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: _Parts = []
        self.size = 0

    def raw(self, data: Buffer) -> None:
        self.parts.append(data)
        self.size += memoryview(data).nbytes

    def field(self, number: int, child: _Frame) -> None:
        """Append ``child`` as embedded message / bytes field ``number``."""
        head = _TAGS[number] + _varint(child.size)
        self.parts.append(head)
        self.parts.extend(child.parts)
        self.size += len(head) + child.size

    def bytes_field(self, number: int, data: Buffer) -> None:
        size = memoryview(data).nbytes
        if size == 0:  # proto3 omits empty scalars
            return
        head = _TAGS[number] + _varint(size)
        self.parts.append(head)
        self.parts.append(data)
        self.size += len(head) + size


def _leaf(data: bytes) -> _Frame:
    frame = _Frame()
    frame.raw(data)
    return frame


# --------------------------------------------------------------------------- encode
def _array_frame(array: Array) -> _Frame:
    frame = _leaf(
        ProtoArray(dtype=array.dtype, shape=array.shape, stype=array.stype).SerializeToString()
    )
    frame.bytes_field(4, array.data)  # field 4 (data) is the last field number
    return frame


def _array_record_frame(record: ArrayRecord) -> _Frame:
    frame = _Frame()
    for key, array in record.items():
        item = _Frame()
        item.bytes_field(1, key.encode())
        item.field(2, _array_frame(array))
        frame.field(1, item)
    return frame


def _recorddict_frame(content: RecordDict) -> _Frame:
    frame = _Frame()
    for key, record in content.items():
        if isinstance(record, ArrayRecord):
            item = _Frame()
            item.bytes_field(1, key.encode())
            item.field(2, _array_record_frame(record))
        elif isinstance(record, MetricRecord):
            proto = ProtoRecordDict.Item(key=key, metric_record=metric_record_to_proto(record))
            item = _leaf(proto.SerializeToString())
        elif isinstance(record, ConfigRecord):
            proto = ProtoRecordDict.Item(key=key, config_record=config_record_to_proto(record))
            item = _leaf(proto.SerializeToString())
        else:
            raise TypeError(f"unsupported record type {type(record).__name__} under {key!r}")
        frame.field(1, item)
    return frame


def _message_frame(message: Message) -> _Frame:
    frame = _Frame()
    frame.field(1, _leaf(metadata_to_proto(message.metadata).SerializeToString()))
    if message.has_content():
        frame.field(2, _recorddict_frame(message.content))
    if message.has_error():
        frame.field(3, _leaf(error_to_proto(message.error).SerializeToString()))
    return frame


def _check_limit(size: int) -> None:
    if size > PROTOBUF_LIMIT:
        raise MessageTooLargeError(
            f"this Flower message encodes to {size:,} bytes; protobuf cannot parse a message "
            f"above {PROTOBUF_LIMIT:,} bytes (2 GiB), so no Flower peer could read it. "
            "Send the model in several smaller messages (for example split its ArrayRecord "
            "across message keys or rounds), or reduce its size (fp16, compression)."
        )


def encoded_message_size(message: Message) -> int:
    """Size in bytes of :func:`encode_message`'s output, without copying any payload."""
    return _message_frame(message).size


def encode_message(message: Message) -> bytes:
    """Flower's protobuf encoding of ``message``, each payload copied once.

    Raises :class:`~syftflwr.errors.MessageTooLargeError` (before allocating the
    output) when protobuf could not parse the result.
    """
    frame = _message_frame(message)
    _check_limit(frame.size)
    return b"".join(frame.parts)


def array_record_parts(record: ArrayRecord) -> tuple[list[Buffer], int]:
    """``record`` alone (an ``ArrayRecord`` protobuf) as parts to write, and their total
    size, without copying a payload: what a shared blob holds."""
    frame = _array_record_frame(record)
    return frame.parts, frame.size


# --------------------------------------------------------------------------- decode
class _NotCanonicalError(Exception):
    """The input is valid protobuf the fast path does not handle; use protobuf's parser."""


def _read_varint(view: memoryview, pos: int, end: int) -> tuple[int, int]:
    try:
        return read_varint(view, pos, end)
    except (IndexError, ValueError):
        raise MalformedMessageError("Flower message: truncated or invalid varint") from None


def _fields(view: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(field_number, value_start, value_end)`` of length-delimited fields."""
    pos = start
    while pos < end:
        key, pos = _read_varint(view, pos, end)
        if key & 7 != _LEN:
            raise _NotCanonicalError
        size, pos = _read_varint(view, pos, end)
        if pos + size > end:
            raise MalformedMessageError("Flower message: truncated field")
        yield key >> 3, pos, pos + size
        pos += size


def _str(view: memoryview, start: int, end: int) -> str:
    try:
        return str(view[start:end], "utf-8")
    except UnicodeDecodeError:
        raise MalformedMessageError("Flower message: invalid UTF-8 in a key") from None


def _decode_array(view: memoryview, start: int, end: int) -> Array:
    head = bytearray()  # dtype, shape, stype: small, parsed by protobuf
    data: bytes | None = None
    for number, a, b in _fields(view, start, end):
        if number != 4:
            head += _tag(number) + _varint(b - a) + view[a:b]
        elif data is None:
            data = bytes(view[a:b])  # the one copy of the payload
        else:
            raise _NotCanonicalError
    proto = ProtoArray.FromString(bytes(head))
    return Array(dtype=proto.dtype, shape=tuple(proto.shape), stype=proto.stype, data=data or b"")


def _decode_array_record(view: memoryview, start: int, end: int) -> ArrayRecord:
    arrays: dict[str, Array] = {}
    for number, a, b in _fields(view, start, end):
        if number != 1:
            raise _NotCanonicalError
        key = ""
        array: Array | None = None
        for inner, c, d in _fields(view, a, b):
            if inner == 1 and not key:
                key = _str(view, c, d)
            elif inner == 2 and array is None:
                array = _decode_array(view, c, d)
            else:
                raise _NotCanonicalError
        arrays[key] = array if array is not None else _decode_array(view, 0, 0)
    return ArrayRecord(array_dict=arrays, keep_input=False)


def _decode_recorddict(view: memoryview, start: int, end: int) -> RecordDict:
    content = RecordDict()
    for number, a, b in _fields(view, start, end):
        if number != 1:
            raise _NotCanonicalError
        kinds = [(inner, c, d) for inner, c, d in _fields(view, a, b) if inner != 1]
        if len(kinds) != 1:
            raise _NotCanonicalError
        inner, c, d = kinds[0]
        if inner == 2:
            keys = [(c1, d1) for n1, c1, d1 in _fields(view, a, b) if n1 == 1]
            if len(keys) > 1:
                raise _NotCanonicalError
            key = _str(view, *keys[0]) if keys else ""
            content[key] = _decode_array_record(view, c, d)
            continue
        item = ProtoRecordDict.Item.FromString(bytes(view[a:b]))
        if inner == 3:
            content[item.key] = metric_record_from_proto(item.metric_record)
        elif inner == 4:
            content[item.key] = config_record_from_proto(item.config_record)
        else:
            raise _NotCanonicalError
    return content


def _decode_fast(view: memoryview) -> Message:
    seen: dict[int, tuple[int, int]] = {}
    for number, a, b in _fields(view, 0, view.nbytes):
        if number in seen or number not in (1, 2, 3):
            raise _NotCanonicalError
        seen[number] = (a, b)
    if 1 not in seen:
        raise _NotCanonicalError
    a, b = seen[1]
    metadata = metadata_from_proto(ProtoMetadata.FromString(bytes(view[a:b])))
    content = _decode_recorddict(view, *seen[2]) if 2 in seen else None
    error = None
    if 3 in seen:
        from flwr.proto.error_pb2 import Error as ProtoError

        a, b = seen[3]
        error = error_from_proto(ProtoError.FromString(bytes(view[a:b])))
    if content is not None and error is not None:
        raise MalformedMessageError("Flower message carries both content and an error")
    return make_message(metadata, content=content, error=error)


def decode_array_record(data: Buffer) -> ArrayRecord:
    """The ``ArrayRecord`` :func:`array_record_parts` wrote (a shared blob's content).

    Raises :class:`~syftflwr.errors.MalformedMessageError` when it is not one."""
    view = memoryview(data).cast("B")
    try:
        return _decode_array_record(view, 0, view.nbytes)
    except MalformedMessageError:
        raise
    except Exception as exc:  # another encoder's layout, or not an ArrayRecord at all
        raise MalformedMessageError(
            f"not an ArrayRecord ({view.nbytes:,} bytes): {type(exc).__name__}: {exc}"
        ) from None


def _decode_slow(view: memoryview) -> Message:
    proto: Any = ProtoMessage.FromString(view)
    return message_from_proto(proto)


def decode_message(data: Buffer) -> Message:
    """Rebuild a Flower ``Message`` from its protobuf encoding (``bytes`` or a view).

    Raises :class:`~syftflwr.errors.MalformedMessageError` on anything protobuf would
    not parse as a Flower ``Message``.
    """
    view = memoryview(data).cast("B")
    try:
        try:
            return _decode_fast(view)
        except _NotCanonicalError:
            return _decode_slow(view)
    except MalformedMessageError:
        raise
    except Exception as exc:  # protobuf DecodeError, Flower's own validation errors
        raise MalformedMessageError(
            f"not a Flower message ({view.nbytes:,} bytes): {type(exc).__name__}: {exc}"
        ) from None
