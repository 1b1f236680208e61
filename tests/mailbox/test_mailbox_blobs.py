"""Shared blobs over a real local directory: where they live, sharing before writing,
chunking, every refusal a reader gives, the reader's cache, deletion, and retention of
blobs a killed sender left behind (real processes, SIGKILL at two moments)."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from _mailbox_helpers import AGG, APP, DS1, DS2, Client, Mailbox, context
from syftflwr.envelope import Buffer
from syftflwr.errors import (
    BlobGoneError,
    EncryptionError,
    MalformedMessageError,
    MessageTooLargeError,
    StorageError,
    TransportError,
)
from syftflwr.mailbox import Journal, LocalDirStorage, MailboxEvents
from syftflwr.mailbox.journal import BlobState
from syftflwr.mailbox.layout import (
    BLOB_PREFIX,
    blob_folder,
    blob_path,
    discover_senders,
    parse_name,
)
from syftflwr.mailbox.retention import sweep_blobs
from syftflwr.mailbox.storage import SharesFolders, StorageWrapper
from syftflwr.names import new_message_id
from syftflwr.roles import BlobRef, offers

WORKER = Path(__file__).resolve().parent / "_blob_worker.py"
READER = Path(__file__).resolve().parent / "_blob_reader.py"
MODEL = os.urandom(200_000)
MARKER = "syft.pub.yaml"  # what a sharing storage may write into the folder


class SharingStorage(LocalDirStorage):
    """A local storage offering ``share_folder`` (as SyftBox's would, with a permission
    file); it records what the folder held when it was asked to share it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.shared: list[tuple[str, list[str], list[str]]] = []
        self.gets = 0

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        self.shared.append((folder, list(readers), self.list(folder)))
        self.put(f"{folder}/{MARKER}", [",".join(readers).encode()])

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        self.gets += 1
        return super().get(path, max_size=max_size)


class BlobBox(Mailbox):
    def make_storage(self) -> LocalDirStorage:
        return SharingStorage(self.root)

    def reader(self, email: str, **kw: object) -> MailboxEvents:
        """An events role (not serving: a handler reads blobs through it)."""
        events = MailboxEvents(
            Client(email),
            context(email, **kw),
            self.caps,
            storage=self.storage,
            arrivals=self.poller,
            journal=Journal(None),
            retention_interval=0,
        )
        self.events[f"{email}#{len(self.events)}"] = events
        return events


@pytest.fixture
def box(tmp_path: Path) -> Iterator[BlobBox]:
    mailbox = BlobBox(tmp_path / "root", shares_objects=True)
    yield mailbox
    mailbox.close()


@pytest.fixture
def chunked(tmp_path: Path) -> Iterator[BlobBox]:
    mailbox = BlobBox(tmp_path / "root", shares_objects=True, max_object_size=64 * 1024)
    yield mailbox
    mailbox.close()


def _storage(box: Mailbox) -> SharingStorage:
    assert isinstance(box.storage, SharingStorage)
    return box.storage


def _put(box: Mailbox, data: bytes = MODEL, **kw: object) -> BlobRef:
    rpc = box.rpcs[0] if box.rpcs else box.rpc()
    args: dict[str, object] = {"app": APP, "recipients": [DS1, DS2], "expires_at": None, **kw}
    return rpc.put_blob([data], **args)  # type: ignore[arg-type]


def test_a_transport_that_cannot_share_objects_is_refused(tmp_path: Path) -> None:
    box = BlobBox(tmp_path / "root")  # shares_objects not declared
    try:
        with pytest.raises(TransportError, match="test-mailbox transport cannot share"):
            _put(box)
        assert not any(n.startswith(BLOB_PREFIX) for n in box.storage.list(""))
    finally:
        box.close()


def test_one_blob_in_the_senders_folder_shared_before_it_is_written(box: BlobBox) -> None:
    ref = _put(box)
    assert (ref.size, ref.sha256) == (len(MODEL), hashlib.sha256(MODEL).hexdigest())
    assert ref.name not in ref.sha256 and ref.key is None
    folder = blob_folder(AGG, APP, ref.name)
    assert folder == f"syftflwr_blobs_{AGG}/{APP}/{ref.name}"
    assert _storage(box).shared == [(folder, [DS1, DS2], [])]  # empty when shared
    assert sorted(box.storage.list(folder)) == sorted([f"{ref.name}.blob", MARKER])
    assert bytes(box.storage.get(blob_path(AGG, APP, ref.name)) or b"") == MODEL
    for email in (DS1, DS2):
        assert box.reader(email).get_blob(ref, sender=AGG, app=APP) == MODEL
    entry = box.rpcs[0].journal.blob_state(ref.name)
    assert entry is not None and entry.state is BlobState.STORED and entry.app == APP


