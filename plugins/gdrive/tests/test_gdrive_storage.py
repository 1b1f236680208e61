"""DriveStorage over the loopback Drive with the real client: where objects live, who
sees them, exclusive creates, large transfers, retries and clear errors."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from drive_server import FOLDER, DriveState, drive_service
from syftflwr.errors import MessageTooLargeError, StorageError
from syftflwr.mailbox.layout import Route, ensure_layout
from syftflwr.mailbox.storage import Storage
from syftflwr_gdrive.api import DriveAPI
from syftflwr_gdrive.storage import DriveStorage

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
ROUTE = Route(ALICE, BOB, "app", "messages")  # alice -> bob
MakeStorage = Callable[..., DriveStorage]


def test_is_a_storage(make_storage: MakeStorage) -> None:
    assert isinstance(make_storage(ALICE), Storage)


def test_outbox_round_trip_and_sharing(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice, bob, carol = make_storage(ALICE), make_storage(BOB), make_storage(CAROL)
    path = ROUTE.request_path("a" * 32)
    assert alice.put_if_absent(path, [b"hello ", memoryview(b"bob")])
    assert not alice.put_if_absent(path, [b"again"])  # exclusive
    assert bytes(alice.get(path) or b"") == b"hello bob"
    # bob reads it through the folder alice shared with him; carol sees nothing
    assert bytes(bob.get(path) or b"") == b"hello bob"
    assert bob.list(ROUTE.folder) == ["a" * 32 + ".request"]
    assert carol.get(path) is None and carol.list(ROUTE.folder) == []
    [outbox] = [f for f in state.find(ROUTE.folder.split("/")[0])]
    assert outbox.owner == ALICE and outbox.writers == {BOB}
    # the outbox lives under alice's SyftBox folder in her My Drive
    [root] = state.find("SyftBox")
    assert outbox.parents == [root.id] and root.parents == [state.root_id(ALICE)]
    assert ROUTE.folder.split("/")[0] in bob.list("")
    alice.delete(path)
    assert bob.get(path) is None and alice.list(ROUTE.folder) == []
    alice.delete(path)  # missing is fine


def test_only_the_named_owner_counts(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    """A folder named like alice's outbox but owned by carol, or a file bob (a writer)
    dropped into alice's outbox, is never taken for alice's."""
    state, url = drive
    alice, bob, carol = make_storage(ALICE), make_storage(BOB), make_storage(CAROL)
    top = ROUTE.folder.split("/")[0]
    carol_svc = drive_service(url, next(t for t, e in state.users.items() if e == CAROL))
    fake = carol_svc.files().create(body={"name": top, "mimeType": FOLDER}).execute()
    carol_svc.permissions().create(
        fileId=fake["id"], body={"type": "user", "role": "writer", "emailAddress": BOB}
    ).execute()
    assert bob.list(top) == [] and top not in bob.list("")
    path = ROUTE.request_path("b" * 32)
    alice.put_if_absent(path, [b"real"])
    with pytest.raises(StorageError, match="only writes into its own outboxes"):
        bob.put_if_absent(path, [b"forged"])
    # bob may write into the folder on Drive (writer), but alice's storage ignores it
    bob_svc = drive_service(url, next(t for t, e in state.users.items() if e == BOB))
    folder_id = alice.folder_id(ROUTE.folder)
    bob_svc.files().create(body={"name": "c" * 32 + ".request", "parents": [folder_id]}).execute()
    assert alice.list(ROUTE.folder) == ["b" * 32 + ".request"]
    assert bob.list(ROUTE.folder) == ["b" * 32 + ".request"]
    with pytest.raises(StorageError, match="only a file's owner may delete"):
        bob._delete_id(state.find("b" * 32 + ".request")[0].id, "x")
    assert carol.list(ROUTE.folder) == []


def test_concurrent_exclusive_creates_have_one_winner(make_storage: MakeStorage) -> None:
    """Threads and separate storages of one user (two processes) race on one name."""
    storages = [make_storage(BOB)] + [make_storage(BOB) for _ in range(3)]
    storages[0].makedirs(ROUTE.reverse().folder)
    for round_ in range(5):
        path = ROUTE.claim_path(f"{round_:032x}")  # in bob's outbox
        wins: list[bool] = []
        barrier = threading.Barrier(8)

        def race(
            storage: DriveStorage,
            owner: str,
            path: str = path,
            barrier: threading.Barrier = barrier,
            wins: list[bool] = wins,
        ) -> None:
            barrier.wait()
            wins.append(storage.claim(path, owner))

        threads = [
            threading.Thread(target=race, args=(storages[i % 4], f"owner-{i}")) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False] * 7 + [True]
        holder = bytes(storages[1].get(path) or b"").decode()
        assert holder.startswith("owner-")
        assert storages[0].list(ROUTE.reverse().folder).count(f"{round_:032x}.claim") == 1


def test_a_small_exclusive_create_is_a_create_and_one_check(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    """No look before a small create (Drive has no create-if-absent: the check after
    settles who was first); a name that exists keeps its one, first copy."""
    state, _ = drive
    alice = make_storage(ALICE)
    alice.put_if_absent(ROUTE.request_path("0" * 32), [b"warm-up"])  # the outbox folders
    before = state.calls_by(ALICE).copy()
    assert alice.put_if_absent(ROUTE.request_path("1" * 32), [b"message"])
    assert state.calls_by(ALICE) - before == {"files.create": 1, "files.list": 1}
    assert not alice.put_if_absent(ROUTE.request_path("1" * 32), [b"other"])
    [kept] = state.find("1" * 32 + ".request")
    assert kept.content == b"message"


def test_a_new_name_is_one_create_and_a_retried_create_is_settled(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    """``put_new`` (core's PutsNew: a request id this participant's journal never saw,
    so never published) is one create, no check after; a create the client had to retry
    is checked as ``put_if_absent`` checks (an attempt that failed may have made a copy)."""
    state, _ = drive
    alice = make_storage(ALICE)
    alice.put_if_absent(ROUTE.request_path("0" * 32), [b"warm-up"])  # the outbox folders
    before = state.calls_by(ALICE).copy()
    alice.put_new(ROUTE.request_path("2" * 32), [b"message"])
    assert state.calls_by(ALICE) - before == {"files.create": 1}
    state.inject(503)
    before = state.calls_by(ALICE).copy()
    alice.put_new(ROUTE.request_path("3" * 32), [b"again"])
    assert state.calls_by(ALICE) - before == {"files.create": 2, "files.list": 1}
    assert [f.content for f in state.find("2" * 32 + ".request")] == [b"message"]
    assert [f.content for f in state.find("3" * 32 + ".request")] == [b"again"]


def test_put_replaces(make_storage: MakeStorage) -> None:
    alice = make_storage(ALICE)
    path = ROUTE.request_path("d" * 32)
    alice.put(path, [b"one"])
    alice.put(path, [b"two"])
    assert bytes(alice.get(path) or b"") == b"two"
    assert alice.list(ROUTE.folder) == ["d" * 32 + ".request"]


def test_large_objects_use_resumable_upload_and_ranged_download(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice = make_storage(ALICE, transfer_chunk=256 * 1024)
    bob = make_storage(BOB, transfer_chunk=256 * 1024)
    body = random.Random(1).randbytes(3 * 256 * 1024 + 17)
    path = ROUTE.request_path("e" * 32)
    assert alice.put_if_absent(path, [body[:1000], body[1000:]])
    assert bytes(bob.get(path) or b"") == body
    assert state.calls_by(ALICE)["files.upload"] >= 4  # resumable chunks
    assert state.calls_by(BOB)["files.get"] >= 4  # ranged reads
    with pytest.raises(MessageTooLargeError):
        bob.get(path, max_size=1024)


@pytest.mark.parametrize(
    ("status", "reason"), [(429, None), (403, "userRateLimitExceeded"), (500, None), (503, None)]
)
def test_transient_errors_are_retried(
    make_storage: MakeStorage, drive: tuple[DriveState, str], status: int, reason: str | None
) -> None:
    state, _ = drive
    alice = make_storage(ALICE, transfer_chunk=256 * 1024)
    state.inject(status, 3, reason)
    path = ROUTE.request_path("f" * 32)
    assert alice.put_if_absent(path, [b"x" * (600 * 1024)])  # resumable, through the storm
    state.inject(status, 3, reason)
    assert bytes(alice.get(path) or b"") == b"x" * (600 * 1024)
    assert alice.api.retried == 6


def test_persistent_failures_become_clear_errors(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice = make_storage(ALICE)
    alice.makedirs(ROUTE.folder)
    state.inject(500, 100)
    with pytest.raises(StorageError, match="after retries with backoff"):
        alice.list(ROUTE.folder)
    state.inject(0, 0)
    with state.lock:
        state._faults.clear()
    state.inject(403, 1, "insufficientFilePermissions")  # not a rate limit: no retry
    with pytest.raises(StorageError, match="refused"):
        alice.list(ROUTE.folder)


def test_layout_marker(make_storage: MakeStorage) -> None:
    alice = make_storage(ALICE)
    assert ensure_layout(alice) == 1
    assert ensure_layout(make_storage(ALICE)) == 1  # a second process agrees
    assert alice.list(".syftflwr") == ["layout.json"]


def test_threads_reuse_idle_services_never_one_at_once(
    make_api: Callable[[str], DriveAPI],
) -> None:
    """A push's send threads are new each time: they take idle services (built resources,
    open connections) instead of building new ones, and no two threads ever hold the
    same one (httplib2 is not thread-safe)."""
    api = make_api("agg@example.org")
    with api.session() as first:
        assert first.files() is first.files()  # built once, not per request
        with api.session() as second:
            assert second is not first
    held: set[int] = set()
    lock = threading.Lock()
    seen: set[int] = set()
    overlap: list[int] = []

    def list_files() -> None:
        with api.session() as service:
            with lock:
                if id(service) in held:
                    overlap.append(id(service))
                held.add(id(service))
                seen.add(id(service))
            service.files().list(q="trashed = false").execute()
            with lock:
                held.discard(id(service))

    for _ in range(3):  # waves of new threads, as pushes start them
        threads = [threading.Thread(target=list_files) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert overlap == []
    assert id(first) in seen and id(second) in seen, "the idle services were not reused"
    assert len(seen) <= 8, f"{len(seen)} services for 24 threads, at most 8 at once"
