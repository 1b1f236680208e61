"""fsspec roots, exercised in-process with fsspec's real memory filesystem: the storage
contract, polled round trips (chunked too), and errors that name the fix."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from _fsl_helpers import AGG, DS1, make_context
from syftflwr.envelope import Request
from syftflwr.errors import MessageTooLargeError, StorageError
from syftflwr.mailbox import Poller, Storage
from syftflwr.mailbox.events import MailboxEvents
from syftflwr_fsspec_local import plugin
from syftflwr_fsspec_local.fsspec_storage import FsspecStorage


@pytest.fixture
def url() -> Iterator[str]:
    import fsspec

    name = f"memory://syftflwr-test-{uuid.uuid4().hex}"
    yield name
    fs = fsspec.filesystem("memory")
    if fs.exists(name):
        fs.rm(name, recursive=True)


def test_storage_contract(url: str) -> None:
    storage = FsspecStorage(url)
    assert isinstance(storage, Storage)
    assert storage.get("a/b/x") is None and storage.list("a/b") == []
    assert storage.put_if_absent("a/b/x", [b"one", memoryview(b"two")]) is True
    assert storage.put_if_absent("a/b/x", [b"other"]) is False
    assert bytes(storage.get("a/b/x") or b"") == b"onetwo"
    storage.put("a/b/x", [b"replaced"])
    assert bytes(storage.get("a/b/x") or b"") == b"replaced"
    assert storage.claim("a/b/c.claim", "me") and not storage.claim("a/b/c.claim", "you")
    assert sorted(storage.list("a/b")) == ["c.claim", "x"]
    with pytest.raises(MessageTooLargeError):
        storage.get("a/b/x", max_size=3)
    storage.delete("a/b/x")
    storage.delete("a/b/x")
    assert storage.list("a/b") == ["c.claim"]
    assert storage.local_path("a/b/c.claim") is None


def test_put_if_absent_has_one_winner_among_threads(url: str) -> None:
    storage = FsspecStorage(url)
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def race(n: int) -> None:
        barrier.wait()
        if storage.put_if_absent("race/x", [str(n).encode()]):
            wins.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert bytes(storage.get("race/x") or b"") == str(wins[0]).encode()


def test_unknown_scheme_names_the_fix() -> None:
    with pytest.raises(StorageError, match="fix:"):
        FsspecStorage("nosuchscheme://bucket/x")


@pytest.mark.parametrize("max_object_size", [None, 64 * 1024])
def test_polled_round_trip(url: str, max_object_size: int | None) -> None:
    options = {"poll_interval": 0.01, "max_object_size": max_object_size}
    agg_ctx = make_context(AGG, url, **options)
    client = plugin.syftflwr_make_client(agg_ctx)
    assert not client.capabilities.notifies_arrivals
    assert isinstance(client.arrivals, Poller)
    rpc = plugin.syftflwr_make_rpc(client, agg_ctx)
    ds_ctx = make_context(DS1, url, **options)
    events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(ds_ctx), ds_ctx)
    assert isinstance(events, MailboxEvents)
    events.on_request("echo", lambda r: bytes(r.body)[::-1])
    thread = threading.Thread(target=events.run_forever)
    thread.start()
    try:
        for size in (10, 1_000_000):
            body = os.urandom(size)
            handle = rpc.send(
                Request.new(
                    sender=AGG, recipient=DS1, app="app", endpoint="echo", body=body, ttl=60
                )
            )
            (response,) = rpc.wait([handle], timeout=30)
            assert response.ok and bytes(response.body) == body[::-1]
            rpc.forget(handle)
        # the poller lists inbox folders only, never the root
        assert all(f.startswith("syft_outbox_inbox_") for f in client.arrivals.watched)
    finally:
        events.close()
        thread.join(20)
        rpc.close()
