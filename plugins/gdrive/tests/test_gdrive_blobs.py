"""Shared blobs over Google Drive through core's mailbox (MailboxRPC.put_blob and
MailboxEvents.get_blob on the gdrive plugin's storage), on the loopback Drive with the
real client: one upload, one folder shared with exactly the recipients (reader grants,
no e-mail, one batch request), at most 3 + N Drive API calls per blob, and the blob
gone when dropped."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _gd_tokens import write_token
from drive_server import FOLDER, DriveState
from syftflwr.errors import MalformedMessageError
from syftflwr.info import TransportContext
from syftflwr.mailbox import MailboxEvents, MailboxRPC
from syftflwr.registry import get_registry
from syftflwr_gdrive.storage import UploadSessions

AGG, OUTSIDER = "agg@example.org", "outsider@example.org"
MODEL = os.urandom(300_000)
OPTIONS = {"poll_interval": 0.05, "retention_interval": 0}


@pytest.fixture
def roles(
    drive: tuple[DriveState, str], tmp_path: Path
) -> Iterator[Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents]]:
    state, url = drive
    transport = get_registry().load("gdrive")
    opened: list[MailboxRPC | MailboxEvents] = []

    def make(email: str, datasites: tuple[str, ...]) -> MailboxRPC | MailboxEvents:
        token = tmp_path / f"{email}.json"
        if not token.exists():
            write_token(token, state.add_user(email))
        context = TransportContext(
            transport="gdrive", app_name="app", email=email, aggregator=AGG,
            datasites=datasites, state_dir=tmp_path / "state" / email,
            options={**OPTIONS, "token_file": str(token), "api_root_url": url},
        )  # fmt: skip
        client = transport.make_client(context)
        role = (transport.make_rpc if email == AGG else transport.make_events)(client, context)
        assert isinstance(role, MailboxRPC | MailboxEvents)
        opened.append(role)
        return role

    yield make
    for role in opened:
        role.close()


def _resumable_roles(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    datasites: tuple[str, ...],
) -> tuple[MailboxRPC, MailboxEvents]:
    """The aggregator's RPC and the last datasite's events role, opened with a 256 KiB
    ``transfer_chunk_size``: MODEL (300,000 bytes) goes up resumable, as a model does."""
    OPTIONS["transfer_chunk_size"] = 256 * 1024
    try:
        rpc = roles(AGG, datasites)
        reader = roles(datasites[-1], datasites)
    finally:
        del OPTIONS["transfer_chunk_size"]
    assert isinstance(rpc, MailboxRPC) and isinstance(reader, MailboxEvents)
    return rpc, reader


@pytest.mark.parametrize("n", [1, 3, 10])
def test_one_upload_for_n_readers_and_a_round_trip(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    drive: tuple[DriveState, str],
    n: int,
) -> None:
    state, _ = drive
    datasites = tuple(f"ds{i}@example.org" for i in range(n))
    rpc = roles(AGG, datasites)
    assert isinstance(rpc, MailboxRPC) and rpc.capabilities.shares_objects
    assert rpc.capabilities.resumes_uploads  # declared: an upload survives a restart
    expires = time.time() + 300
    rpc.put_blob([b"first"], app="app", recipients=datasites, expires_at=expires)  # its folders
    calls, requests = state.calls_by(AGG).total(), state.http_requests[AGG]
    ref = rpc.put_blob([MODEL], app="app", recipients=datasites, expires_at=expires)
    calls, requests = state.calls_by(AGG).total() - calls, state.http_requests[AGG] - requests
    print(f"N={n}: {calls} Drive API calls in {requests} HTTP requests for one blob")
    assert calls <= 3 + n and requests <= 3
    [folder] = state.find(ref.name)
    assert folder.mime_type == FOLDER and folder.readers == set(datasites)
    assert not folder.writers and state.notify_requested == []
    assert [f.content for f in state.find(f"{ref.name}.blob")] == [MODEL]
    for ds in datasites:
        reader = roles(ds, datasites)
        assert isinstance(reader, MailboxEvents)
        assert reader.get_blob(ref, sender=AGG, app="app") == MODEL
    outsider = roles(OUTSIDER, (*datasites, OUTSIDER))
    assert isinstance(outsider, MailboxEvents)
    with pytest.raises(MalformedMessageError, match="gone"):
        outsider.get_blob(ref, sender=AGG, app="app")
    late = roles(datasites[0], datasites)  # a reader that has not cached it
    assert isinstance(late, MailboxEvents)
    rpc.drop_blob(ref, app="app")
    assert state.find(f"{ref.name}.blob") == []
    with pytest.raises(MalformedMessageError, match="gone"):
        late.get_blob(ref, sender=AGG, app="app")


def test_a_blob_above_the_transfer_chunk_goes_up_in_one_request(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    drive: tuple[DriveState, str],
) -> None:
    """A resumable blob upload (larger than ``transfer_chunk_size``) is one session and
    ONE request of its bytes, not one per transfer chunk: still 3 + N calls."""
    state, _ = drive
    datasites = ("ds0@example.org", "ds1@example.org", "ds2@example.org")
    rpc, reader = _resumable_roles(roles, datasites)
    expires = time.time() + 300
    rpc.put_blob([b"first"], app="app", recipients=datasites, expires_at=expires)  # its folders
    before = state.calls_by(AGG).copy()
    ref = rpc.put_blob([MODEL], app="app", recipients=datasites, expires_at=expires)
    calls = state.calls_by(AGG) - before
    assert calls["files.upload"] == 1 and calls.total() == 3 + len(datasites), calls
    [folder] = state.find(ref.name)
    assert folder.readers == set(datasites)
    assert reader.get_blob(ref, sender=AGG, app="app") == MODEL


def test_a_sealed_blob_goes_up_without_a_copy(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Core seals a model into ONE buffer: the upload sends views of it, never a joined
    copy (100 MB joined is 50 ms before the first byte) — and the bytes arrive intact."""
    datasites = ("ds0@example.org",)
    rpc, reader = _resumable_roles(roles, datasites)

    def no_join(parts: object) -> bytes:
        raise AssertionError("the blob's one buffer was joined (copied) before its upload")

    monkeypatch.setattr("syftflwr_gdrive.storage._join", no_join)
    sealed = memoryview(bytearray(MODEL))  # what core's seal hands over: a view of one buffer
    ref = rpc.put_blob([sealed], app="app", recipients=datasites, expires_at=None)
    monkeypatch.undo()
    assert reader.get_blob(ref, sender=AGG, app="app") == MODEL


