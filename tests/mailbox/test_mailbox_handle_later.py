"""A handler that cannot handle a request yet (``HandleLater``: its shared blob still
uploads) gets it back later from the mailbox's events role — without an answer, without
holding up the requests behind it on a serial endpoint — and a request its sender
withdrew meanwhile is dropped. Real files, a real poller, a real RPC role."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mailbox_helpers import AGG, DS1, Client, Mailbox, context, wait_for
from syftflwr.envelope import Request, Response
from syftflwr.info import Capabilities
from syftflwr.roles import BaseEvents, HandleLater

SERIAL = "messages"  # Flower's endpoint: one request at a time, in arrival order


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Mailbox]:
    mailbox = Mailbox(tmp_path / "root")
    yield mailbox
    mailbox.close()


class NotYet:
    """Hands back every request whose body is ``b"later"`` until ``ready`` is set."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.calls: dict[bytes, int] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> bytes:
        body = bytes(request.body)
        with self.lock:
            self.calls[body] = self.calls.get(body, 0) + 1
        if body.startswith(b"later") and not self.ready.is_set():
            raise HandleLater("its blob is not stored yet (a test)", 0.05)
        return body.upper()


def test_a_request_handed_back_is_answered_once_and_holds_up_nobody(box: Mailbox) -> None:
    handler = NotYet()
    events = box.serve(DS1, handler, endpoint=SERIAL)
    rpc = box.rpc()
    later = rpc.send(box.request(DS1, b"later", endpoint=SERIAL))
    assert wait_for(lambda: handler.calls.get(b"later", 0) >= 2), "never handed back"
    now = rpc.send(box.request(DS1, b"now", endpoint=SERIAL))  # behind it, same endpoint
    (response,) = rpc.wait([now], timeout=10)
    assert bytes(response.body) == b"NOW"
    assert rpc.fetch(later) is None  # not answered while it waits
    handler.ready.set()
    (response,) = rpc.wait([later], timeout=10)
    assert bytes(response.body) == b"LATER"
    # counted after the reply is visible: wait for the count, then check it is exact
    assert wait_for(lambda: events.stats["answered"] >= 2)
    assert events.stats["answered"] == 2


def test_a_request_withdrawn_while_handed_back_is_dropped(box: Mailbox) -> None:
    handler = NotYet()
    events = box.serve(DS1, handler, endpoint=SERIAL)
    rpc = box.rpc()
    handle = rpc.send(box.request(DS1, b"later", endpoint=SERIAL))
    assert wait_for(lambda: handler.calls.get(b"later", 0) >= 2)
    rpc.forget(handle)  # the sender withdraws it (its blob failed)
    assert wait_for(lambda: events.stats["gone"] == 1), "a withdrawn request kept waiting"
    calls = handler.calls[b"later"]
    assert not wait_for(lambda: handler.calls[b"later"] > calls, timeout=0.5)
    assert events.stats["answered"] == 0 and events.stats["rejected"] == 0


class Immediate(BaseEvents):
    """An events role that cannot hand requests back (as the memory transport's)."""

    def _serve(self) -> None:
        self.stopped.wait()


def test_an_events_role_that_cannot_hand_back_answers_with_an_error() -> None:
    role = Immediate(Client(DS1), context(DS1), Capabilities(notifies_arrivals=True))
    role.on_request(SERIAL, NotYet())
    request = Request.new(sender=AGG, recipient=DS1, app="app", endpoint=SERIAL,
                          body=b"later", ttl=60)  # fmt: skip
    response = role.dispatch(request)
    assert isinstance(response, Response) and not response.ok
    assert "not stored yet (a test)" in response.error_text
    assert "cannot wait" in response.error_text
