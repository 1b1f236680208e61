"""How the mailbox learns that objects arrived: the arrival-source protocol, and the
generic adaptive :class:`Poller` for storages that cannot notify.

A source reports ``(folder, name)`` for every object it sees in the folders a
subscription watches — at least once, possibly more (consumers check state themselves).
Watching a folder first reports what is already there, so nothing present before the
watch is missed. A notifying source (the fsspec-local plugin's inotify watcher) reports
each new name as the kernel announces it; the :class:`Poller` lists ONLY the watched
folders (a runner's own inboxes, an aggregator's expected response folders — never the
whole root) and reports names it has not seen before.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.mailbox.storage import Storage

log = logging.getLogger("syftflwr.mailbox")

ArrivalCallback = Callable[[str, str], None]
"""``callback(folder, name)``; called from the source's thread, so it must be quick."""


@runtime_checkable
class Subscription(Protocol):
    """One consumer's view of an arrival source."""

    def watch(self, folders: Iterable[str]) -> None:
        """Start reporting arrivals in ``folders``; reports their current content first
        (synchronously, before returning)."""
        ...

    def unwatch(self, folders: Iterable[str]) -> None: ...

    def poke(self) -> None:
        """Activity hint (a request was just sent): a polling source checks soon."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ArrivalSource(Protocol):
    """Something that tells subscribers which names appeared in folders they watch."""

    def subscribe(self, callback: ArrivalCallback) -> Subscription: ...


class CallbackSubscription:
    """Base of subscriptions: delivers to one consumer's callback and never lets a
    consumer's bug stop the thread that reports arrivals (a poller, a shared watcher)."""

    def __init__(self, callback: ArrivalCallback) -> None:
        self._callback = callback
        self._closed = False

    def deliver(self, folder: str, name: str) -> None:
        if self._closed:
            return
        try:
            self._callback(folder, name)
        except Exception:
            log.exception("arrival callback failed for %s/%s", folder, name)


class PollingSource(ABC):
    """Base of arrival sources that check on an adaptive interval from one daemon thread:
    ``interval`` while busy, growing by half per idle round up to ``max_interval``
    (default 8x), back to ``interval`` on an arrival or a subscriber's poke.

    Subclasses implement :meth:`poll_once` (report new names, return how many) and the
    per-subscription :meth:`_watch` / :meth:`_unwatch`; every subscription is a
    :class:`FolderSubscription`. The thread starts with the first watch, unless
    ``background`` is False (the owner then calls :meth:`poll_once` itself).
    """

    def __init__(
        self,
        *,
        interval: float,
        max_interval: float | None = None,
        name: str = "syftflwr-poller",
        background: bool = True,
    ) -> None:
        if interval <= 0:
            raise ValueError("poll interval must be positive")
        self.interval = interval
        self.max_interval = max(interval, max_interval or interval * 8)
        self.background = background
        self._name = name
        self._cond = threading.Condition()
        self._poked = False
        self._closed = False
        self._thread: threading.Thread | None = None

    @abstractmethod
    def poll_once(self) -> int:
        """Check once and report new names to subscribers; return how many."""

    @abstractmethod
    def _watch(self, sub: FolderSubscription, folders: Iterable[str]) -> None:
        """Report ``folders``' current names to ``sub``, then keep it informed."""

    @abstractmethod
    def _unwatch(self, sub: FolderSubscription, folders: Iterable[str]) -> None: ...

    def subscribe(self, callback: ArrivalCallback) -> Subscription:
        return FolderSubscription(self, callback)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _poke(self) -> None:
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed and self.background:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        interval = self.interval
        while True:
            with self._cond:
                if self._closed:
                    return
            try:
                found = self.poll_once()
            except Exception:  # a backend hiccup must not end the thread: waiters hang
                log.exception("%s: a poll failed; polling goes on", self._name)
                found = 0
            with self._cond:
                if found or self._poked:
                    interval = self.interval
                else:
                    interval = min(interval * 1.5, self.max_interval)
                self._poked = False
                deadline = time.monotonic() + interval
                while not (self._closed or self._poked):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)


