"""MailboxRPC and MailboxEvents over a real local directory: round trips, chunked replies,
hostile input, restart without reprocessing, takeover of a dead runner's claims, two
runners on one inbox, serial endpoints, and an aggregator that does no I/O while waiting."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from _mailbox_helpers import AGG, APP, DS1, DS2, Mailbox, wait_for
from syftflwr.envelope import Buffer, Request, encode, encode_parts
from syftflwr.errors import StorageError
from syftflwr.mailbox import Journal, LocalDirStorage, chunking
from syftflwr.mailbox.journal import InboundState
from syftflwr.mailbox.layout import Route
from syftflwr.names import new_message_id
from syftflwr.roles import RequestHandle

INBOX = Route(AGG, DS1, APP, "echo")


def _echo(request: Request) -> bytes:
    return bytes(request.body)


def _round_trip(box: Mailbox, body: bytes = b"ping", to: str = DS1) -> bytes:
    rpc = box.rpcs[0] if box.rpcs else box.rpc()
    handle = rpc.send(box.request(to, body))
    responses = rpc.wait([handle], timeout=20)
    assert responses, "no response"
    assert responses[0].ok, responses[0].error_text
    rpc.forget(handle)
    return bytes(responses[0].body)


def test_round_trip_and_lifecycle(mailbox: Mailbox) -> None:
    events = mailbox.serve(DS1, lambda r: bytes(r.body).upper())
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"hello"))
    (response,) = rpc.wait([handle], timeout=20)
    assert response.ok and bytes(response.body) == b"HELLO"
    storage = mailbox.storage
    assert storage.get(INBOX.request_path(handle.id)) is not None
    assert bytes(storage.get(INBOX.claim_path(handle.id)) or b"") == events.owner.encode()
    entry = events.journal.state_of(handle.id)
    assert entry is not None and entry.state is InboundState.ANSWERED
    rpc.forget(handle)  # the requester deletes its request...
    assert storage.get(INBOX.request_path(handle.id)) is None
    assert events.sweep() == 2  # ...then the responder's retention deletes reply + claim
    assert storage.list(INBOX.reverse().folder) == []


def test_chunked_requests_and_responses(chunked_mailbox: Mailbox) -> None:
    chunked_mailbox.serve(DS1, lambda r: bytes(r.body)[::-1])
    body = os.urandom(3 * 1024 * 1024 + 17)
    assert _round_trip(chunked_mailbox, body) == body[::-1]
    assert chunked_mailbox.storage.list(INBOX.folder) == []  # parts deleted on forget


def test_errors_in_handlers_become_error_replies(mailbox: Mailbox) -> None:
    def boom(request: Request) -> bytes:
        raise ValueError("bad model")

    mailbox.serve(DS1, boom)
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1))
    (response,) = rpc.wait([handle], timeout=20)
    assert not response.ok and "ValueError: bad model" in response.error_text


def _write_raw(box: Mailbox, name: str, data: bytes, route: Route = INBOX) -> None:
    box.storage.put(f"{route.folder}/{name}", [data])


def _reply(box: Mailbox, message_id: str, route: Route = INBOX) -> str | None:
    rpc = box.rpcs[0] if box.rpcs else box.rpc()
    handle = RequestHandle(message_id, route.recipient, route.app, route.endpoint, 0.0, None)
    if not wait_for(lambda: box.storage.get(route.response_path(message_id)) is not None):
        return None
    response = rpc.fetch(handle)
    assert response is not None
    return response.error_text if not response.ok else "ok"


def test_hostile_input_is_rejected_and_the_runner_keeps_serving(
    mailbox: Mailbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syftflwr")
    events = mailbox.serve(DS1, _echo)
    good = mailbox.request(DS1, b"x" * 1000)
    raw = encode(good)
    ids = {k: new_message_id() for k in ("garbage", "empty", "truncated", "forged", "resp", "link")}

    _write_raw(mailbox, f"{ids['garbage']}.request", os.urandom(500))
    _write_raw(mailbox, f"{ids['empty']}.request", b"")
    truncated = encode(replace(good, id=ids["truncated"]))[:-10]
    _write_raw(mailbox, f"{ids['truncated']}.request", truncated)
    forged = replace(good, id=ids["forged"], sender=DS2)  # in AGG's folder, claims DS2
    _write_raw(mailbox, f"{ids['forged']}.request", encode(forged))
    response = replace(good.reply(b""), id=ids["resp"])  # a response in a request's place
    _write_raw(mailbox, f"{ids['resp']}.request", encode(response))
    secret = tmp_path / "secret"
    secret.write_bytes(raw)
    (mailbox.storage.local_path(INBOX.folder) / f"{ids['link']}.request").symlink_to(secret)
    for bad_name in ("..request", "short.request", "a b c d e f g h.request", ".hidden.request"):
        _write_raw(mailbox, bad_name, raw)

    assert "not a syftflwr envelope" in (_reply(mailbox, ids["garbage"]) or "")
    assert "truncated" in (_reply(mailbox, ids["empty"]) or "")
    assert "truncated" in (_reply(mailbox, ids["truncated"]) or "")
    assert "forged sender" in (_reply(mailbox, ids["forged"]) or "")
    assert "not a request" in (_reply(mailbox, ids["resp"]) or "")
    assert "symbolic link" in (_reply(mailbox, ids["link"]) or "")
    # still serving
    assert _round_trip(mailbox, b"after the storm") == b"after the storm"
    for key, message_id in ids.items():
        entry = events.journal.state_of(message_id)
        assert entry is not None and entry.state is InboundState.REJECTED, key
    text = caplog.text
    assert "rejected '..request'" in text and "rejected 'short.request'" in text
    assert secret.read_bytes() == raw  # nothing outside the mailbox touched
    assert events.stats["answered"] == 1


def test_a_non_atomic_writer_gets_a_grace_period(mailbox: Mailbox) -> None:
    """A sync client writing in place: first a short file, then the rest (SyftBox's
    client does this) — the runner waits instead of rejecting the first glimpse."""
    mailbox.grace = 5.0
    events = mailbox.serve(DS1, _echo)
    request = mailbox.request(DS1, b"y" * 5000)
    data = encode(request)
    path = mailbox.storage.local_path(INBOX.request_path(request.id))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(data[:100])
        f.flush()
        assert wait_for(lambda: events.journal.state_of(request.id) is not None)
        f.write(data[100:])
    assert _reply(mailbox, request.id) == "ok"


def test_foreign_sender_folders_are_ignored_with_a_warning(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syftflwr")
    events = mailbox.serve(DS1, _echo)
    mallory = Route("mallory@evil.example", DS1, APP, "echo")
    bad = Request.new(sender=mallory.sender, recipient=DS1, app=APP, endpoint="echo", body=b"x")
    _write_raw(mailbox, f"{bad.id}.request", encode(bad), route=mallory)
    events.sweep()
    assert "mallory@evil.example is not an allowed sender" in caplog.text
    assert _round_trip(mailbox) == b"ping"
    assert mailbox.storage.get(mallory.response_path(bad.id)) is None
    assert events.journal.state_of(bad.id) is None


def test_restart_does_not_reprocess(mailbox: Mailbox, tmp_path: Path) -> None:
    calls: Counter[str] = Counter()

    def handler(request: Request) -> bytes:
        calls[request.id] += 1
        return b"done"

    state = tmp_path / "ds1-state"
    first = mailbox.serve(DS1, handler, state_dir=state)
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1))
    assert rpc.wait([handle], timeout=20)
    first.close()  # the runner stops; the request stays (the aggregator has not forgotten it)
    mailbox.serve(DS1, handler, state_dir=state)
    second_handle = rpc.send(mailbox.request(DS1))
    assert rpc.wait([second_handle], timeout=20)
    assert calls == {handle.id: 1, second_handle.id: 1}


def test_a_dead_runners_claim_is_taken_over(mailbox: Mailbox, tmp_path: Path) -> None:
    """A runner died after claiming: a new runner sharing its journal (same host, its
    process gone) takes the request over, so the crash loses nothing."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    owner = f"{socket.gethostname()}|{int(dead.stdout)}|deadbeef"
    state = tmp_path / "ds1-state"
    journal = Journal(state / "mailbox" / "journal.sqlite")
    request = mailbox.request(DS1, b"survive")
    mailbox.storage.put(INBOX.claim_path(request.id), [owner.encode()])
    journal.claimed(request.id, sender=AGG, app=APP, endpoint="echo", owner=owner)
    journal.close()
    mailbox.storage.put(INBOX.request_path(request.id), list(encode_parts(request)))
    events = mailbox.serve(DS1, _echo, state_dir=state)
    assert _reply(mailbox, request.id) == "ok"
    assert events.journal.state_of(request.id).owner == events.owner  # type: ignore[union-attr]


