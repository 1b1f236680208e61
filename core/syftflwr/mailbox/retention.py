"""Scheduled cleanup of delivered and expired messages — this participant's OWN objects
only, decided from what the mailbox and the journal say, never from guesses.

Who deletes what (every storage lets a participant delete only what it wrote):

* the **requester** deletes its request (and parts) when it forgets the handle — at once —
  and, in the sweep, requests the journal says are forgotten or expired;
* the **responder** deletes its response (and parts) and its claim once the request is
  gone from its inbox (the requester is done) or the request expired;
* the **sender of a blob** deletes it when it drops it — at once — and, in the sweep,
  blobs the journal says are forgotten, or expired with no request of the app sent
  since the blob was stored still live (a sender reuses a blob for a later push
  beyond the expiry it was stored with), or abandoned mid-write.

Anything else — a file this participant did not write, a name that is not a mailbox
object, objects of ids the journal does not know, a request still being handled — is
left alone. One process-wide :class:`Scheduler` thread runs every participant's sweeps.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

from syftflwr.errors import SyftflwrError
from syftflwr.mailbox import chunking
from syftflwr.mailbox.journal import BlobState, Journal, OutboundState
from syftflwr.mailbox.layout import ObjectKind, Route, blob_folder, blob_path, parse_name
from syftflwr.mailbox.storage import Storage

log = logging.getLogger("syftflwr.mailbox")

DEFAULT_INTERVAL = 30.0
"""Seconds between sweeps (the transports' ``retention_interval`` option)."""
JOURNAL_KEEP = 24 * 3600.0
"""Seconds a finished, cleaned journal entry is kept before it is pruned."""
ABANDONED_SEND_AGE = 3600.0
"""A send never finished (a crash mid-write) is cleaned up after this many seconds."""
CLOSE_WAIT = 30.0
"""Seconds a closing role waits for its retention sweep in progress to finish."""


def _deletion_order(names: list[str]) -> list[str]:
    # Whole objects and manifests before parts, so no reader sees a manifest without parts.
    return sorted(names, key=lambda n: (".part-" in n, n))


def sweep_served(
    storage: Storage,
    route: Route,
    journal: Journal,
    *,
    now: float | None = None,
    skew: float = 0.0,
    busy: Container[str] = (),
    inbox_names: Iterable[str] | None = None,
    outbox_names: Iterable[str] | None = None,
) -> int:
    """Responder side, for the inbox ``route`` (peer -> me): delete my responses and claims
    in ``route.reverse().folder`` whose request is gone from ``route.folder`` or expired.
    Returns the number of objects deleted.

    The outbox must be listed BEFORE the inbox (``outbox_names``/``inbox_names``, if
    the caller has them): a request that arrives between the two listings is then in
    the inbox listing whenever its claim or reply is in the outbox listing. The other
    order would read "request gone" for a request that was merely newer than the inbox
    listing, and delete a live claim (another runner then handles it twice) or a fresh
    reply (the requester never gets it).
    """
    now = time.time() if now is None else now
    folder = route.reverse().folder
    if outbox_names is None:
        if inbox_names is not None:
            raise ValueError("pass outbox_names with inbox_names: the outbox is listed first")
        outbox_names = storage.list(folder)
    inbox = set(storage.list(route.folder) if inbox_names is None else inbox_names)
    removed = 0
    expired_ids: dict[str, bool] = {}
    cleaned: set[str] = set()
    for name in _deletion_order(list(outbox_names)):
        parsed = parse_name(name)
        if parsed is None or parsed.kind not in (ObjectKind.RESPONSE, ObjectKind.CLAIM):
            continue
        if parsed.id in busy:
            continue
        if parsed.id not in expired_ids:
            entry = journal.state_of(parsed.id)
            expired_ids[parsed.id] = bool(
                entry and entry.expires_at is not None and now > entry.expires_at + skew
            )
        request_present = f"{parsed.id}.{ObjectKind.REQUEST.value}" in inbox
        if request_present and not expired_ids[parsed.id]:
            continue
        storage.delete(f"{folder}/{name}")
        removed += 1
        cleaned.add(parsed.id)
    for message_id in cleaned:
        journal.cleaned(message_id)
    return removed


def sweep_sent(
    storage: Storage,
    route: Route,
    journal: Journal,
    *,
    now: float | None = None,
    skew: float = 0.0,
    busy: Container[str] = (),
) -> int:
    """Requester side, for the outbox ``route`` (me -> peer): delete my requests (and
    parts) that the journal says are forgotten, expired, or abandoned mid-send."""
    now = time.time() if now is None else now
    removed = 0
    verdicts: dict[str, bool] = {}
    for name in _deletion_order(storage.list(route.folder)):
        parsed = parse_name(name)
        if parsed is None or parsed.kind is not ObjectKind.REQUEST or parsed.id in busy:
            continue
        if parsed.id not in verdicts:
            entry = journal.sent_state(parsed.id)
            if entry is None:
                verdicts[parsed.id] = False  # not in this journal: not ours to judge
            else:
                expired = entry.expires_at is not None and now > entry.expires_at + skew
                abandoned = (
                    entry.state is OutboundState.SENDING
                    and now - entry.updated_at > ABANDONED_SEND_AGE
                )
                verdicts[parsed.id] = entry.state is OutboundState.FORGOTTEN or expired or abandoned
                if verdicts[parsed.id] and entry.state is not OutboundState.FORGOTTEN:
                    journal.forgotten(parsed.id)
        if verdicts[parsed.id]:
            storage.delete(f"{route.folder}/{name}")
            removed += 1
    return removed


def sweep_blobs(
    storage: Storage,
    sender: str,
    journal: Journal,
    wire_app: Callable[[str], str],
    *,
    now: float | None = None,
    skew: float = 0.0,
    busy: Container[str] = (),
) -> int:
    """Sender side: delete ``sender``'s blobs that the journal says are forgotten,
    expired (and no request of their app sent since they were stored is still live),
    or abandoned mid-write; ``busy``: names this process still holds. Returns the
    number of objects deleted."""
    now = time.time() if now is None else now
    removed = 0
    for entry in journal.blobs():
        if entry.name in busy:
            continue
        expired = (
            entry.expires_at is not None
            and now > entry.expires_at + skew
            and not journal.live_requests_since(entry.app, entry.created_at, now=now, skew=skew)
        )
        abandoned = entry.state is BlobState.STORING and now - entry.updated_at > ABANDONED_SEND_AGE
        if not (entry.state is BlobState.FORGOTTEN or expired or abandoned):
            continue
        if entry.state is not BlobState.FORGOTTEN:
            journal.blob_forgotten(entry.name)
        removed += delete_blob(storage, sender, wire_app(entry.app), entry.name, entry.parts)
        journal.blob_deleted(entry.name)
    return removed


def delete_blob(storage: Storage, sender: str, app: str, name: str, parts: int | None) -> int:
    """Delete one of ``sender``'s blobs: the blob (or its manifest) first, then its parts
    (``parts``: the known count; None finds them by listing), then whatever else is in
    its folder (a storage's sharing marker, parts of an unknown count). Returns how
    many objects were there."""
    folder = blob_folder(sender, app, name)
    names = storage.list(folder)
    if not names:
        return 0
    chunking.delete(storage, blob_path(sender, app, name), parts=parts)
    for other in _deletion_order(storage.list(folder)):
        try:
            storage.delete(f"{folder}/{other}")
        except SyftflwrError as exc:  # a sub-folder a storage made: not ours to remove
            log.debug("left %s/%s in place: %s", folder, other, exc)
    return len(names)


# --------------------------------------------------------------------------- scheduling
@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    task: ScheduledTask = field(compare=False)


class ScheduledTask:
    """A periodic job; :meth:`cancel` stops it (a run in progress finishes)."""

    def __init__(self, scheduler: Scheduler, fn: Callable[[], object], interval: float, name: str):
        self.scheduler = scheduler
        self.fn = fn
        self.interval = interval
        self.name = name
        self.cancelled = False
        self.runs = 0
        self._state = threading.Condition()
        self._running_in: threading.Thread | None = None

    def cancel(self, *, wait: float = 0.0) -> None:
        """No more runs; with ``wait``, also let a run in progress finish (at most
        ``wait`` seconds) before returning: its owner may then close what it uses (a
        sweep cut off by its journal closing failed with "Cannot operate on a closed
        database"). Never waits for itself (a task cancelled by its own run)."""
        with self._state:
            self.cancelled = True
            if wait > 0 and self._running_in not in (None, threading.current_thread()):
                self._state.wait_for(lambda: self._running_in is None, wait)

    def run(self) -> None:
        with self._state:
            if self.cancelled:
                return
            self._running_in = threading.current_thread()
        try:
            self.fn()
        except SyftflwrError as exc:
            log.warning("%s: %s", self.name, exc)
        except Exception:
            log.exception("%s failed", self.name)
        finally:
            with self._state:
                self._running_in = None
                self._state.notify_all()
        self.runs += 1


class Scheduler:
    """Runs periodic tasks on ONE daemon thread (started lazily), so a process serving
    many participants does not grow a thread per participant."""

    def __init__(self, name: str = "syftflwr-retention") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def every(
        self, interval: float, fn: Callable[[], object], *, name: str = "retention sweep"
    ) -> ScheduledTask:
        """Run ``fn`` every ``interval`` seconds, the first time after one interval."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        task = ScheduledTask(self, fn, interval, name)
        with self._cond:
            heapq.heappush(self._heap, _Entry(time.monotonic() + interval, next(self._seq), task))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return task

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    self._heap = [e for e in self._heap if not e.task.cancelled]
                    heapq.heapify(self._heap)
                    if not self._heap:
                        self._cond.wait(60.0)
                        continue
                    delay = self._heap[0].due - time.monotonic()
                    if delay <= 0:
                        entry = heapq.heappop(self._heap)
                        break
                    self._cond.wait(delay)
            entry.task.run()
            if not entry.task.cancelled:
                with self._cond:
                    entry.due = time.monotonic() + entry.task.interval
                    heapq.heappush(self._heap, entry)


_SCHEDULER: Scheduler | None = None
_SCHEDULER_LOCK = threading.Lock()


def shared_scheduler() -> Scheduler:
    """The process-wide scheduler all mailbox roles share."""
    global _SCHEDULER
    with _SCHEDULER_LOCK:
        if _SCHEDULER is None:
            _SCHEDULER = Scheduler()
        return _SCHEDULER
