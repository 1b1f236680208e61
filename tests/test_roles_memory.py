"""Role semantics that core's base classes give every transport, exercised through the
built-in ``memory`` transport (real threads, no mocks)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from syftflwr.envelope import Request
from syftflwr.errors import ForbiddenSenderError, MessageTooLargeError, TransportClosedError
from syftflwr.info import TransportContext
from syftflwr.roles import ClientRole, EventsRole, RPCRole
from syftflwr.transports import memory

AGG, DS1, DS2 = "agg@example.org", "ds1@example.org", "ds2@example.org"


def ctx(email: str, namespace: str, **kw: object) -> TransportContext:
    return TransportContext(
        transport="memory",
        app_name="app",
        email=email,
        aggregator=AGG,
        datasites=(DS1, DS2),
        options={"namespace": namespace},
        **kw,  # type: ignore[arg-type]
    )


class Federation:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        agg = ctx(AGG, namespace)
        self.rpc = memory.syftflwr_make_rpc(memory.syftflwr_make_client(agg), agg)
        self.events: dict[str, EventsRole] = {}
        self.threads: list[threading.Thread] = []

    def serve(self, email: str, handler, **kw: object) -> EventsRole:  # type: ignore[no-untyped-def]
        c = ctx(email, self.namespace, **kw)
        events = memory.syftflwr_make_events(memory.syftflwr_make_client(c), c)
        events.on_request("messages", handler)
        thread = threading.Thread(target=events.run_forever, daemon=True)
        thread.start()
        self.events[email] = events
        self.threads.append(thread)
        return events

    def request(
        self, to: str, body: bytes = b"ping", ttl: float = 30, sender: str = AGG
    ) -> Request:
        return Request.new(
            sender=sender, recipient=to, app="app", endpoint="messages", body=body, ttl=ttl
        )

    def close(self) -> None:
        for events in self.events.values():
            events.close()
        for thread in self.threads:
            thread.join(5)
        self.rpc.close()


@pytest.fixture
def fed(memory_namespace: str) -> Iterator[Federation]:
    federation = Federation(memory_namespace)
    yield federation
    federation.close()


def test_roles_satisfy_core_interfaces(fed: Federation) -> None:
    assert isinstance(fed.rpc, RPCRole)
    assert isinstance(fed.rpc.client, ClientRole)
    assert isinstance(fed.serve(DS1, lambda r: b""), EventsRole)


def test_request_response_between_threads(fed: Federation) -> None:
    fed.serve(DS1, lambda r: bytes(r.body).upper())
    handle = fed.rpc.send(fed.request(DS1, b"hello"))
    [response] = fed.rpc.wait([handle], timeout=10)
    assert response.ok and bytes(response.body) == b"HELLO"
    assert (response.sender, response.recipient, response.id) == (DS1, AGG, handle.id)


def test_wait_times_out_empty_without_hanging(fed: Federation) -> None:
    handle = fed.rpc.send(fed.request(DS2))  # nobody serves ds2
    start = time.monotonic()
    assert fed.rpc.wait([handle], timeout=0.3) == []
    assert time.monotonic() - start < 5


def test_handler_exception_becomes_error_reply_and_runner_keeps_serving(fed: Federation) -> None:
    def handler(request: Request) -> bytes:
        if bytes(request.body) == b"bad":
            raise ValueError("cannot handle this")
        return b"fine"

    fed.serve(DS1, handler)
    bad = fed.rpc.send(fed.request(DS1, b"bad"))
    [response] = fed.rpc.wait([bad], timeout=10)
    assert not response.ok
    assert "ValueError: cannot handle this" in response.error_text
    good = fed.rpc.send(fed.request(DS1, b"ok"))
    [response] = fed.rpc.wait([good], timeout=10)
    assert response.ok and bytes(response.body) == b"fine"


def test_datasite_refuses_senders_other_than_its_aggregator(
    fed: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    fed.serve(DS1, lambda r: calls.append(r.sender) or b"")
    c2 = ctx(DS2, fed.namespace)
    rogue = memory.syftflwr_make_rpc(memory.syftflwr_make_client(c2), c2)
    with caplog.at_level(logging.WARNING, logger="syftflwr.transport"):
        handle = rogue.send(fed.request(DS1, sender=DS2))
        assert rogue.wait([handle], timeout=0.5) == []
    assert calls == []
    assert "sender ds2@example.org is not allowed" in caplog.text
    rogue.close()


def test_expired_request_is_not_delivered(fed: Federation) -> None:
    calls: list[str] = []
    fed.serve(DS1, lambda r: calls.append(r.id) or b"", clock_skew=0.0)
    handle = fed.rpc.send(fed.request(DS1, ttl=-1))
    assert fed.rpc.wait([handle], timeout=0.5) == []
    assert calls == []


def test_concurrent_senders_get_their_own_answers(fed: Federation) -> None:
    fed.serve(DS1, lambda r: bytes(r.body) * 2)
    fed.serve(DS2, lambda r: bytes(r.body) * 3)

    def one(i: int) -> bool:
        to = (DS1, DS2)[i % 2]
        body = f"msg-{i}".encode()
        handle = fed.rpc.send(fed.request(to, body))
        [response] = fed.rpc.wait([handle], timeout=20)
        return bytes(response.body) == body * (2 if to == DS1 else 3)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(200)))


def test_sent_body_is_isolated_from_later_mutation(fed: Federation) -> None:
    seen: list[bytes] = []
    gate = threading.Event()

    def handler(r: Request) -> bytes:
        gate.wait(5)
        seen.append(bytes(r.body))
        return b""

    fed.serve(DS1, handler)
    body = bytearray(b"original")
    handle = fed.rpc.send(fed.request(DS1, bytes(body)))
    body[:] = b"mutated!"
    gate.set()
    fed.rpc.wait([handle], timeout=10)
    assert seen == [b"original"]


def test_sender_must_be_this_participant(fed: Federation) -> None:
    with pytest.raises(ForbiddenSenderError, match="not this participant"):
        fed.rpc.send(fed.request(DS1, sender=DS2))


def test_max_message_size_is_enforced_on_send(memory_namespace: str) -> None:
    small = ctx(AGG, memory_namespace, max_message_size=10)
    rpc = memory.syftflwr_make_rpc(memory.syftflwr_make_client(small), small)
    with pytest.raises(MessageTooLargeError, match="max_message_size"):
        rpc.send(
            Request.new(sender=AGG, recipient=DS1, app="app", endpoint="messages", body=b"x" * 11)
        )
    rpc.close()


def test_forged_response_is_ignored(fed: Federation) -> None:
    handle = fed.rpc.send(fed.request(DS1))
    request = fed.request(DS1)
    forged = replace(request.reply(b"evil"), id=handle.id, sender=DS2)  # ds2 answers for ds1
    memory.broker(fed.namespace).post_response(forged)
    assert fed.rpc.fetch(handle) is None


def test_closed_role_refuses_use(fed: Federation) -> None:
    fed.rpc.close()
    with pytest.raises(TransportClosedError):
        fed.rpc.send(fed.request(DS1))


def test_stop_before_serving_is_not_lost(fed: Federation) -> None:
    c = ctx(DS1, fed.namespace)
    events = memory.syftflwr_make_events(memory.syftflwr_make_client(c), c)
    events.on_request("messages", lambda r: b"")
    events.stop()  # e.g. a signal while the runner was still starting
    thread = threading.Thread(target=events.run_forever, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "run_forever must honour a stop that came first"
    # and the role can serve again afterwards
    thread = threading.Thread(target=events.run_forever, daemon=True)
    thread.start()
    handle = fed.rpc.send(fed.request(DS1))
    assert fed.rpc.wait([handle], timeout=10)
    events.stop()
    thread.join(5)
    assert not thread.is_alive()
    events.close()