def test_a_live_foreign_claim_is_respected(mailbox: Mailbox) -> None:
    events = mailbox.serve(DS1, _echo)
    request = mailbox.request(DS1)
    mailbox.storage.put(INBOX.claim_path(request.id), [b"otherhost|1|abc"])
    mailbox.storage.put(INBOX.request_path(request.id), list(encode_parts(request)))
    assert wait_for(lambda: events.stats["claimed_elsewhere"] == 1)
    assert _round_trip(mailbox) == b"ping"
    assert mailbox.storage.get(INBOX.response_path(request.id)) is None


def test_two_runners_on_one_inbox_answer_each_request_once(mailbox: Mailbox) -> None:
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def handler(request: Request) -> bytes:
        with lock:
            calls[request.id] += 1
        return bytes(request.body)

    a = mailbox.serve(DS1, handler)
    b = mailbox.serve(DS1, handler)
    rpc = mailbox.rpc()
    handles = [rpc.send(mailbox.request(DS1, str(i).encode())) for i in range(150)]
    got: dict[str, bytes] = {}
    deadline = time.monotonic() + 60
    while len(got) < len(handles) and time.monotonic() < deadline:
        for response in rpc.wait([h for h in handles if h.id not in got], timeout=5):
            got[response.id] = bytes(response.body)
    assert len(got) == 150
    assert set(calls.values()) == {1} and len(calls) == 150
    # a runner counts a request answered after its reply is visible (and journaled):
    # the last replies can reach the sender before their runners count them
    answered = lambda: a.stats["answered"] + b.stats["answered"]  # noqa: E731
    assert wait_for(lambda: answered() >= 150), f"{answered()} of 150 counted answered"
    assert answered() == 150