def test_a_storage_wrapper_forwards_sharing_only_when_it_wraps_it(tmp_path: Path) -> None:
    """A plugin wrapping its storage (syftbox's sync-aware reads) neither hides
    share_folder, which would leave a blob unreadable by its recipients, nor invents it."""
    assert not offers(StorageWrapper(LocalDirStorage(tmp_path / "plain")), SharesFolders)
    box = BlobBox(tmp_path / "root", shares_objects=True)
    try:
        inner = _storage(box)
        box.storage = StorageWrapper(inner)  # type: ignore[assignment]
        assert offers(box.storage, SharesFolders)
        ref = _put(box)
        assert [(f, r) for f, r, _ in inner.shared] == [
            (blob_folder(AGG, APP, ref.name), [DS1, DS2])
        ]
        with pytest.raises(AttributeError, match="no attribute 'read_head'"):
            box.storage.read_head  # noqa: B018 - never forwarded (see the storage module)
    finally:
        box.close()


class GrantsWhileWriting(SharingStorage):
    """A storage whose grants cover content written before or after (as Drive's do):
    its grants wait for the blob's upload to have started, as they may."""

    shares_while_writing = True

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.uploading = threading.Event()

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        assert self.uploading.wait(10), "the grants ran before the upload, not beside it"
        super().share_folder(folder, readers)

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        if path.endswith(".blob"):
            self.uploading.set()
        return super().put_if_absent(path, parts)


def test_a_storage_wrapper_keeps_granting_while_the_blob_uploads(tmp_path: Path) -> None:
    """A wrapper keeps ``shares_while_writing`` of the storage it wraps (the grants of a
    Drive blob overlap its upload; hidden, they ran first, one round trip per phase
    longer) and never invents it."""
    assert StorageWrapper(LocalDirStorage(tmp_path / "plain")).shares_while_writing is False
    assert StorageWrapper(SharingStorage(tmp_path / "sharing")).shares_while_writing is False
    box = BlobBox(tmp_path / "root", shares_objects=True)
    try:
        inner = GrantsWhileWriting(box.root)
        box.storage = StorageWrapper(inner)  # type: ignore[assignment]
        assert box.storage.shares_while_writing is True
        ref = _put(box)
        assert [(f, r) for f, r, _ in inner.shared] == [
            (blob_folder(AGG, APP, ref.name), [DS1, DS2])
        ]
    finally:
        box.close()


