"""Core's shared local watcher: folders that may be read but not created (a peer's
SyftBox datasite) are awaited through their ancestors with real inotify, never created."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("watchdog")

from syftflwr.mailbox import watcher
from syftflwr.mailbox.localdir import LocalDirStorage


class Seen:
    """Collects reported (folder, name) pairs; waits on a condition, not on a clock."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, folder: str, name: str) -> None:
        with self._cond:
            self.items.append((folder, name))
            self._cond.notify_all()

    def wait_for(self, item: tuple[str, str]) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: item in self.items, timeout=10)


@pytest.fixture(autouse=True)
def _fresh_hub() -> Iterator[None]:
    yield
    watcher.set_backend_factory(None)
    watcher.reset_hub()


def _publish(path: Path, data: bytes = b"x") -> None:
    tmp = path.with_name(path.name + ".tmp-write")
    tmp.write_bytes(data)
    tmp.replace(path)


def test_an_awaited_folder_is_never_created_and_its_first_file_is_reported(
    tmp_path: Path,
) -> None:
    storage = LocalDirStorage(tmp_path)
    arrivals = watcher.LocalArrivals(storage, create_folders=False)
    seen = Seen()
    sub = arrivals.subscribe(seen)
    folder = "datasites/peer@x.org/app_data/a/rpc/ep"
    sub.watch([folder])
    assert not (tmp_path / "datasites").exists()  # nothing created in the peer's datasite

    target = tmp_path / folder
    target.mkdir(parents=True)  # a sync client creating the whole path at once
    _publish(target / "1.request")
    assert seen.wait_for((folder, "1.request"))
    _publish(target / "2.request")  # now watched directly
    assert seen.wait_for((folder, "2.request"))
    assert watcher.hub().watched == 1  # only the folder, no ancestor left behind
    sub.close()
    assert watcher.hub().watched == 0
    arrivals.close()


def test_an_awaited_folder_appearing_level_by_level(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    arrivals = watcher.LocalArrivals(storage, create_folders=False)
    seen = Seen()
    sub = arrivals.subscribe(seen)
    folder = "a/b/c"
    sub.watch([folder])
    for level in ("a", "a/b", "a/b/c"):
        (tmp_path / level).mkdir()
    _publish(tmp_path / "a/b/c/x.response")
    assert seen.wait_for((folder, "x.response"))
    sub.close()
    arrivals.close()


def test_unwatching_an_awaited_folder_releases_its_ancestor(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    arrivals = watcher.LocalArrivals(storage, create_folders=False)
    sub = arrivals.subscribe(Seen())
    (tmp_path / "peer").mkdir()
    sub.watch(["peer/never/there"])
    assert watcher.hub().watched == 1  # the ancestor "peer"
    sub.unwatch(["peer/never/there"])
    assert watcher.hub().watched == 0
    assert not (tmp_path / "peer/never").exists()
    arrivals.close()


def test_without_watchdog_awaited_folders_are_polled(tmp_path: Path) -> None:
    """TEST SEAM: a backend factory failing like a missing watchdog install."""

    def missing(*args: object) -> watcher.WatchBackend:
        raise ImportError("No module named 'watchdog'")

    watcher.set_backend_factory(missing)
    watcher.reset_hub()
    storage = LocalDirStorage(tmp_path)
    arrivals = watcher.LocalArrivals(storage, create_folders=False, poll_interval=0.01)
    seen = Seen()
    sub = arrivals.subscribe(seen)
    sub.watch(["p/q"])
    (tmp_path / "p/q").mkdir(parents=True)
    _publish(tmp_path / "p/q/z.request")
    assert seen.wait_for(("p/q", "z.request"))
    assert watcher.hub().fallbacks >= 1
    sub.close()
    arrivals.close()


def test_lost_events_make_the_folder_listed_again(tmp_path: Path) -> None:
    """watchdog reports a kernel queue overflow as one ``EventsLostEvent`` per watch; the
    folder is listed again, so a name whose event was dropped is still reported. The event
    is queued on the real observer as its inotify emitter queues it (overflowing the
    kernel's queue on purpose cannot be done reliably from a test)."""
    from watchdog.events import EventsLostEvent

    storage = LocalDirStorage(tmp_path)
    arrivals = watcher.LocalArrivals(storage)
    seen = Seen()
    sub = arrivals.subscribe(seen)
    sub.watch(["inbox"])
    _publish(tmp_path / "inbox" / "1.request")
    assert seen.wait_for(("inbox", "1.request"))
    reported = seen.items.count(("inbox", "1.request"))

    backend = watcher.hub().backend
    assert isinstance(backend, watcher.ObserverBackend)
    (watch,) = backend._watches.values()
    lost = EventsLostEvent(str(tmp_path / "inbox"), is_directory=True)
    backend._observer.event_queue.put((lost, watch))
    with seen._cond:
        assert seen._cond.wait_for(
            lambda: seen.items.count(("inbox", "1.request")) > reported, timeout=10
        )
    sub.close()
    arrivals.close()
