"""Arrival detection for local directories through watchdog's public ``Observer``
(inotify on Linux, FSEvents / ReadDirectoryChangesW elsewhere): ONE process-wide observer
— one inotify instance — shared by every participant and every local transport in the
process, watching only the folders subscribers ask for (inboxes, and response folders of
requests in flight), never a whole tree. The observer runs one emitter thread per watched
folder, idle until an event comes. watchdog is imported when the first folder is watched.

Each watched folder reports names created, moved in or closed after writing; when the
kernel queue overflows, watchdog reports the events of each watch as lost and the folder
is listed again, so nothing is missed.

When the OS runs out of inotify instances or watches (``OSError`` EMFILE / ENOSPC /
ENFILE), or watchdog is not installed, the affected folders are polled instead — with
ONE warning per process naming the fix — rather than failing.

Folders that do not exist yet are either created (``create_folders=True``: a local
root the participant owns) or — where a participant may read a folder but must not
create it, such as a peer's SyftBox datasite — awaited: the deepest existing ancestor is
watched for new sub-folders until the folder appears, then the folder itself.

Test seam (documented, used by the tests): :func:`set_backend_factory` replaces the
backend factory (e.g. with one raising ``OSError(errno.EMFILE, ...)``), and
:func:`reset_hub` drops the process-wide hub so the next subscriber builds a new one.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.mailbox.arrivals import ArrivalCallback, CallbackSubscription, Poller, Subscription
from syftflwr.mailbox.storage import Storage

log = logging.getLogger("syftflwr.mailbox.watcher")

LIMIT_ERRNOS = frozenset({errno.EMFILE, errno.ENOSPC, errno.ENFILE})
"""inotify's "out of instances / watches" errors: fall back to polling on these."""

EventSink = Callable[[str, str], None]
"""``sink(absolute_folder, name)`` for every name (file or folder) created or moved into a
folder; files are reported again when closed after writing."""


class WatchBackend(Protocol):
    """What the hub needs from a file-watching library."""

    def add(self, path: str) -> None:
        """Start watching the folder ``path`` (non-recursive); raises OSError on limits."""
        ...

    def remove(self, path: str) -> None: ...

    def close(self) -> None: ...


BackendFactory = Callable[[EventSink, Callable[[str], None]], WatchBackend]
"""``factory(on_event, on_lost) -> backend``, ``on_lost(absolute_folder)`` when a folder's
events were lost; may raise OSError (limits) or ImportError (watchdog missing)."""


class Watcher(Protocol):
    """What the hub reports a watched folder's events to."""

    def deliver(self, folder: str, name: str) -> None: ...

    def resync(self, folder: str) -> None:
        """Events were lost (queue overflow): re-list ``folder``."""
        ...


class ObserverBackend:
    """watchdog's ``Observer``, told only of names arriving in a folder and of lost events."""

    def __init__(self, on_event: EventSink, on_lost: Callable[[str], None]) -> None:
        from watchdog import events
        from watchdog.observers import Observer

        class Handler(events.FileSystemEventHandler):
            def on_any_event(self, event: events.FileSystemEvent) -> None:
                if isinstance(event, events.EventsLostEvent):
                    on_lost(os.fsdecode(event.src_path))  # the watched folder
                else:  # a move reports where the name arrived; non-recursive: one level
                    on_event(*os.path.split(os.fsdecode(event.dest_path or event.src_path)))

        self._handler = Handler()
        self._filter: list[type[events.FileSystemEvent]] = [
            events.FileCreatedEvent,
            events.DirCreatedEvent,
            events.FileMovedEvent,
            events.DirMovedEvent,
            events.FileClosedEvent,
            events.EventsLostEvent,
        ]
        self._observer = Observer()
        self._observer.name = "syftflwr-watcher"
        self._observer.start()
        self._watches: dict[str, Any] = {}

    def add(self, path: str) -> None:
        self._watches[path] = self._observer.schedule(
            self._handler, path, event_filter=self._filter
        )

    def remove(self, path: str) -> None:
        watch = self._watches.pop(path, None)
        if watch is not None:
            self._observer.unschedule(watch)

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


default_backend_factory: BackendFactory = ObserverBackend