def test_serial_endpoints_run_one_request_at_a_time(mailbox: Mailbox) -> None:
    active = Counter[str]()
    peak = Counter[str]()
    lock = threading.Lock()
    pause = threading.Event()

    def handler(request: Request) -> bytes:
        with lock:
            active[request.endpoint] += 1
            peak[request.endpoint] = max(peak[request.endpoint], active[request.endpoint])
        pause.wait(0.05)
        with lock:
            active[request.endpoint] -= 1
        return b""

    mailbox.serve(DS1, handler, endpoint="messages", workers=4)
    mailbox.serve(DS2, handler, endpoint="echo", workers=4)
    rpc = mailbox.rpc()
    handles = [rpc.send(mailbox.request(DS1, endpoint="messages")) for _ in range(8)]
    handles += [rpc.send(mailbox.request(DS2, endpoint="echo")) for _ in range(8)]
    got: set[str] = set()
    while len(got) < len(handles):
        got |= {r.id for r in rpc.wait([h for h in handles if h.id not in got], timeout=20)}
    assert peak["messages"] == 1  # Flower traffic: serial
    assert peak["echo"] >= 1


class CountingStorage(LocalDirStorage):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets = 0

    def get(
        self, path: str, *, max_size: int | None = None
    ) -> bytes | bytearray | memoryview | None:
        self.gets += 1
        return super().get(path, max_size=max_size)


def test_waiting_aggregator_does_no_io_for_pending_requests(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "root")
    box.storage = CountingStorage(tmp_path / "root")
    box.poller.storage = box.storage
    try:
        rpc = box.rpc()
        datasites = [f"ds{i}@example.org" for i in range(30)]
        handles = [rpc.send(box.request(ds)) for ds in datasites]
        before = box.storage.gets
        for _ in range(20):
            assert [rpc.fetch(h) for h in handles] == [None] * 30
        assert box.storage.gets == before  # flat: nothing read until a reply is reported
    finally:
        box.close()


def test_a_corrupt_response_is_logged_once_and_not_reread(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syftflwr")
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1))
    mailbox.storage.put(INBOX.response_path(handle.id), [b"garbage"])
    assert wait_for(lambda: rpc.fetch(handle) is None and "rejected response" in caplog.text)
    for _ in range(5):
        assert rpc.fetch(handle) is None
    assert caplog.text.count("rejected response") == 1
    assert chunking.read(mailbox.storage, INBOX.request_path(handle.id), max_size=None)


