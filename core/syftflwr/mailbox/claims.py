"""Claims: exactly one runner handles a request, across processes and machines, and a
request whose runner died mid-way is taken over by exactly one other.

A claim is two records: a marker object in storage (created exclusively: one runner
wins it) and the journal entry of the runner that won. A claim left by a dead runner is
taken over only when the journal can vouch for it — its entry names the dead holder, or
the marker carries this journal's id (a runner killed between publishing its marker and
journaling it) — and the take-over is one compare-and-set in the journal, so of several
runners sharing it exactly one wins. Runners on other hosts are never presumed dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from syftflwr.errors import StorageError
from syftflwr.mailbox.journal import InboundEntry, Journal
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.retention import JOURNAL_KEEP
from syftflwr.mailbox.storage import Storage
from syftflwr.processes import pid_alive

log = logging.getLogger("syftflwr.mailbox")

RECOVERED_STATUS = "recovered"
"""Journal status of a request found answered in storage after its runner crashed."""

_LIVE_OWNERS: set[str] = set()
_HOST = socket.gethostname()


def new_owner(journal_id: str) -> str:
    """``host|pid|random|journal``: the first two fields tell whether the owner still
    runs, the last which journal it records its claims in."""
    return f"{_HOST}|{os.getpid()}|{uuid.uuid4().hex}|{journal_id}"


def journal_of(owner: str) -> str:
    fields = owner.split("|")
    return fields[3] if len(fields) >= 4 else ""


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` surely stopped: a runner on THIS host whose process is
    gone (or a closed runner of this process). Runners elsewhere are never presumed dead."""
    host, _, rest = owner.partition("|")
    pid_text, _, _ = rest.partition("|")
    # A marker is read from storage: only plain ASCII pids in range count (int() refuses
    # some Unicode digits, os.kill() overflows on huge numbers).
    if host != _HOST or not (pid_text.isascii() and pid_text.isdigit() and len(pid_text) < 10):
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE_OWNERS
    return pid != 0 and not pid_alive(pid)


