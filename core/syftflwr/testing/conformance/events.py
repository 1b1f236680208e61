"""Events role: handlers, error replies, refusals (senders, apps, endpoints, sizes,
expiry), duplicates, and stop/restart without losing or repeating work."""

from __future__ import annotations

import contextlib

from syftflwr.envelope import Request, Response
from syftflwr.errors import SyftflwrError
from syftflwr.roles import RequestHandle, RPCRole
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    DS1,
    DS2,
    STRANGER,
    Federation,
    Recorder,
)
from syftflwr.testing.conformance.base import ConformanceBase


def _refused(federation: Federation, rpc: RPCRole, handle: RequestHandle) -> Response | None:
    """The response to a request that must be refused: none, or an error reply."""
    found = federation.collect(rpc, [handle], timeout=federation.settle)
    response = found.get(handle.id)
    if response is not None:
        assert not response.ok, (
            f"a request that must be refused was answered ok: {bytes(response.body)[:80]!r}"
        )
    return response


class EventsConformance(ConformanceBase):
    """The datasite's side: serving requests."""

    def test_handler_errors_become_error_replies(self, federation: Federation) -> None:
        def handler(request: Request) -> bytes:
            if bytes(request.body) == b"bad":
                raise ValueError("cannot handle this body")
            return b"fine"

        federation.serve(DS1, handler)
        bad = federation.roundtrip(DS1, b"bad")
        assert not bad.ok
        assert "ValueError" in bad.error_text and "cannot handle this body" in bad.error_text
        assert (bad.id, bad.sender, bad.recipient) == (bad.id, DS1, AGGREGATOR)
        good = federation.roundtrip(DS1, b"next")
        assert good.ok and bytes(good.body) == b"fine", "the runner stopped serving after an error"

    def test_handler_may_return_a_full_response(self, federation: Federation) -> None:
        federation.serve(DS1, lambda r: r.reply(b"custom", headers={"x-conformance": "1"}))
        response = federation.roundtrip(DS1)
        assert response.ok and bytes(response.body) == b"custom"
        assert response.headers.get("x-conformance") == "1"

    def test_endpoints_are_routed_to_their_handlers(self, federation: Federation) -> None:
        federation.serve(DS1, {"left": lambda r: b"L", "right": lambda r: b"R"})
        assert bytes(federation.roundtrip(DS1, endpoint="left").body) == b"L"
        assert bytes(federation.roundtrip(DS1, endpoint="right").body) == b"R"

    def test_senders_outside_the_allowlist_are_refused(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        handles = []
        for sender in (DS2, STRANGER):  # a datasite only serves its aggregator
            rpc = federation.new_rpc(sender)
            handle = rpc.send(federation.request(DS1, b"intrusion", sender=sender))
            handles.append((rpc, handle))
        federation.settle_after(DS1)
        for rpc, handle in handles:
            _refused(federation, rpc, handle)
            assert recorder.count(handle.id) == 0, f"a request from {handle.id} reached a handler"

    def test_requests_for_another_app_are_not_handled(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS1, app="another-app"))
        federation.settle_after(DS1)
        _refused(federation, rpc, handle)
        assert recorder.count(handle.id) == 0

    def test_unknown_endpoints_are_refused(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS1, endpoint="nobody-home"))
        federation.settle_after(DS1)
        _refused(federation, rpc, handle)
        assert recorder.count(handle.id) == 0

    def test_oversized_requests_are_refused_on_receipt(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder, max_message_size=1024)
        rpc = federation.rpc()  # the sender's own limit is the default
        handle = rpc.send(federation.request(DS1, b"x" * 4096))
        federation.settle_after(DS1)
        _refused(federation, rpc, handle)
        assert recorder.count(handle.id) == 0

    def test_expired_requests_are_not_handled(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder, clock_skew=0.0)
        rpc = federation.rpc()
        handle = rpc.send(federation.request(DS1, b"stale", ttl=-60.0))
        federation.settle_after(DS1)
        _refused(federation, rpc, handle)
        assert recorder.count(handle.id) == 0, "an expired request reached a handler"

    def test_duplicate_publication_is_handled_once(self, federation: Federation) -> None:
        """The same request id shows up again while its answer is stored (a sync client
        re-delivering, a sender retrying): handled once, the stored answer unchanged."""
        recorder = Recorder(lambda r: b"answer-" + bytes(r.body))
        federation.serve(DS1, recorder)
        rpc = federation.rpc()
        request = federation.request(DS1, b"once")
        handle = rpc.send(request)
        response = federation.collect(rpc, [handle])[handle.id]
        assert response.ok and bytes(response.body) == b"answer-once"
        with contextlib.suppress(SyftflwrError):  # a transport may refuse a reused id
            rpc.send(request)
        federation.settle_after(DS1)
        self._check_handled_once(recorder, request.id)
        again = rpc.fetch(handle)
        assert again is not None and bytes(again.body) == b"answer-once", (
            "a duplicate changed the stored answer"
        )

    def test_redelivery_after_an_answer_is_not_reprocessed(self, federation: Federation) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        rpc = federation.rpc()
        request = federation.request(DS1, b"first")
        handle = rpc.send(request)
        assert handle.id in federation.collect(rpc, [handle])
        rpc.forget(handle)
        with contextlib.suppress(SyftflwrError):  # shows up again (a sync client re-delivering)
            rpc.send(request)
        federation.settle_after(DS1)
        self._check_handled_once(recorder, request.id)

    def test_stop_and_restart_serves_what_arrived_meanwhile(self, federation: Federation) -> None:
        first = Recorder()
        server = federation.serve(DS1, first)
        rpc = federation.rpc()
        answered = rpc.send(federation.request(DS1, b"before"))
        assert answered.id in federation.collect(rpc, [answered])
        server.stop(federation.timeout)
        meanwhile = [rpc.send(federation.request(DS1, f"m{i}".encode())) for i in range(3)]
        second = Recorder()
        federation.serve(DS1, second)
        responses = federation.collect(rpc, meanwhile)
        assert set(responses) == {h.id for h in meanwhile}, (
            "requests sent while the runner was stopped were not served after its restart"
        )
        assert all(r.ok for r in responses.values())
        federation.settle_after(DS1)
        assert second.count(answered.id) == 0, (
            "the restarted runner processed a request that was already answered: persist "
            "handled ids (e.g. syftflwr.mailbox.Journal in context.state_dir)"
        )
        assert len(first) == 1

    def test_runner_survives_a_burst_of_bad_requests(self, federation: Federation) -> None:
        federation.serve(DS1, Recorder())
        rpc = federation.rpc()
        stranger = federation.new_rpc(STRANGER)
        for i in range(5):
            rpc.send(federation.request(DS1, endpoint=f"missing-{i}"))
            rpc.send(federation.request(DS1, ttl=-60.0))
            stranger.send(federation.request(DS1, sender=STRANGER))
        assert bytes(federation.roundtrip(DS1, b"still here").body) == b"still here"

    # -- helpers ----------------------------------------------------------------------------
    def _check_handled_once(self, recorder: Recorder, message_id: str) -> None:
        calls = recorder.count(message_id)
        if self.deduplicates:
            assert calls == 1, (
                f"request {message_id} reached the handler {calls} times: a re-published "
                "or re-delivered request id must be handled once (journal handled ids; "
                "see syftflwr.mailbox.Journal)"
            )
        else:
            assert 1 <= calls <= 2
