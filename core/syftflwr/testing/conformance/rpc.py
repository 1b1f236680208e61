"""RPC role: send, fetch, wait (prompt on arrival, empty on timeout), forget, close, and
the checks a sender makes before anything leaves the machine."""

from __future__ import annotations

import threading
import time

import pytest

from syftflwr.envelope import Request, Response
from syftflwr.errors import (
    ForbiddenSenderError,
    MessageTooLargeError,
    TransportClosedError,
)
from syftflwr.testing.conformance._federation import AGGREGATOR, DS1, DS2, Federation, Recorder
from syftflwr.testing.conformance.base import ConformanceBase


class RPCConformance(ConformanceBase):
    """The aggregator's side of request/response."""

    def test_request_gets_its_response(self, federation: Federation) -> None:
        federation.serve(DS1, Recorder(lambda r: bytes(r.body).upper()))
        rpc = federation.rpc()
        request = federation.request(DS1, b"hello")
        handle = rpc.send(request)
        assert (handle.id, handle.recipient) == (request.id, DS1)
        response = federation.collect(rpc, [handle])[handle.id]
        assert response.ok, response.error_text
        assert bytes(response.body) == b"HELLO"
        assert (response.id, response.sender, response.recipient) == (request.id, DS1, AGGREGATOR)
        assert (response.app, response.endpoint) == (request.app, request.endpoint)

    def test_fetch_is_none_before_and_the_response_after(self, federation: Federation) -> None:
        gate = threading.Event()

        def held(request: Request) -> bytes:
            gate.wait(federation.timeout)
            return b"done"

        federation.serve(DS1, held)
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS1))
        try:
            assert rpc.fetch(handle) is None
        finally:
            gate.set()
        response = federation.collect(rpc, [handle])[handle.id]
        again = rpc.fetch(handle)
        assert again is not None, "fetch() lost a response that wait() had returned"
        assert (again.id, bytes(again.body)) == (response.id, b"done")

    def test_wait_returns_promptly_when_the_response_arrives(self, federation: Federation) -> None:
        gate = threading.Event()
        federation.serve(DS1, lambda r: b"late" if gate.wait(federation.timeout) else b"")
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS1))
        long_timeout = 4 * federation.timeout
        result: list[Response] = []
        waiter = threading.Thread(target=lambda: result.extend(rpc.wait([handle], long_timeout)))
        waiter.start()
        released = time.monotonic()
        gate.set()
        waiter.join(long_timeout + 10)
        elapsed = time.monotonic() - released
        assert [r.id for r in result] == [handle.id]
        # Not a latency benchmark: only that wait() woke up instead of sleeping out its
        # timeout (an arrival must end the wait, by notification or by polling).
        assert elapsed < long_timeout / 2, (
            f"wait() took {elapsed:.1f}s of its {long_timeout:g}s timeout after the reply "
            "was sent: call notify_arrival() on arrival, or declare poll_interval"
        )

    def test_wait_returns_empty_on_timeout(self, federation: Federation) -> None:
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS2))  # nobody serves ds2
        started = time.monotonic()
        assert rpc.wait([handle], timeout=0.2) == []
        assert time.monotonic() - started < 0.2 + federation.timeout, "wait() overran its timeout"
        assert rpc.wait([], timeout=None) == []

    def test_wait_returns_only_requested_responses(self, federation: Federation) -> None:
        federation.serve(DS1, Recorder())
        rpc = federation.rpc()
        handles = [rpc.send(federation.request(DS1, f"m{i}".encode())) for i in range(5)]
        first = federation.collect(rpc, handles[:2])
        assert set(first) == {h.id for h in handles[:2]}
        rest = federation.collect(rpc, handles[2:])
        assert {i: bytes(r.body) for i, r in rest.items()} == {
            h.id: f"m{i}".encode() for i, h in enumerate(handles) if i >= 2
        }

    def test_forget_drops_one_handle_only(self, federation: Federation) -> None:
        federation.serve(DS1, Recorder())
        rpc = federation.rpc()
        a = rpc.send(federation.request(DS1, b"a"))
        b = rpc.send(federation.request(DS1, b"b"))
        assert set(federation.collect(rpc, [a, b])) == {a.id, b.id}
        rpc.forget(a)
        rpc.forget(a)  # idempotent
        kept = rpc.fetch(b)
        assert kept is not None and bytes(kept.body) == b"b"
        pending = rpc.send(federation.request(DS2))  # unanswered: forgetting is fine too
        rpc.forget(pending)
        assert bytes(federation.roundtrip(DS1, b"after").body) == b"after"

    def test_send_refuses_another_sender(self, federation: Federation) -> None:
        rpc = federation.rpc()
        forged = federation.request(DS1, sender=DS2)
        with pytest.raises(ForbiddenSenderError):
            rpc.send(forged)

    def test_send_refuses_a_body_above_max_message_size(self, federation: Federation) -> None:
        rpc = federation.new_rpc(AGGREGATOR, max_message_size=1024)
        with pytest.raises(MessageTooLargeError):
            rpc.send(federation.request(DS1, b"x" * 4096))

    def test_closed_rpc_refuses_work(self, federation: Federation) -> None:
        rpc = federation.new_rpc(AGGREGATOR)
        rpc.close()
        rpc.close()
        with pytest.raises(TransportClosedError):
            rpc.send(federation.request(DS1))
