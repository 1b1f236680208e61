"""The adaptive Poller: reports what is there on watch, then only new names; lists only
watched folders; backs off when idle and snaps back on activity."""

from __future__ import annotations

import threading
from pathlib import Path

from _mailbox_helpers import wait_for
from syftflwr.errors import StorageError
from syftflwr.mailbox import LocalDirStorage, Poller
from syftflwr.mailbox.arrivals import ArrivalSource, Subscription


class CountingStorage(LocalDirStorage):
    """A real local storage that records which folders were listed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.listed: list[str] = []
        self.fail = False

    def list(self, folder: str) -> list[str]:
        self.listed.append(folder)
        if self.fail:
            raise StorageError("backend down")
        return super().list(folder)


def test_reports_existing_then_new_names(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    storage.put("a/old", [b""])
    poller = Poller(storage, interval=0.01)
    assert isinstance(poller, ArrivalSource)
    seen: list[tuple[str, str]] = []
    sub = poller.subscribe(lambda f, n: seen.append((f, n)))
    assert isinstance(sub, Subscription)
    sub.watch(["a", "b"])
    assert seen == [("a", "old")]  # synchronously, before watch() returned
    storage.put("a/new", [b""])
    storage.put("b/x", [b""])
    storage.put("c/unwatched", [b""])
    assert wait_for(lambda: {("a", "new"), ("b", "x")} <= set(seen))
    assert ("c", "unwatched") not in seen
    assert set(storage.listed) <= {"a", "b"}  # never the root, never other folders
    sub.close()
    poller.close()


def test_each_name_is_reported_once_per_subscriber(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    poller = Poller(storage, interval=0.01)
    one: list[str] = []
    two: list[str] = []
    s1, s2 = (
        poller.subscribe(lambda f, n: one.append(n)),
        poller.subscribe(lambda f, n: two.append(n)),
    )
    s1.watch(["f"])
    s2.watch(["f"])
    for i in range(5):
        storage.put(f"f/{i}", [b""])
    assert wait_for(lambda: len(one) == 5 and len(two) == 5)
    rounds = poller.rounds
    assert wait_for(lambda: poller.rounds >= rounds + 3)
    assert sorted(one) == sorted(two) == [str(i) for i in range(5)]
    s1.unwatch(["f"])
    assert poller.watched == ["f"]  # s2 still watches it
    s2.close()
    assert poller.watched == []
    poller.close()


def test_backs_off_when_idle_and_snaps_back_on_poke(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    poller = Poller(storage, interval=0.01, max_interval=10.0)
    sub = poller.subscribe(lambda f, n: None)
    sub.watch(["f"])
    # idle: rounds grow geometrically apart, so few happen in a while
    assert wait_for(lambda: poller.rounds >= 8)
    first = poller.rounds
    event = threading.Event()
    event.wait(0.5)
    assert poller.rounds - first < 10  # at 0.01 s fixed it would be ~50
    # a poke makes the next round start at once
    before = poller.rounds
    sub.poke()
    assert wait_for(lambda: poller.rounds > before, timeout=2.0)
    poller.close()


def test_listing_errors_are_survived(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path)
    poller = Poller(storage, interval=0.01, max_interval=0.02)
    seen: list[str] = []
    sub = poller.subscribe(lambda f, n: seen.append(n))
    storage.fail = True
    sub.watch(["f"])
    storage.put("f/x", [b""])
    rounds = poller.rounds
    assert wait_for(lambda: poller.rounds > rounds + 2)
    assert seen == []
    storage.fail = False
    assert wait_for(lambda: seen == ["x"])
    poller.close()


def test_a_failing_callback_does_not_stop_the_poller(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    poller = Poller(storage, interval=0.01)
    good: list[str] = []

    def bad(folder: str, name: str) -> None:
        raise RuntimeError("consumer bug")

    poller.subscribe(bad).watch(["f"])
    poller.subscribe(lambda f, n: good.append(n)).watch(["f"])
    storage.put("f/a", [b""])
    storage.put("f/b", [b""])
    assert wait_for(lambda: sorted(good) == ["a", "b"])
    poller.close()


def test_a_poll_that_raises_does_not_end_the_polling_thread(tmp_path: Path) -> None:
    """Any transport's poll (a Drive call, a listing) may raise something unexpected:
    the thread logs it and polls on, else every waiter would hang forever."""

    class Flaky(Poller):
        failures = 3

        def poll_once(self) -> int:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("backend hiccup")
            return super().poll_once()

    storage = LocalDirStorage(tmp_path)
    poller = Flaky(storage, interval=0.01, max_interval=0.02)
    seen: list[str] = []
    poller.subscribe(lambda f, n: seen.append(n)).watch(["f"])
    storage.put("f/late", [b""])
    assert wait_for(lambda: seen == ["late"])
    assert poller.failures == 0
    poller.close()
