"""The syft-rpc JSON files of the ``syft-flwr-0.5`` profile on syftbox: a file cut short
(written in place by syft-rpc or a SyftBox client) is told from garbage, and garbage is
refused from its first bytes. The golden vector is what syft-rpc 0.4.1 writes
(``SyftRequest(...).dumps()``); the real library reads it."""

from __future__ import annotations

import pytest
from syftflwr.errors import MalformedMessageError
from syftflwr_syftbox.syftflwr05 import check_head, incomplete, syft_url

REQUEST = (
    b'{"id":"12345678-1234-5678-1234-567812345678","sender":"agg@example.org",'
    b'"url":"syft://ds1@example.org/app_data/flwr/quickstart/rpc/messages",'
    b'"body":"CgH__g==","headers":{},"created":"2026-01-01T00:00:00+00:00",'
    b'"expires":"2026-01-01T00:15:00+00:00","method":"GET"}'
)


def test_the_golden_vector_is_syft_rpcs_own_and_names_our_url() -> None:
    from syft_rpc.protocol import SyftRequest

    loaded = SyftRequest.loads(REQUEST)
    assert loaded.dumps().encode() == REQUEST
    assert str(loaded.url) == syft_url("ds1@example.org", "quickstart", "messages")


def test_cut_short_json_is_incomplete() -> None:
    for cut in range(len(REQUEST)):
        assert incomplete(REQUEST[:cut]), cut
    assert not incomplete(REQUEST)
    for garbage in (b'{"id": nope}', b"{}}", b'{"id":"\x01"}', b"\xff\xfe{", b"[1]"):
        assert not incomplete(garbage), garbage


@pytest.mark.parametrize("head", [b"\x00 not json", b"[1, 2]", b"  SYFL"])
def test_garbage_is_refused_from_its_first_bytes(head: bytes) -> None:
    with pytest.raises(MalformedMessageError, match="not a syft-rpc JSON message"):
        check_head(head, source="x.request")
    check_head(b' \n{"id"', source="x.request")  # the start of a JSON object passes