# --------------------------------------------------------------------------- the hub
class WatchHub:
    """Process-wide registry: absolute folder -> watchers, over one backend."""

    def __init__(self, backend_factory: BackendFactory | None = None) -> None:
        self._factory = backend_factory or default_backend_factory
        self._lock = threading.RLock()
        self._backend: WatchBackend | None = None
        self._broken: Exception | None = None
        self._warned: set[str] = set()
        self._folders: dict[str, dict[Watcher, str]] = {}
        self.fallbacks = 0
        """Folders that fell back to polling (observability, tests)."""

    @property
    def backend(self) -> WatchBackend | None:
        return self._backend

    @property
    def watched(self) -> int:
        with self._lock:
            return len(self._folders)

    def _warn_once(self, message: str, *args: object) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning(message, *args)

    def add(self, path: str, sub: Watcher, folder: str) -> bool:
        """Watch ``path`` for ``sub``; False if the OS refuses (caller polls instead)."""
        with self._lock:
            subs = self._folders.get(path)
            if subs is not None:
                subs[sub] = folder
                return True
            try:
                if self._broken:
                    raise self._broken
                if self._backend is None:
                    self._backend = self._factory(self._dispatch, self._lost)
                self._backend.add(path)
            except ImportError as exc:
                self._broken = exc
                self._warn_once(
                    "cannot watch folders (%s); polling instead. Install watchdog "
                    "(pip install watchdog) for event-driven delivery",
                    exc,
                )
            except OSError as exc:
                if exc.errno not in LIMIT_ERRNOS:
                    raise
                if self._backend is None:
                    self._broken = exc  # no instance at all: poll everything from now on
                self._warn_once(
                    "inotify limit reached while watching %s (%s); falling back to polling "
                    "for the folders that cannot be watched. Raise the limits to restore "
                    "event-driven delivery: sysctl fs.inotify.max_user_instances / "
                    "fs.inotify.max_user_watches",
                    path,
                    exc.strerror or exc,
                )
            else:
                self._folders[path] = {sub: folder}
                return True
            self.fallbacks += 1
            return False

    def remove(self, path: str, sub: Watcher) -> None:
        with self._lock:
            subs = self._folders.get(path)
            if subs is None:
                return
            subs.pop(sub, None)
            if not subs:
                del self._folders[path]
                if self._backend is not None:
                    try:
                        self._backend.remove(path)
                    except OSError as exc:
                        log.debug("unwatching %s: %s", path, exc)

    def _dispatch(self, path: str, name: str) -> None:
        with self._lock:
            subs = list(self._folders.get(path, {}).items())
        for sub, folder in subs:
            sub.deliver(folder, name)

    def _lost(self, path: str) -> None:
        self._warn_once("file events were lost (inotify queue overflow); re-listing folders")
        with self._lock:
            subs = list(self._folders.get(path, {}).items())
        for sub, folder in subs:
            sub.resync(folder)

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
            self._folders.clear()
        if backend is not None:
            backend.close()


_HUB: WatchHub | None = None
_HUB_LOCK = threading.Lock()
_FACTORY: BackendFactory | None = None


def hub() -> WatchHub:
    """The process-wide hub (created on first use)."""
    global _HUB
    with _HUB_LOCK:
        if _HUB is None:
            _HUB = WatchHub(_FACTORY)
        return _HUB


def set_backend_factory(factory: BackendFactory | None) -> None:
    """TEST SEAM: use ``factory`` for hubs created after this call (None: the default).
    Call :func:`reset_hub` to make the next subscriber build a new hub."""
    global _FACTORY
    _FACTORY = factory


def reset_hub() -> None:
    """TEST SEAM: close and forget the process-wide hub."""
    global _HUB
    with _HUB_LOCK:
        old, _HUB = _HUB, None
    if old is not None:
        old.close()


