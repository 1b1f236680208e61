"""Retention deletes this participant's own delivered/expired objects and nothing else;
the scheduler runs every participant's sweeps on one thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from _mailbox_helpers import Client, context, wait_for
from syftflwr.envelope import Request
from syftflwr.info import Capabilities
from syftflwr.mailbox import Journal, LocalDirStorage, MailboxRPC
from syftflwr.mailbox.arrivals import Poller
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.retention import Scheduler, sweep_sent, sweep_served

AGG, DS = "agg@example.org", "ds@example.org"
INBOX = Route(AGG, DS, "app", "ep")  # the datasite's inbox; replies go to INBOX.reverse()
ANSWERED, PENDING, EXPIRED, UNKNOWN = "a" * 32, "b" * 32, "c" * 32, "d" * 32


@pytest.fixture
def storage(tmp_path: Path) -> LocalDirStorage:
    return LocalDirStorage(tmp_path / "root")


def _served(storage: LocalDirStorage, journal: Journal, message_id: str, **kw: object) -> None:
    journal.claimed(message_id, sender=AGG, app="app", endpoint="ep", owner="me", **kw)  # type: ignore[arg-type]
    journal.answered(message_id)
    storage.put(INBOX.claim_path(message_id), [b"me"])
    storage.put(INBOX.response_path(message_id), [b"reply"])


def test_responder_removes_replies_once_the_request_is_gone(storage: LocalDirStorage) -> None:
    journal = Journal(None)
    _served(storage, journal, ANSWERED)  # requester forgot it: request gone
    _served(storage, journal, PENDING)  # request still there, not expired
    storage.put(INBOX.request_path(PENDING), [b"req"])
    _served(storage, journal, EXPIRED, expires_at=time.time() - 100)  # expired, still there
    storage.put(INBOX.request_path(EXPIRED), [b"req"])
    out = INBOX.reverse().folder
    foreign = [
        f"{out}/notes.txt",  # not a mailbox object
        f"{out}/{UNKNOWN}.request",  # a request is never the responder's to delete
        f"{out}/{UNKNOWN}.request.part-00001-of-00002",
    ]
    for path in foreign:
        storage.put(path, [b"keep me"])
    storage.put(f"{INBOX.folder}/other.bin", [b"keep me too"])

    removed = sweep_served(storage, INBOX, journal, skew=0.0)

    assert removed == 4
    left = set(storage.list(out))
    assert {f"{PENDING}.response", f"{PENDING}.claim"} <= left
    assert not any(n.startswith((ANSWERED, EXPIRED)) for n in left)
    for path in foreign:
        assert storage.get(path) is not None
    assert storage.get(f"{INBOX.folder}/other.bin") is not None
    assert storage.get(INBOX.request_path(EXPIRED)) is not None  # the peer's, untouched
    assert journal.state_of(ANSWERED).cleaned  # type: ignore[union-attr]
    assert not journal.state_of(PENDING).cleaned  # type: ignore[union-attr]


def test_responder_skips_requests_in_flight(storage: LocalDirStorage) -> None:
    journal = Journal(None)
    _served(storage, journal, ANSWERED)
    assert sweep_served(storage, INBOX, journal, busy={ANSWERED}) == 0
    assert sweep_served(storage, INBOX, journal) == 2


def test_requester_removes_forgotten_and_expired_requests(storage: LocalDirStorage) -> None:
    journal = Journal(None)
    outbox = INBOX  # the aggregator's outbox toward the datasite
    for message_id, expires in ((ANSWERED, None), (PENDING, None), (EXPIRED, time.time() - 1)):
        journal.sending(message_id, recipient=DS, app="app", endpoint="ep", expires_at=expires)
        journal.sent(message_id)
        storage.put(outbox.request_path(message_id), [b"req"])
        storage.put(f"{outbox.folder}/{message_id}.request.part-00001-of-00001", [b"p"])
    journal.forgotten(ANSWERED)
    storage.put(outbox.request_path(UNKNOWN), [b"not in this journal"])
    storage.put(f"{outbox.folder}/readme.md", [b"keep"])

    removed = sweep_sent(storage, outbox, journal)

    assert removed == 4
    assert sorted(storage.list(outbox.folder)) == sorted(
        [
            f"{PENDING}.request",
            f"{PENDING}.request.part-00001-of-00001",
            f"{UNKNOWN}.request",
            "readme.md",
        ]
    )
    assert journal.sent_state(EXPIRED).state.value == "forgotten"  # type: ignore[union-attr]


def test_scheduler_runs_many_tasks_on_one_thread() -> None:
    scheduler = Scheduler(name="test-scheduler")
    seen: list[str] = []
    lock = threading.Lock()

    def job(tag: str) -> None:
        with lock:
            seen.append(f"{tag}:{threading.current_thread().name}")

    tasks = [scheduler.every(0.01, lambda t=str(i): job(t)) for i in range(20)]
    assert wait_for(lambda: all(t.runs >= 2 for t in tasks))
    for task in tasks:
        task.cancel()
    assert {entry.split(":")[1] for entry in seen} == {"test-scheduler"}
    assert sum(1 for t in threading.enumerate() if t.name == "test-scheduler") == 1


def test_scheduler_survives_a_failing_task() -> None:
    scheduler = Scheduler(name="test-scheduler-2")
    ok = scheduler.every(0.01, lambda: None)
    bad = scheduler.every(0.01, lambda: 1 / 0)
    assert wait_for(lambda: ok.runs >= 3 and bad.runs >= 3)
    ok.cancel()
    bad.cancel()


class _HeldList(LocalDirStorage):
    """Its first listing by the retention thread waits for the test: a sweep in progress."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def list(self, folder: str) -> list[str]:
        sweeping = threading.current_thread().name == "test-retention"
        if sweeping and self.armed and not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
        return super().list(folder)


def test_closing_waits_for_a_sweep_in_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An RPC role closed while its retention sweep runs lets the sweep finish before it
    closes the journal the sweep writes to. It closed at once, and the sweep then failed
    with "retention of ...: mailbox journal ...: Cannot operate on a closed database"
    (seen at the end of benchmark runs)."""
    storage = _HeldList(tmp_path / "root")
    rpc = MailboxRPC(
        Client(AGG),
        context(AGG, tmp_path / "state"),
        Capabilities(notifies_arrivals=True, shares_objects=True),
        storage=storage,
        arrivals=Poller(storage, interval=0.01, max_interval=0.05),
        retention_interval=0.05,
        scheduler=Scheduler(name="test-retention"),
    )
    rpc.send(Request.new(sender=AGG, recipient=DS, app="app", endpoint="ep", body=b"x", ttl=60))
    storage.armed = True  # the sweep lists the route of that request
    assert storage.entered.wait(10), "no sweep ran"
    closing = threading.Thread(target=rpc.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "close did not wait for the sweep in progress"
    storage.release.set()
    closing.join(10)
    assert not closing.is_alive()
    assert not [r for r in caplog.records if "closed database" in r.getMessage()]
