"""syft-flwr 0.5's SyftBox wire format: syft-rpc's ``SyftRequest``/``SyftResponse`` JSON
(``syftflwr.profiles.syftflwr05``'s ``SYFT_RPC`` codec). Golden vectors are what
syft-rpc 0.4.1 writes (``SyftRequest(...).dumps()``, recorded below); where syft-rpc is
installed (the syftbox environment), the real library reads ours and writes for ours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from syftflwr.envelope import Request, Response
from syftflwr.errors import MalformedMessageError
from syftflwr.profiles.syftflwr05 import (
    SYFT_RPC,
    decode_syft_request,
    decode_syft_response,
    encode_syft_request,
    encode_syft_response,
)

UUID_TEXT = "12345678-1234-5678-1234-567812345678"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
REQUEST = (
    b'{"id":"12345678-1234-5678-1234-567812345678","sender":"agg@example.org",'
    b'"url":"syft://ds1@example.org/app_data/flwr/quickstart/rpc/messages",'
    b'"body":"CgH__g==","headers":{},"created":"2026-01-01T00:00:00+00:00",'
    b'"expires":"2026-01-01T00:15:00+00:00","method":"GET"}'
)
ERROR_RESPONSE = (
    b'{"id":"12345678-1234-5678-1234-567812345678","sender":"ds1@example.org",'
    b'"url":"syft://ds1@example.org/app_data/flwr/quickstart/rpc/messages",'
    b'"body":"Ym9vbQ==","headers":{},"created":"2026-01-01T00:00:00+00:00",'
    b'"expires":"2026-01-02T00:00:00+00:00","status_code":500}'
)


def test_syft_rpc_request_golden_vector_both_ways() -> None:
    request = decode_syft_request(REQUEST)
    assert request.id == UUID_TEXT.replace("-", "")
    assert (request.sender, request.recipient) == ("agg@example.org", "ds1@example.org")
    assert (request.app, request.endpoint) == ("quickstart", "messages")
    assert bytes(request.body) == b"\x0a\x01\xff\xfe"
    assert (request.created_at, request.expires_at) == (T0, T0 + 900)
    assert encode_syft_request(request) == REQUEST  # byte for byte what syft-rpc writes


def test_syft_rpc_error_response_golden_vector() -> None:
    response = decode_syft_response(ERROR_RESPONSE, recipient="agg@example.org")
    assert not response.ok and response.error_text == "boom"
    assert response.recipient == "agg@example.org"
    again = decode_syft_response(
        encode_syft_response(response), recipient="agg@example.org"
    )  # status 500, same body
    assert not again.ok and bytes(again.body) == b"boom"


@pytest.mark.parametrize(
    "bad",
    [b"", b"[]", b"{", b'{"url": "https://x"}', REQUEST.replace(b'"CgH__g=="', b"42"),
     REQUEST.replace(b"app_data/flwr/quickstart", b"app_data/other/quickstart"),
     REQUEST.replace(b'"2026-01-01T00:00:00+00:00"', b'"yesterday"', 1)],
)  # fmt: skip
def test_malformed_syft_rpc_json_is_refused(bad: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode_syft_request(bad)


def test_cut_short_json_is_incomplete() -> None:
    for cut in range(len(REQUEST)):
        assert SYFT_RPC.incomplete(REQUEST[:cut]), cut
    assert not SYFT_RPC.incomplete(REQUEST)
    for garbage in (b'{"id": nope}', b"{}}", b'{"id":"\x01"}', b"\xff\xfe{", b"[1]"):
        assert not SYFT_RPC.incomplete(garbage), garbage


def test_the_real_syft_rpc_reads_ours_and_writes_for_ours() -> None:
    protocol = pytest.importorskip("syft_rpc.protocol", reason="syft-rpc: the syftbox env")
    ours = Request(
        id="ab" * 16, sender="agg@example.org", recipient="ds1@example.org", app="quickstart",
        endpoint="messages", body=bytes(range(256)) * 4, created_at=T0, expires_at=T0 + 60,
        headers={"x": "y"},
    )  # fmt: skip
    theirs = protocol.SyftRequest.loads(encode_syft_request(ours))
    assert theirs.id.hex == ours.id and theirs.body == bytes(ours.body)
    assert str(theirs.url) == "syft://ds1@example.org/app_data/flwr/quickstart/rpc/messages"
    assert theirs.dumps().encode() == encode_syft_request(ours)
    reply = protocol.SyftResponse(
        id=theirs.id, sender="ds1@example.org", url=theirs.url, body=b"\x00reply",
        status_code=protocol.SyftStatus.SYFT_200_OK,
    )  # fmt: skip
    back: Response = decode_syft_response(reply.dumps().encode(), recipient="agg@example.org")
    assert back.ok and back.id == ours.id and bytes(back.body) == b"\x00reply"