def test_a_later_process_attaches_to_a_request_an_earlier_one_sent(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    """A resumed aggregator: a new RPC role (same identity and journal) attaches to a
    request the stopped one sent, and is woken by the reply's arrival (the periodic
    safety-net re-check alone would take 5 s)."""
    first = mailbox.rpc(state_dir=tmp_path / "agg")
    handle = first.send(mailbox.request(DS1, b"before the crash"))
    first.close()  # killed: nothing forgotten, nobody waits
    later = mailbox.rpc(state_dir=tmp_path / "agg")
    later.attach(handle)
    mailbox.serve(DS1, lambda request: bytes(request.body))  # the reply comes now
    started = time.monotonic()
    [response] = later.wait([handle], timeout=4.0)
    assert bytes(response.body) == b"before the crash"
    # woken by the arrival: without attach only the final re-check at the timeout finds it
    assert time.monotonic() - started < 3.0
    later.forget(handle)
    assert not list(mailbox.root.rglob(f"{handle.id}.request"))  # cleaned up as usual


def test_a_role_run_again_after_stop_serves_new_requests(mailbox: Mailbox) -> None:
    """``syftflwr serve`` runs a datasite's runner again after each run's stop: the
    second ``run_forever`` of one events role must watch its inboxes again (it served
    nothing, as its routes were known from the first run and never watched anew)."""
    events = mailbox.serve(DS1, _echo)
    assert _round_trip(mailbox, b"first") == b"first"
    events.stop()
    mailbox.threads[-1].join(10)
    assert not mailbox.threads[-1].is_alive()
    again = threading.Thread(target=events.run_forever, daemon=True)
    again.start()
    mailbox.threads.append(again)
    assert _round_trip(mailbox, b"second") == b"second"


class SlowFirstLook(LocalDirStorage):
    """A storage whose first listing of one folder hangs until released: a slow remote
    store (Drive: the reply folder's lookup and listing are round trips) on first contact."""

    def __init__(self, root: Path, slow: str) -> None:
        super().__init__(root)
        self.slow = slow
        self.entered = threading.Event()
        self.release = threading.Event()

    def list(self, folder: str) -> list[str]:
        if folder == self.slow and not self.release.is_set():
            self.entered.set()
            self.release.wait(30)
        return super().list(folder)


def test_a_slow_first_look_at_one_reply_folder_delays_no_other_recipient(tmp_path: Path) -> None:
    """Sending to a new recipient watches its reply folder first (one or two round trips
    on a remote store): that look must hold up only sends to the same recipient, not the
    whole push. It ran under one lock for every folder, so a push to N new datasites
    looked at their folders one after the other (N x two Drive calls on first contact)."""
    slow = Route(AGG, DS1, APP, "echo").reverse().folder
    box = Mailbox(tmp_path)
    storage = SlowFirstLook(tmp_path, slow)
    box.storage = storage
    box.poller = box.poller.__class__(storage, interval=0.01, max_interval=0.05)
    try:
        rpc = box.rpc()
        first = threading.Thread(target=rpc.send, args=(box.request(DS1),), daemon=True)
        first.start()
        assert storage.entered.wait(10)
        other = threading.Thread(target=rpc.send, args=(box.request(DS2),), daemon=True)
        other.start()
        other.join(10)
        assert not other.is_alive(), "the send to DS2 waited for the look at DS1's folder"
        assert first.is_alive()  # ...which still hangs: the sends really overlapped
    finally:
        storage.release.set()
        first.join(10)
        box.close()


class NewNames(LocalDirStorage):
    """A storage offering ``put_new`` (PutsNew), recording which way each request went."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ways: list[str] = []

    def put_new(self, path: str, parts: Sequence[Buffer]) -> None:
        self.ways.append("new")
        assert super().put_if_absent(path, parts), f"{path} was not new"

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        if path.endswith(".request"):
            self.ways.append("if absent")
        return super().put_if_absent(path, parts)


def test_a_request_id_the_journal_never_saw_is_written_as_new(tmp_path: Path) -> None:
    """A request whose id this participant's journal has never seen was never published
    by it (the journal records before publishing), so a storage offering PutsNew may
    skip its existence check (Drive: one call per message, not two). An id the journal
    knows — a resumed run sending again, or an id reused — goes the exclusive way and
    is still refused when it exists."""
    box = Mailbox(tmp_path)
    storage = NewNames(tmp_path)
    box.storage = storage
    try:
        rpc = box.rpc(state_dir=tmp_path / "state")
        request = box.request(DS1)
        rpc.send(request)
        assert storage.ways == ["new"]
        with pytest.raises(StorageError, match="already exists"):
            rpc.send(request)
        assert storage.ways == ["new", "if absent"]
    finally:
        box.close()