class FolderSubscription(CallbackSubscription):
    """A subscription to a :class:`PollingSource`: the folders one consumer watches."""

    def __init__(self, source: PollingSource, callback: ArrivalCallback) -> None:
        super().__init__(callback)
        self._source = source
        self._folders: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, folders: Iterable[str]) -> None:
        with self._lock:
            new = [f for f in dict.fromkeys(folders) if f not in self._folders]
            self._folders.update(new)
        self._source._watch(self, new)

    def unwatch(self, folders: Iterable[str]) -> None:
        with self._lock:
            gone = [f for f in dict.fromkeys(folders) if f in self._folders]
            self._folders.difference_update(gone)
        self._source._unwatch(self, gone)

    def poke(self) -> None:
        self._source._poke()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            folders = list(self._folders)
        self.unwatch(folders)


class _Folder:
    __slots__ = ("names", "subscribers")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.subscribers: set[FolderSubscription] = set()


SLOW_LISTING = 1.0
"""Seconds a folder listing may take before it is reported (or ``SLOW_LISTING_POLLS``
poll intervals, if longer)."""
SLOW_LISTING_POLLS = 10
SLOW_WARNING_EVERY = 60.0
"""At most one slow-listing WARNING per storage type this often."""
_SLOW_WARNED: dict[str, float] = {}
_SLOW_LOCK = threading.Lock()


class Poller(PollingSource):
    """An :class:`ArrivalSource` that lists watched folders on an adaptive interval
    (see :class:`PollingSource`). Listing errors are logged (once per streak) and retried
    on the next round."""

    def __init__(
        self,
        storage: Storage,
        *,
        interval: float = 0.5,
        max_interval: float | None = None,
        name: str = "syftflwr-poller",
    ) -> None:
        super().__init__(interval=interval, max_interval=max_interval, name=name)
        self.storage = storage
        self._folders: dict[str, _Folder] = {}
        self._failing = False
        self.rounds = 0
        """Completed polling rounds (observability, tests)."""

    @property
    def watched(self) -> list[str]:
        with self._cond:
            return sorted(self._folders)

    # -- used by subscriptions -----------------------------------------------------------
    def _watch(self, sub: FolderSubscription, folders: Iterable[str]) -> None:
        for folder in folders:
            with self._cond:
                state = self._folders.get(folder)
                fresh = state is None
                if state is None:
                    state = self._folders[folder] = _Folder()
                known = set(state.names)
                state.subscribers.add(sub)
            if fresh:
                known = self._list(folder)
                with self._cond:
                    if folder in self._folders:
                        self._folders[folder].names |= known
            for name in sorted(known):
                sub.deliver(folder, name)
        self._ensure_thread()

    def _unwatch(self, sub: FolderSubscription, folders: Iterable[str]) -> None:
        with self._cond:
            for folder in folders:
                state = self._folders.get(folder)
                if state is None:
                    continue
                state.subscribers.discard(sub)
                if not state.subscribers:
                    del self._folders[folder]

    # -- the polling thread ------------------------------------------------------------------
    def _list(self, folder: str) -> set[str]:
        started = time.monotonic()
        try:
            names = set(self.storage.list(folder))
        except Exception as exc:  # StorageError, or a plugin's raw backend error
            if not self._failing:
                log.warning("polling %s failed (%s: %s); retrying", folder,
                            type(exc).__name__, exc)  # fmt: skip
            self._failing = True
            return set()
        self._failing = False
        took = time.monotonic() - started
        if took > max(SLOW_LISTING, SLOW_LISTING_POLLS * self.interval):
            self._slow(folder, took)
        return names

    def _slow(self, folder: str, took: float) -> None:
        """One WARNING a minute per storage (per transport) when listing a folder takes
        longer than a poll may: every message waits for the listing that finds it."""
        storage = type(self.storage)
        key = f"{storage.__module__}.{storage.__qualname__}"
        now = time.monotonic()
        with _SLOW_LOCK:
            if now - _SLOW_WARNED.get(key, -math.inf) < SLOW_WARNING_EVERY:
                return
            _SLOW_WARNED[key] = now
        log.warning(
            "listing %s took %.1fs with %s (polling every %.2fs): every message waits for "
            "the listing that finds it, so the run is slow; check that storage (this "
            "warning repeats at most once a minute)",
            folder, took, key, self.interval,
        )  # fmt: skip

    def poll_once(self) -> int:
        """List every watched folder once and report new names; returns how many."""
        with self._cond:
            folders = list(self._folders)
        found = 0
        for folder in folders:
            names = self._list(folder)
            with self._cond:
                state = self._folders.get(folder)
                if state is None:
                    continue
                new = names - state.names
                state.names = names
                subscribers = list(state.subscribers)
            for name in sorted(new):
                for sub in subscribers:
                    sub.deliver(folder, name)
            found += len(new)
        self.rounds += 1
        return found


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
