"""Serde: the bytes are exactly Flower's protobuf encoding, on the installed Flower."""

from __future__ import annotations

import _flower_helpers  # noqa: F401  (sets FLWR_TELEMETRY_ENABLED before flwr loads)
import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.errors import MalformedMessageError, MessageTooLargeError
from syftflwr.flower import compat
from syftflwr.flower.serde import decode_message, encode_message, encoded_message_size
from syftflwr.info import PROTOBUF_LIMIT


def reference(message: Message) -> bytes:
    return message_to_proto(message).SerializeToString()


def instruction(content: RecordDict, *, node: int = 2**64 - 7, ttl: float = 60.0) -> Message:
    compat.set_task_identity(2**63 + 11)  # newer Flower reads it in Message(); uint64 run id
    message = Message(content, node, "train", ttl=ttl, group_id="3")
    compat.set_message_id(message, "d0c5a1b2c3d4e5f6")
    return message


def rich_content() -> RecordDict:
    return RecordDict(
        {
            "arrays": ArrayRecord(
                {
                    "w": Array(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
                    "b": Array(np.array([1.5, -2.0])),
                    "ints": Array(np.arange(5, dtype=np.int64)),
                    "empty": Array(np.zeros((0, 3))),
                    "scalar": Array(np.array(3.0)),
                    "bools": Array(np.array([True, False])),
                    "": Array(np.ones(2, dtype=np.float16)),
                }
            ),
            "metrics": MetricRecord(
                {"acc": 0.93, "n": 12, "neg": -4, "big": 2**63 + 5, "fl": [0.1, 0.2], "il": [1, -2]}
            ),
            "config": ConfigRecord(
                {
                    "s": "héllo ✓",
                    "b": b"\x00\xff",
                    "t": True,
                    "f": False,
                    "i": 0,
                    "x": 1.5,
                    "sl": ["a", ""],
                    "bl": [True, False],
                    "bytes_list": [b"", b"z"],
                    "ul": [2**64 - 1],
                    "empty": "",
                }
            ),
            "empty_arrays": ArrayRecord(),
            "empty_config": ConfigRecord(),
            "ünïcode key": MetricRecord({"m": 1.0}),
            "": ConfigRecord({"": ""}),
        }
    )


def cases() -> dict[str, Message]:
    ins = instruction(rich_content())
    return {
        "instruction": ins,
        "empty_content": instruction(RecordDict()),
        "reply": Message(RecordDict({"metrics": MetricRecord({"loss": 0.5})}), reply_to=ins),
        "empty_reply": Message(RecordDict(), reply_to=ins),
        "error_reply": Message(Error(code=2, reason="<class 'ValueError'>:<'boom'>"), reply_to=ins),
        "error_no_reason": Message(Error(code=0), reply_to=ins),
        "only_arrays": instruction(RecordDict({"a": ArrayRecord([np.random.rand(100)])})),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_bytes_identical_to_message_to_proto(name: str) -> None:
    message = cases()[name]
    expected = reference(message)
    assert encode_message(message) == expected
    assert encoded_message_size(message) == len(expected)


@pytest.mark.parametrize("name", list(cases()))
@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_decode_matches_flower_and_reencodes(name: str, wrap: type) -> None:
    message = cases()[name]
    data = encode_message(message)
    decoded = decode_message(wrap(data))
    flower = message_from_proto(ProtoMessage.FromString(data))
    assert decoded.metadata == flower.metadata == message.metadata
    assert decoded.has_content() == message.has_content()
    assert decoded.has_error() == message.has_error()
    if message.has_error():
        assert decoded.error.code == message.error.code
        assert decoded.error.reason == flower.error.reason
    assert encode_message(decoded) == data


def test_decoded_arrays_equal_the_originals() -> None:
    message = cases()["instruction"]
    decoded = decode_message(memoryview(encode_message(message)))
    original = message.content["arrays"]
    for key, array in decoded.content["arrays"].items():
        np.testing.assert_array_equal(array.numpy(), original[key].numpy())
        assert array.dtype == original[key].dtype
        assert array.shape == original[key].shape
    assert decoded.content["config"]["s"] == "héllo ✓"
    assert decoded.content["metrics"]["big"] == 2**63 + 5


def test_large_message_identical_and_one_copy_per_payload() -> None:
    payload = np.random.default_rng(0).random(2**20)  # 8 MiB of float64
    message = instruction(RecordDict({"model": ArrayRecord([payload, payload[:10]])}))
    data = encode_message(message)
    assert data == reference(message)
    decoded = decode_message(memoryview(data))
    np.testing.assert_array_equal(decoded.content["model"].to_numpy_ndarrays()[0], payload)


def test_non_canonical_encoding_falls_back_to_protobuf() -> None:
    """Valid protobuf in another field order (as another encoder may write) still decodes."""
    message = cases()["instruction"]
    proto = message_to_proto(message)
    meta = proto.metadata.SerializeToString()
    content = proto.content.SerializeToString()
    # content (field 2) before metadata (field 1): legal protobuf, not canonical
    data = b"\x12" + _varint(len(content)) + content + b"\x0a" + _varint(len(meta)) + meta
    decoded = decode_message(data)
    assert decoded.metadata == message.metadata
    assert encode_message(decoded) == reference(message)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff", b"\x0a\x50abc", b"not protobuf at all \x00\x01", b"\x12\x05\x0a\x03\x0a"],
)
def test_garbage_is_rejected_clearly(data: bytes) -> None:
    with pytest.raises(MalformedMessageError, match="Flower message"):
        decode_message(data)


def test_truncated_message_is_rejected() -> None:
    data = encode_message(cases()["instruction"])
    with pytest.raises(MalformedMessageError):
        decode_message(data[: len(data) // 2])


def test_above_protobuf_limit_is_refused_before_allocating() -> None:
    # 2,100 arrays sharing ONE 1 MiB buffer: > 2 GiB on the wire, ~1 MiB in memory.
    chunk = b"\x00" * 2**20
    arrays = {
        str(i): Array(dtype="uint8", shape=(len(chunk),), stype="raw", data=chunk)
        for i in range(2100)
    }
    message = instruction(RecordDict({"huge": ArrayRecord(arrays)}))
    size = encoded_message_size(message)
    assert size > PROTOBUF_LIMIT
    with pytest.raises(MessageTooLargeError, match="protobuf cannot parse"):
        encode_message(message)


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
config_values = st.one_of(
    scalars,
    st.lists(st.booleans(), max_size=3),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3),
    st.lists(st.floats(allow_nan=False), max_size=3),
    st.lists(st.text(max_size=5), max_size=3),
)
arrays = st.builds(
    lambda shape, dtype: Array(np.ones(shape, dtype=dtype)),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.sampled_from(["float32", "float64", "int8", "uint16", "bool"]),
)


@settings(max_examples=60, deadline=None)
@given(
    configs=st.dictionaries(st.text(max_size=8), config_values, max_size=5),
    metrics=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=5),
    array_dict=st.dictionaries(st.text(max_size=8), arrays, max_size=4),
)
def test_property_identical_for_any_records(
    configs: dict[str, object], metrics: dict[str, float], array_dict: dict[str, Array]
) -> None:
    content = RecordDict(
        {
            "c": ConfigRecord(configs),  # type: ignore[arg-type]
            "m": MetricRecord(metrics),  # type: ignore[arg-type]
            "a": ArrayRecord(array_dict),
        }
    )
    message = instruction(content)
    data = encode_message(message)
    assert data == reference(message)
    assert encode_message(decode_message(memoryview(data))) == data
