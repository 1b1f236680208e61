"""The envelope's native wire format: round trips, zero-copy bodies, and refusal of
every kind of damaged or hostile input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from syftflwr.envelope import (
    MAGIC,
    Request,
    Response,
    decode,
    encode,
    encode_parts,
    encoded_size,
)
from syftflwr.errors import MalformedMessageError, MessageExpiredError, UnsafeNameError
from syftflwr.frame import pack_prefix


def make_request(body: bytes = b"payload", **kw: object) -> Request:
    return Request.new(
        sender="agg@example.org",
        recipient="ds1@example.org",
        app="quickstart",
        endpoint="messages",
        body=body,
        ttl=60,
        **kw,  # type: ignore[arg-type]
    )


def test_request_round_trip_keeps_every_field() -> None:
    req = make_request(b"\x00\x01binary\xff", headers={"x-chunk": "1"})
    out = decode(encode(req))
    assert isinstance(out, Request)
    assert out == req
    assert bytes(out.body) == b"\x00\x01binary\xff"
    assert out.headers == {"x-chunk": "1"}


def test_response_round_trip_and_reply_semantics() -> None:
    req = make_request()
    resp = req.error_reply("boom")
    assert (resp.id, resp.sender, resp.recipient) == (req.id, req.recipient, req.sender)
    out = decode(encode(resp))
    assert isinstance(out, Response)
    assert not out.ok and out.error_text == "boom"
    assert out == resp


def test_body_is_a_zero_copy_view() -> None:
    body = bytes(range(256)) * 4096
    data = bytearray(encode(make_request(body)))
    out = decode(data)
    assert isinstance(out.body, memoryview)
    assert out.body.obj is data  # a view into the buffer we read, not a copy


def test_encode_parts_does_not_copy_the_body() -> None:
    body = bytearray(b"x" * 1000)
    request = make_request(body)
    prefix, part = encode_parts(request)
    assert part is body
    assert encoded_size(request) == len(prefix) + len(body)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:3], "truncated"),
        (lambda d: b"NOPE" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x07" + d[5:], "format version 7"),
        (lambda d: d[:-1], "truncated body"),
        (lambda d: d + b"extra", "declares"),
        (lambda d: d[:9] + b"!" + d[10:], "not valid JSON"),
        (lambda d: b"", "truncated"),
    ],
)
def test_damaged_input_is_rejected_with_a_clear_message(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = encode(make_request(b"0123456789"))
    with pytest.raises(MalformedMessageError, match=message):
        decode(mutate(data), source="inbox/x.request")


def _forge(header: dict[str, object], body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return pack_prefix(MAGIC, 1, len(raw)) + raw + body


def _valid_header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {
        "kind": "request",
        "id": "a" * 32,
        "sender": "agg@example.org",
        "recipient": "ds1@example.org",
        "app": "quickstart",
        "endpoint": "messages",
        "created_at": 1.0,
        "expires_at": None,
        "headers": {},
        "body_size": 0,
    }
    header.update(changes)
    return header


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "../../etc/passwd"},
        {"sender": "../evil@example.org"},
        {"recipient": "a/b@example.org"},
        {"app": ".."},
        {"endpoint": "rpc/../../x"},
        {"id": "x" * 500},
    ],
)
def test_path_shaped_names_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(UnsafeNameError):
        decode(_forge(_valid_header(**changes)))


@pytest.mark.parametrize(
    "changes",
    [{"kind": "bogus"}, {"headers": {"a": 1}}, {"created_at": "soon"}, {"body_size": "0"}],
)
def test_wrong_field_types_are_malformed(changes: dict[str, object]) -> None:
    with pytest.raises(MalformedMessageError):
        decode(_forge(_valid_header(**changes)))


def test_missing_field_is_named() -> None:
    header = _valid_header()
    del header["sender"]
    with pytest.raises(MalformedMessageError, match="sender"):
        decode(_forge(header))


def test_expiry_honours_clock_skew() -> None:
    req = make_request()
    assert req.expires_at is not None
    assert not req.is_expired(now=req.expires_at + 5, skew=10)
    assert req.is_expired(now=req.expires_at + 11, skew=10)
    with pytest.raises(MessageExpiredError, match="clock skew"):
        req.check_not_expired(now=req.expires_at + 11, skew=10)


@given(st.binary(max_size=2048))
def test_decoder_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(MalformedMessageError, UnsafeNameError):
        decode(data)


@given(st.binary(max_size=4096), st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
def test_round_trip_property(body: bytes, headers: dict[str, str]) -> None:
    req = make_request(body, headers=headers)
    assert decode(encode(req)) == req