def test_a_chunked_blob_round_trips(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    drive: tuple[DriveState, str],
) -> None:
    """Above max_object_size a blob is parts and a manifest, all in its shared folder."""
    state, _ = drive
    datasites = ("ds0@example.org", "ds1@example.org")
    OPTIONS["max_object_size"] = 64 * 1024
    try:
        rpc = roles(AGG, datasites)
        assert isinstance(rpc, MailboxRPC)
        ref = rpc.put_blob([MODEL], app="app", recipients=datasites, expires_at=time.time() + 60)
        reader = roles(datasites[1], datasites)
    finally:
        del OPTIONS["max_object_size"]
    assert isinstance(reader, MailboxEvents)
    [folder] = state.find(ref.name)
    inside = [f for f in state.files.values() if folder.id in f.parents]
    assert len(inside) == 1 + -(-len(MODEL) // (64 * 1024))
    assert reader.get_blob(ref, sender=AGG, app="app") == MODEL
    rpc.drop_blob(ref, app="app")
    assert not [f for f in state.files.values() if folder.id in f.parents]


def test_a_blob_upload_keeps_no_session_for_a_later_process(
    roles: Callable[[str, tuple[str, ...]], MailboxRPC | MailboxEvents],
    drive: tuple[DriveState, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No later process uploads a blob's bytes to its place (a restarted aggregator
    stores a new blob under a new name), so its upload is not recorded for resuming and
    its content is not hashed for a record (100 MB: 60 ms before the first byte). A large
    message still is (the control)."""
    state, _ = drive
    datasites = ("ds0@example.org", "ds1@example.org")
    keyed: list[int] = []
    real_key = UploadSessions.key

    def key(self: UploadSessions, parent: str, name: str, data: bytes) -> str:
        keyed.append(len(data))
        return real_key(self, parent, name, data)

    monkeypatch.setattr(UploadSessions, "key", key)
    OPTIONS["transfer_chunk_size"] = 256 * 1024  # MODEL is 300,000 bytes: resumable
    try:
        rpc = roles(AGG, datasites)
    finally:
        del OPTIONS["transfer_chunk_size"]
    assert isinstance(rpc, MailboxRPC)
    ref = rpc.put_blob([MODEL], app="app", recipients=datasites, expires_at=time.time() + 60)
    assert keyed == [] and state.find(ref.name)
    rpc.storage.put_if_absent(f"syft_outbox_inbox_{AGG}_to_{datasites[0]}/app/rpc/x/"
                              + "b" * 32 + ".request", [MODEL])  # fmt: skip
    assert keyed == [len(MODEL)]
