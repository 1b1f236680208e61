"""The changes-feed arrival source: reports arrivals in watched folders, including
folders that appear later, costs ONE API call per idle poll however many peers are
watched, and resumes from its persisted page token. Polls are driven by hand
(``poll_once``) so nothing depends on timing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from drive_server import DriveState
from syftflwr.mailbox.layout import Route
from syftflwr_gdrive.changes import ChangesFeed
from syftflwr_gdrive.storage import DriveStorage

AGG = "agg@example.org"
MakeStorage = Callable[..., DriveStorage]


class Seen:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.event = threading.Event()

    def __call__(self, folder: str, name: str) -> None:
        self.items.append((folder, name))
        self.event.set()


def _feed(storage: DriveStorage, tmp_path: Path | None = None) -> ChangesFeed:
    token = None if tmp_path is None else tmp_path / "changes.token"
    return ChangesFeed(storage, interval=1, token_path=token, background=False)


def test_existing_and_new_objects_are_reported(make_storage: MakeStorage) -> None:
    ds, agg = make_storage("ds@example.org"), make_storage(AGG)
    route = Route(AGG, "ds@example.org", "app", "messages")
    agg.put_if_absent(route.request_path("1" * 32), [b"old"])
    feed = _feed(ds)
    seen = Seen()
    sub = feed.subscribe(seen)
    sub.watch([route.folder])
    assert seen.items == [(route.folder, "1" * 32 + ".request")]  # listed on watch
    agg.put_if_absent(route.request_path("2" * 32), [b"new"])
    feed.poll_once()
    assert (route.folder, "2" * 32 + ".request") in seen.items
    n = len(seen.items)
    feed.poll_once()  # nothing new: nothing reported
    assert len(seen.items) == n
    # a file the recipient (a writer of that folder) drops there is never reported
    ds._create_file(agg.folder_id(route.folder) or "", "3" * 32 + ".request", b"x", "t")
    feed.poll_once()
    assert len(seen.items) == n
    sub.close()
    feed.close()


def test_a_folder_that_appears_later_is_picked_up(make_storage: MakeStorage) -> None:
    agg, ds = make_storage(AGG), make_storage("ds@example.org")
    route = Route("ds@example.org", AGG, "app", "messages")  # ds's replies to agg
    feed = _feed(agg)
    seen = Seen()
    feed.subscribe(seen).watch([route.folder])
    assert feed.pending == [route.folder] and seen.items == []
    ds.put_if_absent(route.request_path("4" * 32), [b"r"])
    feed.poll_once()
    assert feed.pending == []
    assert seen.items == [(route.folder, "4" * 32 + ".request")]
    feed.close()


def test_one_call_per_idle_poll_whatever_the_number_of_peers(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    agg = make_storage(AGG)
    folders = []
    for n in (2, 20):
        for i in range(len(folders), n):
            peer = make_storage(f"ds{i}@example.org")
            route = Route(peer.me, AGG, "app", "messages")
            peer.makedirs(route.folder)
            folders.append(route.folder)
        feed = _feed(agg)
        feed.subscribe(Seen()).watch(folders)
        feed.poll_once()  # settle: folder changes from set-up
        before = state.calls_by(AGG).total()
        for _ in range(5):
            feed.poll_once()
        assert state.calls_by(AGG).total() - before == 5, f"{n} peers"
        feed.close()


def test_page_token_is_persisted(make_storage: MakeStorage, tmp_path: Path) -> None:
    ds, agg = make_storage("ds@example.org"), make_storage(AGG)
    route = Route(AGG, "ds@example.org", "app", "messages")
    agg.makedirs(route.folder)
    feed = _feed(ds, tmp_path)
    feed.subscribe(Seen()).watch([route.folder])
    feed.close()
    saved = (tmp_path / "changes.token").read_text()
    agg.put_if_absent(route.request_path("5" * 32), [b"while away"])
    # a restarted runner resumes the feed from the saved token
    again = _feed(ds, tmp_path)
    seen = Seen()
    again._ensure_token()
    assert again._token == saved
    again._folders.clear()
    again.subscribe(seen).watch([route.folder])
    again.poll_once()
    assert (route.folder, "5" * 32 + ".request") in seen.items
    assert (tmp_path / "changes.token").read_text() != saved
    again.close()


def test_background_thread_reports_without_manual_polls(make_storage: MakeStorage) -> None:
    ds, agg = make_storage("ds@example.org"), make_storage(AGG)
    route = Route(AGG, "ds@example.org", "app", "messages")
    agg.makedirs(route.folder)
    feed = ChangesFeed(ds, interval=0.01, max_interval=0.05)
    seen = Seen()
    feed.subscribe(seen).watch([route.folder])
    agg.put_if_absent(route.request_path("6" * 32), [b"x"])
    assert seen.event.wait(10)
    feed.close()


def test_a_refused_page_token_is_rebuilt_even_if_drive_is_down_meanwhile(
    drive: tuple[DriveState, str], make_storage: MakeStorage, tmp_path: Path
) -> None:
    """No error escapes ``poll_once`` (it would end the polling thread): a refused page
    token is replaced and the watched folders relisted on a later round when restarting
    the feed fails at first."""
    state, _ = drive
    ds, agg = make_storage("ds@example.org"), make_storage(AGG)
    route = Route(AGG, "ds@example.org", "app", "messages")
    feed = _feed(ds, tmp_path)
    seen = Seen()
    sub = feed.subscribe(seen)
    sub.watch([route.folder])
    agg.put_if_absent(route.request_path("2" * 32), [b"new"])
    state.fault_filter = lambda method: method.startswith("changes.")
    state.inject(400, reason="invalid")  # the page token is refused...
    state.inject(500, count=7)  # ...and Drive fails the restart beyond the retries
    assert feed.poll_once() == 0
    assert feed.poll_once() == 0
    assert (route.folder, "2" * 32 + ".request") not in seen.items
    assert feed.poll_once() >= 1  # restarted and relisted
    assert (route.folder, "2" * 32 + ".request") in seen.items
    sub.close()
    feed.close()
