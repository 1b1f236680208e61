"""Sharing a blob folder with exactly its readers (core's SharesFolders) over the loopback
Drive with the real client: one reader grant each, no notification e-mail, batched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from drive_server import DriveState
from syftflwr.plugin import SharesFolders, StorageError
from syftflwr_gdrive.api import BATCH_LIMIT
from syftflwr_gdrive.storage import DriveStorage

ALICE, BOB, CAROL, DAVE = (f"{n}@example.org" for n in ("alice", "bob", "carol", "dave"))
FOLDER = "shared_by_alice/app/0123456789abcdef0123456789abcdef"
MakeStorage = Callable[..., DriveStorage]


def test_offers_shares_folders(make_storage: MakeStorage) -> None:
    assert isinstance(make_storage(ALICE), SharesFolders)


def test_each_reader_gets_one_read_grant_without_email(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice, bob, carol, dave = (make_storage(who) for who in (ALICE, BOB, CAROL, DAVE))
    alice.share_folder(FOLDER, [BOB, CAROL, BOB, ALICE])  # duplicates, the owner itself
    [folder] = state.find(FOLDER.rsplit("/", 1)[1])
    assert (folder.owner, folder.readers, folder.writers) == (ALICE, {BOB, CAROL}, set())
    assert state.notify_requested == []
    assert state.calls_by(ALICE)["permissions.create"] == 2
    assert alice.put_if_absent(f"{FOLDER}/x.blob", [b"model"])
    [blob] = state.find("x.blob")
    # readers read it through the real client; a non-recipient sees nothing; no one
    # but alice writes there
    for reader in (bob, carol):
        assert reader.api.call("x", lambda s: s.files().get_media(fileId=blob.id)) == b"model"
    with pytest.raises(StorageError, match="not found"):
        dave.api.call("x", lambda s: s.files().get_media(fileId=blob.id))
    with pytest.raises(StorageError, match="refused"):
        bob.api.call(
            "x", lambda s: s.files().create(body={"name": "y.blob", "parents": [folder.id]})
        )


def test_grants_take_one_http_request_per_hundred_readers(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice = make_storage(ALICE)
    alice.makedirs(FOLDER)
    readers = [f"ds{i}@example.org" for i in range(BATCH_LIMIT + 50)]
    before_http, before_calls = state.http_requests[ALICE], alice.api.calls
    alice.share_folder(FOLDER, readers)
    assert state.http_requests[ALICE] - before_http == 2
    assert alice.api.calls - before_calls == 2
    assert state.calls_by(ALICE)["permissions.create"] == len(readers)
    [folder] = state.find(FOLDER.rsplit("/", 1)[1])
    assert folder.readers == set(readers)


def _grant_fails(
    make_storage: MakeStorage, state: DriveState, status: int, reason: str | None = None
) -> DriveStorage:
    """Alice's storage with a folder, whose next grant Drive refuses with ``status``."""
    alice = make_storage(ALICE)
    alice.makedirs(FOLDER)
    state.fault_filter = lambda method: method == "permissions.create"
    state.inject(status, 1, reason)
    return alice


def test_a_rate_limited_grant_alone_is_sent_again(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice = _grant_fails(make_storage, state, 429)
    alice.share_folder(FOLDER, [BOB, CAROL, DAVE])
    [folder] = state.find(FOLDER.rsplit("/", 1)[1])
    assert folder.readers == {BOB, CAROL, DAVE}
    assert state.calls_by(ALICE)["permissions.create"] == 4  # 3, then the refused one
    assert alice.api.retried == 1


def test_a_refused_grant_is_an_error_naming_the_folder(
    make_storage: MakeStorage, drive: tuple[DriveState, str]
) -> None:
    state, _ = drive
    alice = _grant_fails(make_storage, state, 400, "invalidSharingRequest")
    with pytest.raises(StorageError, match=f"sharing {FOLDER} with {BOB}.*invalidSharingRequest"):
        alice.share_folder(FOLDER, [BOB])


def test_only_own_folders_are_shared(make_storage: MakeStorage) -> None:
    bob = make_storage(BOB)
    with pytest.raises(StorageError, match="only shares its own folders"):
        bob.share_folder(f"syft_outbox_inbox_{ALICE}_to_{BOB}/app", [CAROL])