class HeldUpload(SharingStorage):
    """A storage whose blob upload waits until the blob was named (or 10 s)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.named = threading.Event()
        self.named_before_stored: bool | None = None

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        if path.endswith(".blob"):
            self.named_before_stored = self.named.wait(10)
        return super().put_if_absent(path, parts)


def test_a_blob_is_named_while_it_uploads_with_the_ref_it_returns(tmp_path: Path) -> None:
    """``on_named`` comes once, before the upload ends (the messages naming the blob
    travel beside it), with exactly the ref put_blob then returns."""
    box = BlobBox(tmp_path / "root", shares_objects=True)
    try:
        storage = HeldUpload(box.root)
        box.storage = storage
        named: list[BlobRef] = []

        def on_named(ref: BlobRef) -> None:
            assert box.storage.get(blob_path(AGG, APP, ref.name)) is None  # not stored yet
            named.append(ref)
            storage.named.set()

        ref = _put(box, on_named=on_named)
        assert storage.named_before_stored is True
        assert named == [ref]
        assert box.reader(DS1).get_blob(ref, sender=AGG, app=APP) == MODEL
    finally:
        box.close()


def test_a_blob_not_stored_yet_is_reported_gone_so_its_reader_can_ask_again(
    box: BlobBox,
) -> None:
    """A reader that gets a message before its blob is stored gets BlobGoneError (the one
    refusal core's runner asks again after), and the blob once it is there."""
    ref = BlobRef(name=new_message_id(), sha256=hashlib.sha256(MODEL).hexdigest(),
                  size=len(MODEL))  # fmt: skip
    reader = box.reader(DS1)
    with pytest.raises(BlobGoneError, match="is gone"):
        reader.get_blob(ref, sender=AGG, app=APP)
    box.storage.put_if_absent(blob_path(AGG, APP, ref.name), [MODEL])
    assert reader.get_blob(ref, sender=AGG, app=APP) == MODEL


def test_blob_folders_are_never_taken_for_outboxes(box: BlobBox) -> None:
    _put(box)
    top = box.storage.list("")
    assert f"{BLOB_PREFIX}{AGG}" in top
    assert discover_senders(top, DS1) == []
    ref = _put(box)
    assert parse_name(f"{ref.name}.blob") is not None  # a mailbox name, kind "blob"...
    # ...that no role reacts to as a request or a response: a round trip still works
    box.serve(DS1, lambda r: bytes(r.body))
    rpc = box.rpcs[0]
    handle = rpc.send(box.request(DS1, b"still fine"))
    (response,) = rpc.wait([handle], timeout=20)
    assert bytes(response.body) == b"still fine"


def test_a_chunked_blob_round_trips_and_a_flipped_part_is_refused(chunked: BlobBox) -> None:
    ref = _put(chunked)
    folder = blob_folder(AGG, APP, ref.name)
    parts = [n for n in chunked.storage.list(folder) if ".part-" in n]
    assert len(parts) == 4  # 200,000 bytes in parts of 64 KiB
    assert chunked.reader(DS1).get_blob(ref, sender=AGG, app=APP) == MODEL
    part = f"{folder}/{sorted(parts)[1]}"
    data = bytearray(chunked.storage.get(part) or b"")
    data[10] ^= 1
    chunked.storage.put(part, [data])
    with pytest.raises(MalformedMessageError, match=f"blob {ref.name} from {AGG}: .*SHA-256"):
        chunked.reader(DS1).get_blob(ref, sender=AGG, app=APP)


def test_stored_bytes_flipped_grown_or_swapped_are_refused(box: BlobBox) -> None:
    ref = _put(box)
    other = _put(box, MODEL[::-1])
    path = blob_path(AGG, APP, ref.name)
    flipped = bytearray(MODEL)
    flipped[-1] ^= 0x80
    cases = [
        (bytes(flipped), "SHA-256 differs"),
        (MODEL + b"x", f"larger than the {len(MODEL):,} bytes its message says"),
        (MODEL[:-1], "its message says"),
        (bytes(box.storage.get(blob_path(AGG, APP, other.name)) or b""), "SHA-256 differs"),
    ]
    for data, reason in cases:
        box.storage.put(path, [data])
        with pytest.raises(MalformedMessageError, match=reason):
            box.reader(DS1).get_blob(ref, sender=AGG, app=APP)


def test_another_chunked_blob_put_back_under_its_name_is_refused(chunked: BlobBox) -> None:
    ref = _put(chunked)
    other = _put(chunked, MODEL[::-1])
    mine, theirs = blob_folder(AGG, APP, ref.name), blob_folder(AGG, APP, other.name)
    for name in chunked.storage.list(theirs):  # the other blob's manifest and parts
        data = chunked.storage.get(f"{theirs}/{name}") or b""
        chunked.storage.put(f"{mine}/{name.replace(other.name, ref.name)}", [data])
    with pytest.raises(MalformedMessageError, match=f"blob {ref.name} from {AGG}"):
        chunked.reader(DS1).get_blob(ref, sender=AGG, app=APP)


def test_plain_reader_refusals_before_any_read(box: BlobBox) -> None:
    ref = _put(box)
    storage = _storage(box)
    reader = box.reader(DS1)
    before = storage.gets
    with pytest.raises(EncryptionError, match="sealed, but encryption is off here"):
        reader.get_blob(replace(ref, key=b"k" * 32, digest="0" * 64), sender=AGG, app=APP)
    with pytest.raises(MessageTooLargeError, match="above max_message_size"):
        box.reader(DS1, max_message_size=1000).get_blob(ref, sender=AGG, app=APP)
    with pytest.raises(ValueError, match="invalid"):
        reader.get_blob(replace(ref, name="../../etc"), sender=AGG, app=APP)
    with pytest.raises(ValueError, match="invalid"):
        reader.get_blob(ref, sender="../x", app=APP)
    assert storage.gets == before


def test_the_reader_reads_a_blob_once_for_many_requests(box: BlobBox) -> None:
    refs = [_put(box, bytes([i]) * 1000) for i in range(3)]
    storage = _storage(box)
    reader = box.reader(DS1)
    before = storage.gets
    for _ in range(5):
        assert reader.get_blob(refs[0], sender=AGG, app=APP) == bytes([0]) * 1000
    assert storage.gets == before + 1
    for ref in refs:  # three blobs through a cache of two: the first is evicted
        reader.get_blob(ref, sender=AGG, app=APP)
    before = storage.gets
    reader.get_blob(refs[2], sender=AGG, app=APP)
    assert storage.gets == before
    reader.get_blob(refs[0], sender=AGG, app=APP)
    assert storage.gets == before + 1
    # a cached blob is only ever returned for a ref naming exactly its bytes
    with pytest.raises(MalformedMessageError):
        reader.get_blob(replace(refs[0], sha256=refs[1].sha256), sender=AGG, app=APP)


def test_many_threads_read_one_blob_while_others_are_put_and_dropped(chunked: BlobBox) -> None:
    ref = _put(chunked)
    readers = [chunked.reader(e) for e in (DS1, DS2)]
    errors: list[BaseException] = []

    def read(n: int) -> None:
        try:
            for _ in range(10):
                assert readers[n % 2].get_blob(ref, sender=AGG, app=APP) == MODEL
        except BaseException as exc:
            errors.append(exc)

    def churn() -> None:
        try:
            for i in range(10):
                other = _put(chunked, bytes([i]) * 70_000)
                chunked.rpcs[0].drop_blob(other, app=APP)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(6)]
    threads += [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    app_folder = f"{BLOB_PREFIX}{AGG}/{APP}"
    left = {n: chunked.storage.list(f"{app_folder}/{n}") for n in chunked.storage.list(app_folder)}
    assert len(left) == 21 and all(not names for n, names in left.items() if n != ref.name)


def test_a_blob_dropped_while_it_is_read_is_reported_gone(chunked: BlobBox) -> None:
    """The sender drops the blob between the reader's manifest and its parts: the
    reader says the blob is gone, not that a part is missing."""
    ref = _put(chunked)
    storage = _storage(chunked)
    rpc = chunked.rpcs[0]
    original = storage.get

    def get_then_drop(path: str, *, max_size: int | None = None) -> Buffer | None:
        found = original(path, max_size=max_size)
        if path.endswith(".blob"):  # the manifest was read: now the sender drops it
            rpc.drop_blob(ref, app=APP)
        return found

    storage.get = get_then_drop  # type: ignore[method-assign]
    with pytest.raises(MalformedMessageError, match="is gone: it expired, or its sender"):
        chunked.reader(DS1).get_blob(ref, sender=AGG, app=APP)


def test_drop_deletes_parts_and_markers_and_readers_are_told_it_is_gone(
    chunked: BlobBox,
) -> None:
    ref = _put(chunked)
    rpc = chunked.rpcs[0]
    folder = blob_folder(AGG, APP, ref.name)
    rpc.drop_blob(ref, app=APP)
    rpc.drop_blob(ref, app=APP)  # idempotent
    assert chunked.storage.list(folder) == []
    assert rpc.journal.blob_state(ref.name) is None  # deleted: nothing left to sweep
    with pytest.raises(MalformedMessageError, match="is gone: it expired, or its sender dropped"):
        chunked.reader(DS1).get_blob(ref, sender=AGG, app=APP)


def test_another_process_of_the_sender_drops_a_blob_from_its_journal(
    chunked: BlobBox, tmp_path: Path
) -> None:
    state = tmp_path / "agg-state"
    ref = chunked.rpc(state_dir=state).put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    chunked.rpcs.pop().close()
    resumed = chunked.rpc(state_dir=state)
    resumed.drop_blob(ref, app=APP)
    assert chunked.storage.list(blob_folder(AGG, APP, ref.name)) == []


def test_retention_keeps_held_live_and_reused_blobs(box: BlobBox, tmp_path: Path) -> None:
    state = tmp_path / "agg-state"
    rpc = box.rpc(state_dir=state)
    now = time.time()
    held = rpc.put_blob([b"held" * 100], app=APP, recipients=[DS1], expires_at=now - 60)
    live = rpc.put_blob([b"live" * 100], app=APP, recipients=[DS1], expires_at=now + 600)
    assert rpc.sweep() == 0  # held by this process, or not expired
    rpc.close()
    box.rpcs.remove(rpc)
    journal = Journal(state / "mailbox" / "journal.sqlite")
    try:
        # a request sent after the blob was stored is still live: it may name the blob
        journal.sending("r" * 32, recipient=DS1, app=APP, endpoint="ep", expires_at=now + 600)
        assert sweep_blobs(box.storage, AGG, journal, str, busy=()) == 0
        journal.forgotten("r" * 32)
        assert sweep_blobs(box.storage, AGG, journal, str) == 2  # the expired one
        assert box.storage.list(blob_folder(AGG, APP, held.name)) == []
        assert box.storage.list(blob_folder(AGG, APP, live.name)) != []
        assert sweep_blobs(box.storage, AGG, journal, str, now=now + 700) == 2
        assert journal.blobs() == []  # both deleted: no entry left to look at again
    finally:
        journal.close()


class FailingDeletes(SharingStorage):
    """Deletes fail while ``broken`` is set (a network outage mid-drop)."""

    broken = True

    def delete(self, path: str) -> None:
        if self.broken:
            raise StorageError(f"cannot delete {path}: connection reset")
        super().delete(path)


def test_a_drop_whose_delete_failed_is_finished_by_retention(tmp_path: Path) -> None:
    box = BlobBox(tmp_path / "root", shares_objects=True, max_object_size=64 * 1024)
    box.storage = FailingDeletes(box.root)
    try:
        rpc = box.rpc(state_dir=tmp_path / "agg-state")
        ref = _put(box)
        with pytest.raises(StorageError, match="connection reset"):
            rpc.drop_blob(ref, app=APP)
        entry = rpc.journal.blob_state(ref.name)
        assert entry is not None and entry.state is BlobState.FORGOTTEN
        with pytest.raises(StorageError):  # still failing (the scheduler logs it)
            rpc.sweep()
        box.storage.broken = False  # type: ignore[attr-defined]
        assert rpc.sweep() == 6  # manifest, 4 parts, the sharing marker
        assert box.storage.list(blob_folder(AGG, APP, ref.name)) == []
        assert rpc.journal.blobs() == []
    finally:
        box.close()


@pytest.mark.parametrize("moment", ["stored", "writing"])
def test_a_killed_senders_blob_is_deleted_by_its_next_process(
    tmp_path: Path, moment: str, caplog: pytest.LogCaptureFixture
) -> None:
    root, state = tmp_path / "root", tmp_path / "agg-state"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(root), str(state), moment, "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == moment, line
        name = line[1]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    box = BlobBox(root, shares_objects=True, max_object_size=1024)
    try:
        folder = blob_folder(AGG, APP, name)
        assert box.storage.list(folder)  # what the killed process left
        rpc = box.rpc(state_dir=state, clock_skew=0.0)
        entry = rpc.journal.blob_state(name)
        assert entry is not None and entry.state is (
            BlobState.STORED if moment == "stored" else BlobState.STORING
        )
        deadline = time.monotonic() + 30
        while entry.expires_at is not None and time.time() <= entry.expires_at:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING):
            assert rpc.sweep() >= 1
        assert box.storage.list(folder) == []
        assert not caplog.records
    finally:
        box.close()


def test_reader_processes_and_threads_read_one_blob_while_the_sender_churns(
    chunked: BlobBox,
) -> None:
    """3 datasite processes x 4 threads read a chunked blob from the files (no cache)
    while the sender stores and drops other blobs beside it: every read verifies."""
    ref = _put(chunked)
    args = [ref.name, ref.sha256, str(ref.size), "4", "10"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(READER), str(chunked.root), email, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        for email in (DS1, DS2, "ds3@example.org")
    ]
    rpc = chunked.rpcs[0]
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        other = _put(chunked, os.urandom(100_000))
        rpc.drop_blob(other, app=APP)
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["ok 40"] * 3