class Claims:
    """One runner's claims on the requests of one journal.

    :param stats: counts ``claimed_elsewhere`` (the caller's counter, if given).
    """

    def __init__(self, storage: Storage, journal: Journal, stats: Counter[str] | None = None):
        self.storage = storage
        self.journal = journal
        self.stats: Counter[str] = Counter() if stats is None else stats
        self.owner = new_owner(journal.instance_id)
        """Written into claim markers; identifies this runner instance."""
        _LIVE_OWNERS.add(self.owner)
        self._lock = threading.Lock()
        self._contested: dict[str, tuple[Route, str]] = {}
        """Requests a live runner of MY journal claimed first: :meth:`orphans` looks at
        them again in case that runner dies before journaling its claim."""

    def claim(self, route: Route, message_id: str, marker: str) -> bool | None:
        """Claim a request through its ``marker`` path: None if someone else has it (or
        it is finished), True if a runner of this journal held it before (it died: its
        reply may be published already; :meth:`recovered` if it was), False for a fresh
        claim. A :class:`~syftflwr.errors.StorageError` from the journal means the claim
        is unrecorded and has been given back: try again later."""
        entry = self.journal.state_of(message_id)
        if entry is not None and entry.finished:
            return None
        if entry is not None and entry.owner == self.owner:
            return False
        recovered = entry is not None
        if not self.storage.claim(marker, self.owner):
            found = self.storage.get(marker, max_size=4096)
            holder = "" if found is None else bytes(found).decode("utf-8", "replace")
            if holder != self.owner:
                if not self._journaled(marker, self._take_over, route, message_id, entry, holder):
                    log.debug("request %s is claimed by another runner (%s)", message_id, holder)
                    self.stats["claimed_elsewhere"] += 1
                    return None
                log.warning(
                    "taking over request %s from a runner that stopped mid-way (%s)",
                    message_id,
                    holder,
                )
                self.storage.put(marker, [self.owner.encode()])
                recovered = True
        with self._lock:
            self._contested.pop(message_id, None)
        if not self._journaled(
            marker, self.journal.claimed, message_id, sender=route.sender, app=route.app,
            endpoint=route.endpoint, owner=self.owner,
        ):  # fmt: skip
            return None
        return recovered

    def _journaled(self, marker: str, record: Callable[..., bool], *args: Any, **kw: Any) -> bool:
        """``record(...)`` in the journal. If the journal fails the claim is unrecorded,
        and nobody would ever resume it: the marker (this runner's, or a dead runner's)
        is given back before the error goes on, so any runner may claim it afresh. A
        failure of the storage itself leaves the marker alone: it may be a live
        runner's."""
        try:
            return record(*args, **kw)
        except StorageError as exc:
            self.storage.delete(marker)
            raise StorageError(f"could not journal its claim ({exc}); released the claim") from exc

    def recovered(self, message_id: str) -> None:
        """A request just taken over whose crashed runner had published its reply:
        journaled answered (:data:`RECOVERED_STATUS`), never handled twice."""
        self.journal.answered(message_id, status=RECOVERED_STATUS)
        self.stats["recovered"] += 1

    def _take_over(
        self, route: Route, message_id: str, entry: InboundEntry | None, holder: str
    ) -> bool:
        """Whether the claim of ``holder`` is an orphan this runner may take (atomically,
        through the journal: exactly one of the runners sharing it wins).

        Only a dead holder's claim is taken, and only when this journal can vouch for it:
        its entry names the holder, or the claim carries this journal's id — a runner
        killed between publishing its claim and journaling it (no entry), or between a
        take-over's journal update and its claim rewrite (the entry names another dead
        runner)."""
        mine = journal_of(holder) == self.journal.instance_id
        if not owner_is_dead(holder):
            if mine:  # live now; orphans() looks again in case it dies unjournaled
                with self._lock:
                    self._contested[message_id] = (route, holder)
            return False
        if entry is None:
            return mine and self.journal.adopt(
                message_id, sender=route.sender, app=route.app, endpoint=route.endpoint,
                owner=self.owner,
            )  # fmt: skip
        if entry.owner != holder and not (mine and owner_is_dead(entry.owner)):
            return False
        return self.journal.take_over(message_id, old_owner=entry.owner, new_owner=self.owner)

    def orphans(
        self, routes: dict[tuple[str, str, str], Route], busy: set[str]
    ) -> list[tuple[str, Route]]:
        """Requests claimed by a runner of this journal that has died since — journaled,
        or seen live and never journaled — to be queued again (their arrival was
        announced once); :meth:`claim` takes them over. ``routes`` by (sender, app,
        endpoint); ``busy``: ids being handled here."""
        found: list[tuple[str, Route]] = []
        for entry in self.journal.unfinished():
            route = routes.get((entry.sender, entry.app, entry.endpoint))
            if route is None or entry.id in busy or entry.owner == self.owner:
                continue
            if owner_is_dead(entry.owner):
                found.append((entry.id, route))
        with self._lock:
            contested = list(self._contested.items())
        for message_id, (route, holder) in contested:
            if message_id in busy:
                continue
            state = self.journal.state_of(message_id)
            finished = state is not None and state.finished
            dead = owner_is_dead(holder)
            if finished or dead:
                with self._lock:
                    self._contested.pop(message_id, None)
            if not finished and dead:  # may have died unjournaled
                found.append((message_id, route))
        return found

    def clean(self, marker: str, message_id: str) -> None:
        """A finished request is gone from storage: its marker goes, and its journal
        entry once :meth:`prune` finds it older than :data:`JOURNAL_KEEP`."""
        self.storage.delete(marker)
        self.journal.cleaned(message_id)

    def prune(self) -> None:
        self.journal.prune(time.time() - JOURNAL_KEEP)

    def close(self) -> None:
        """From now on this runner's claims count as a dead runner's."""
        _LIVE_OWNERS.discard(self.owner)