# --------------------------------------------------------------------------- the source
class LocalArrivals:
    """:class:`~syftflwr.mailbox.arrivals.ArrivalSource` for one local root.

    Folders are watched through the process-wide :class:`WatchHub`; a missing folder is
    created first (``create_folders``) or awaited through its deepest existing ancestor.
    Folders the OS will not watch — and every folder with ``mode="poll"`` — are listed by
    one :class:`Poller` per root (its thread starts with its first folder). ``storage``
    is usually a :class:`LocalDirStorage`; any storage whose ``local_path`` maps folders
    to local ones works (a view that maps mailbox folders elsewhere, like SyftBox
    datasites); a folder without a local path, or a storage without a local root
    (``local_path("")``), is polled.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        mode: str = "auto",
        hub: WatchHub | None = None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 0.5,
        create_folders: bool = True,
        poller_name: str = "syftflwr-local-poller",
    ) -> None:
        self.storage = storage
        self.mode = mode
        self.create_folders = create_folders
        self._hub = hub
        self.poller = Poller(
            storage, interval=poll_interval, max_interval=max_poll_interval, name=poller_name
        )

    @property
    def hub(self) -> WatchHub:
        return self._hub if self._hub is not None else hub()

    def subscribe(self, callback: ArrivalCallback) -> Subscription:
        return _LocalSubscription(self, callback)

    def close(self) -> None:
        self.poller.close()


class _LocalSubscription(CallbackSubscription):
    def __init__(self, source: LocalArrivals, callback: ArrivalCallback) -> None:
        super().__init__(callback)
        self._source = source
        self._lock = threading.Lock()
        self._watched: dict[str, str] = {}  # folder -> absolute path (inotify)
        self._awaited: dict[str, _AwaitedFolder] = {}
        self._polled: set[str] = set()
        self._poll_sub = source.poller.subscribe(self.deliver)  # its thread starts on use

    def resync(self, folder: str) -> None:
        try:
            names = self._source.storage.list(folder)
        except Exception as exc:
            log.warning("re-listing %s failed: %s", folder, exc)
            return
        for name in names:
            self.deliver(folder, name)

    def _poll(self, folders: list[str]) -> None:
        with self._lock:
            self._polled.update(folders)
        self._poll_sub.watch(folders)

    def _watch_existing(self, folder: str, path: str) -> bool:
        """Watch ``folder`` (which exists) and report its content; False: poll it."""
        if not self._source.hub.add(path, self, folder):
            return False
        with self._lock:
            self._watched[folder] = path
        self.resync(folder)  # after the watch: nothing can slip between the two
        return True

    def watch(self, folders: Iterable[str]) -> None:
        storage = self._source.storage
        to_poll: list[str] = []
        for folder in dict.fromkeys(folders):
            with self._lock:
                if folder in self._watched or folder in self._polled or folder in self._awaited:
                    continue
            if self._source.mode == "poll":
                to_poll.append(folder)
                continue
            if self._source.create_folders:
                storage.makedirs(folder)  # inotify can only watch what exists
            path = storage.local_path(folder)
            root = storage.local_path("")
            if path is None or root is None:
                to_poll.append(folder)
            elif not path.is_dir() and not self._source.create_folders:
                awaited = _AwaitedFolder(self, folder, path, root)
                with self._lock:
                    self._awaited[folder] = awaited
                awaited.advance()
            elif not self._watch_existing(folder, str(path)):
                to_poll.append(folder)
        if to_poll:
            self._poll(to_poll)

    def _settled(self, folder: str, path: Path, *, watch: bool) -> None:
        """An awaited folder exists now (``watch``: watch it) or cannot be awaited
        through inotify (poll it)."""
        with self._lock:
            if self._awaited.pop(folder, None) is None:
                return  # unwatched meanwhile
        if not (watch and self._watch_existing(folder, str(path))):
            self._poll([folder])

    def unwatch(self, folders: Iterable[str]) -> None:
        folders = list(folders)
        for folder in folders:
            with self._lock:
                path = self._watched.pop(folder, None)
                awaited = self._awaited.pop(folder, None)
                self._polled.discard(folder)
            if path is not None:
                self._source.hub.remove(path, self)
            if awaited is not None:
                awaited.cancel()
        self._poll_sub.unwatch(folders)  # ignores the folders it does not poll

    def poke(self) -> None:
        self._poll_sub.poke()

    def close(self) -> None:
        with self._lock:
            folders = [*self._watched, *self._polled, *self._awaited]
        self.unwatch(folders)
        self._closed = True
        self._poll_sub.close()


class _AwaitedFolder:
    """A folder that does not exist yet and must not be created here: its deepest
    existing ancestor (never above the root) is watched for new entries, descending as
    the path appears, until the folder itself can be watched. Every step re-checks after
    adding the watch, so a folder created in between is never missed."""

    def __init__(self, sub: _LocalSubscription, folder: str, path: Path, root: Path) -> None:
        self._sub = sub
        self._folder = folder
        self._path = path
        self._root = root
        self._watching: str | None = None
        self._lock = threading.Lock()
        self._done = False

    def _deepest_existing(self) -> Path:
        probe = self._path
        while probe != self._root and not probe.is_dir():
            probe = probe.parent
        return probe

    def advance(self) -> None:
        """Move the watch as deep as the path exists; once the folder exists, or if the
        OS refuses a watch, hand it back to the subscription (to watch or to poll)."""
        hub = self._sub._source.hub
        with self._lock:
            while True:
                if self._done:
                    return
                ancestor = self._deepest_existing()
                if ancestor == self._path:
                    appeared = True
                    break
                if str(ancestor) == self._watching:
                    return
                if not hub.add(str(ancestor), self, ""):
                    appeared = False
                    break
                self._release(hub)
                self._watching = str(ancestor)
                # loop: re-check, the next level may have appeared before the watch
            self._release(hub)
            self._done = True
        self._sub._settled(self._folder, self._path, watch=appeared)

    def _release(self, hub: WatchHub) -> None:
        if self._watching is not None:
            hub.remove(self._watching, self)
            self._watching = None

    def cancel(self) -> None:
        with self._lock:
            self._done = True
            self._release(self._sub._source.hub)

    # -- Watcher ---------------------------------------------------------------------------
    def deliver(self, folder: str, name: str) -> None:
        try:
            self.advance()
        except Exception:
            log.exception("awaiting %s failed", self._path)

    def resync(self, folder: str) -> None:
        self.deliver(folder, "")


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
