"""LocalDirStorage: atomic and exclusive publish (threads and processes), safe reads
(symlinks, FIFOs, oversized objects), and the rest of the storage protocol."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from syftflwr.errors import MessageTooLargeError, StorageError, UnsafeNameError
from syftflwr.mailbox import LocalDirStorage, Storage
from syftflwr.mailbox.layout import TMP_FOLDER
from syftflwr.mailbox.localdir import STALE_TEMP_AGE


@pytest.fixture
def storage(tmp_path: Path) -> LocalDirStorage:
    return LocalDirStorage(tmp_path / "root")


def test_satisfies_the_protocol(storage: LocalDirStorage) -> None:
    assert isinstance(storage, Storage)


def test_put_get_list_delete(storage: LocalDirStorage) -> None:
    assert storage.get("a/b/x.bin") is None
    assert storage.list("a/b") == []
    storage.put("a/b/x.bin", [b"hello ", memoryview(b"world"), bytearray(b"!")])
    assert bytes(storage.get("a/b/x.bin") or b"") == b"hello world!"
    storage.put("a/b/x.bin", [b"replaced"])
    assert bytes(storage.get("a/b/x.bin") or b"") == b"replaced"
    assert storage.list("a/b") == ["x.bin"]
    assert storage.put_if_absent("a/b/y.bin", [b"first"]) is True
    assert storage.put_if_absent("a/b/y.bin", [b"second"]) is False
    assert bytes(storage.get("a/b/y.bin") or b"") == b"first"
    storage.delete("a/b/x.bin")
    storage.delete("a/b/x.bin")  # missing is fine
    storage.delete("nowhere/at/all")
    assert storage.list("a/b") == ["y.bin"]
    assert storage.local_path("a/b/y.bin") == storage.root / "a" / "b" / "y.bin"
    # temp files never linger after publishing
    assert list((storage.root / TMP_FOLDER).iterdir()) == []


def test_claim_is_won_once_and_holds_the_owner(storage: LocalDirStorage) -> None:
    assert storage.claim("f/x.claim", "runner-1") is True
    assert storage.claim("f/x.claim", "runner-2") is False
    assert bytes(storage.get("f/x.claim") or b"") == b"runner-1"


def test_empty_and_large_multi_part_objects(storage: LocalDirStorage) -> None:
    storage.put("f/empty", [])
    empty = storage.get("f/empty")
    assert empty is not None and bytes(empty) == b""
    chunks = [os.urandom(1 << 20) for _ in range(5)] + [b"", b"tail"]
    storage.put("f/big", chunks)
    assert bytes(storage.get("f/big") or b"") == b"".join(chunks)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/./b", "a\\b", "a\x00b", ""])
def test_unsafe_paths_are_refused(storage: LocalDirStorage, path: str) -> None:
    with pytest.raises(UnsafeNameError):
        storage.put(path, [b"x"])
    with pytest.raises(UnsafeNameError):
        storage.get(path)


def test_symlinked_object_is_not_followed(storage: LocalDirStorage, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    (storage.root / "f").mkdir()
    (storage.root / "f" / "x.request").symlink_to(secret)
    with pytest.raises(UnsafeNameError, match="symbolic link"):
        storage.get("f/x.request")


def test_symlinked_folder_is_not_followed(storage: LocalDirStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.request").write_bytes(b"outside")
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="symbolic link"):
        storage.get("link/x.request")
    with pytest.raises(UnsafeNameError):
        storage.list("link")
    with pytest.raises(UnsafeNameError):
        storage.put("link/y.request", [b"must not land outside"])
    assert [p.name for p in outside.iterdir()] == ["x.request"]


def test_fifo_is_refused_without_blocking(storage: LocalDirStorage) -> None:
    (storage.root / "f").mkdir()
    os.mkfifo(storage.root / "f" / "x.request")
    with pytest.raises(UnsafeNameError, match="not a regular file"):
        storage.get("f/x.request")


def test_max_size_is_checked_before_reading(storage: LocalDirStorage) -> None:
    storage.put("f/x", [b"x" * 1000])
    assert storage.get("f/x", max_size=1000) is not None
    with pytest.raises(MessageTooLargeError, match="1,000 bytes"):
        storage.get("f/x", max_size=999)


def test_backend_errors_become_storage_errors(storage: LocalDirStorage) -> None:
    (storage.root / "file").write_bytes(b"not a folder")
    with pytest.raises(StorageError, match="file stands where a mailbox folder belongs"):
        storage.put("file/x", [b"x"])
    assert storage.get("file/x") is None
    assert storage.list("file") == []


def test_stale_temp_files_are_removed_on_open(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path / "root")
    tmp = storage.root / TMP_FOLDER
    old, fresh = tmp / "1-old.tmp", tmp / "1-fresh.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    past = time.time() - STALE_TEMP_AGE - 10
    os.utime(old, (past, past))
    LocalDirStorage(tmp_path / "root")
    assert not old.exists()
    assert fresh.exists()


def test_a_concurrent_reader_never_sees_a_partial_object(storage: LocalDirStorage) -> None:
    """A writer replaces and creates 20 MB objects while a reader polls them: every
    read is either nothing or a complete object (one fill byte, full length)."""
    size = 20 * 1024 * 1024
    rounds = 12
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for path in ("f/replaced", *(f"f/new-{i}" for i in range(rounds))):
                data = storage.get(path)
                if data is None:
                    continue
                reads += 1
                view = memoryview(data)
                if view.nbytes != size or view[0] != view[-1] or view[size // 2] != view[0]:
                    problems.append(f"{path}: partial or mixed object ({view.nbytes} bytes)")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(rounds):
            fill = bytes([i + 1]) * size
            storage.put("f/replaced", [fill[: size // 3], fill[size // 3 :]])
            storage.put_if_absent(f"f/new-{i}", [fill])
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert reads > 0


def _race(root: str, rounds: int, barrier: multiprocessing.synchronize.Barrier, me: str) -> None:
    storage = LocalDirStorage(root)
    for i in range(rounds):
        barrier.wait()
        if storage.put_if_absent(f"race/{i}", [me.encode()]):
            storage.put(f"wins/{me}-{i}", [b""])
        if storage.claim(f"claims/{i}.claim", me):
            storage.put(f"claim-wins/{me}-{i}", [b""])


def test_put_if_absent_is_exclusive_across_processes(tmp_path: Path) -> None:
    """Four processes race for the same names, round after round: exactly one wins each
    name, and the stored object is the winner's."""
    root = str(tmp_path / "root")
    LocalDirStorage(root)
    rounds, workers = 150, 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [
        ctx.Process(target=_race, args=(root, rounds, barrier, f"p{n}")) for n in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    storage = LocalDirStorage(root)
    for folder in ("wins", "claim-wins"):
        winners: dict[str, list[str]] = {}
        for name in storage.list(folder):
            who, _, i = name.rpartition("-")
            winners.setdefault(i, []).append(who)
        assert sorted(winners, key=int) == [str(i) for i in range(rounds)]
        assert all(len(w) == 1 for w in winners.values()), winners
    for i in range(rounds):
        (winner,) = [n.rpartition("-")[0] for n in storage.list("wins") if n.endswith(f"-{i}")]
        assert bytes(storage.get(f"race/{i}") or b"") == winner.encode()
