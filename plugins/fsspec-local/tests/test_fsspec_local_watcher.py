"""The shared watcher: 100 datasites in one process on one inotify instance;
falling back to polling (with one warning) when inotify limits are hit; the polling
path on its own (``watch = "poll"``)."""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import syftflwr.plugin as watcher
from _fsl_helpers import AGG, DS1, Datasite, make_context
from syftflwr.envelope import Request
from syftflwr.mailbox.events import MailboxEvents
from syftflwr.mailbox.rpc import MailboxRPC
from syftflwr_fsspec_local import plugin


class Federation:
    """An aggregator and N datasite runners, all in this process (real inotify)."""

    def __init__(self, root: Path, datasites: list[str], **options: Any) -> None:
        self.root = root
        self.datasites = datasites
        ctx = make_context(AGG, root, datasites=tuple(datasites), **options)
        rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
        assert isinstance(rpc, MailboxRPC)
        self.rpc = rpc
        self.events: list[MailboxEvents] = []
        self.threads: list[threading.Thread] = []
        for email in datasites:
            c = make_context(email, root, datasites=tuple(datasites), workers=1, **options)
            events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(c), c)
            assert isinstance(events, MailboxEvents)
            events.on_request("echo", lambda r: bytes(r.body) + b"@" + r.recipient.encode())
            thread = threading.Thread(target=events.run_forever, name=f"serve-{email}")
            thread.start()
            self.events.append(events)
            self.threads.append(thread)

    def round(self) -> dict[str, bytes]:
        handles = [
            self.rpc.send(
                Request.new(
                    sender=AGG, recipient=ds, app="app", endpoint="echo", body=b"round", ttl=120
                )
            )
            for ds in self.datasites
        ]
        got: dict[str, bytes] = {}
        while len(got) < len(handles):
            pending = [h for h in handles if h.id not in got]
            responses = self.rpc.wait(pending, timeout=60)
            assert responses, f"{len(pending)} datasites never answered"
            got.update({r.id: bytes(r.body) for r in responses})
        for handle in handles:
            self.rpc.forget(handle)
        return {h.recipient: got[h.id] for h in handles}

    def close(self) -> None:
        for events in self.events:
            events.close()
        for thread in self.threads:
            thread.join(20)
        self.rpc.close()


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Callable[..., Federation]]:
    made: list[Federation] = []

    def make(n: int, **options: Any) -> Federation:
        fed = Federation(tmp_path / "root", [f"ds{i:03d}@example.org" for i in range(n)], **options)
        made.append(fed)
        return fed

    yield make
    for fed in made:
        fed.close()


def _watcher_threads() -> list[str]:
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("syftflwr-watcher", "syftflwr-local-poller"))
    )


def _inotify_instances() -> int:
    """inotify instances this process holds (each is an fd on ``anon_inode:inotify``)."""
    links = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            links.append(str(fd.readlink()))
        except OSError:  # closed meanwhile (the listing's own fd)
            continue
    return links.count("anon_inode:inotify")


def test_hundred_datasites_in_one_process_share_one_watcher(
    federation: Callable[..., Federation],
) -> None:
    before = _inotify_instances()
    fed = federation(100)
    replies = fed.round()
    assert replies == {ds: b"round@" + ds.encode() for ds in fed.datasites}
    hub = watcher.watch_hub()
    assert hub.watched >= 100 and hub.fallbacks == 0
    assert _inotify_instances() == before + 1  # one instance for ~100 watched folders
    assert _watcher_threads() == ["syftflwr-watcher"]  # one observer, no poller
    # a second round reuses everything
    assert fed.round() == replies
    assert _inotify_instances() == before + 1
    assert _watcher_threads() == ["syftflwr-watcher"]


def test_running_out_of_inotify_instances_falls_back_to_polling(
    federation: Callable[..., Federation], caplog: pytest.LogCaptureFixture
) -> None:
    """TEST SEAM: the backend factory raises EMFILE as inotify_init does at the limit."""

    def exhausted(*args: object) -> watcher.WatchBackend:
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    watcher.set_backend_factory(exhausted)
    watcher.reset_hub()
    caplog.set_level(logging.WARNING, logger="syftflwr")
    fed = federation(5)
    assert fed.round() == {ds: b"round@" + ds.encode() for ds in fed.datasites}
    warnings = [r for r in caplog.records if "inotify limit reached" in r.getMessage()]
    assert len(warnings) == 1  # one warning, not one per folder
    assert "max_user_instances" in warnings[0].getMessage()
    assert watcher.watch_hub().fallbacks >= 10
    assert _watcher_threads() == ["syftflwr-local-poller"]


def test_running_out_of_watches_polls_only_what_cannot_be_watched(
    federation: Callable[..., Federation], caplog: pytest.LogCaptureFixture
) -> None:
    """TEST SEAM: a real inotify backend whose add_watch fails with ENOSPC after 3."""

    def limited(
        on_event: watcher.EventSink, on_lost: Callable[[str], None]
    ) -> watcher.WatchBackend:
        backend = watcher.default_backend_factory(on_event, on_lost)
        real_add = backend.add
        added: list[str] = []

        def add(path: str) -> None:
            if len(added) >= 3:
                raise OSError(errno.ENOSPC, "inotify watch limit reached")
            real_add(path)
            added.append(path)

        backend.add = add  # type: ignore[method-assign]
        return backend

    watcher.set_backend_factory(limited)
    watcher.reset_hub()
    caplog.set_level(logging.WARNING, logger="syftflwr")
    fed = federation(6)
    assert fed.round() == {ds: b"round@" + ds.encode() for ds in fed.datasites}
    assert watcher.watch_hub().watched == 3
    assert sum("inotify limit reached" in r.getMessage() for r in caplog.records) == 1
    assert _watcher_threads() == ["syftflwr-local-poller", "syftflwr-watcher"]


def test_polling_mode_works_without_any_watcher(federation: Callable[..., Federation]) -> None:
    fed = federation(3, watch="poll")
    assert fed.round() == {ds: b"round@" + ds.encode() for ds in fed.datasites}
    assert watcher.watch_hub().backend is None
    assert _watcher_threads() == ["syftflwr-local-poller"]


def test_a_datasite_process_without_inotify_still_serves(
    tmp_path: Path, spawn_datasite: Callable[..., Datasite]
) -> None:
    root = tmp_path / "root"
    datasite = spawn_datasite(DS1, root, fail_inotify="EMFILE")
    ctx = make_context(AGG, root)
    rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
    try:
        for _ in range(5):
            handle = rpc.send(
                Request.new(
                    sender=AGG,
                    recipient=DS1,
                    app="app",
                    endpoint="echo",
                    body=os.urandom(64),
                    ttl=60,
                )
            )
            assert rpc.wait([handle], timeout=30)
            rpc.forget(handle)
    finally:
        rpc.close()
        datasite.stop()
    assert datasite.log.count("inotify limit reached") == 1
