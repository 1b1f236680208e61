"""``syftflwr.atomic.atomic_write``, the one whole-file writer: processes x threads
writing one file while another process reads it — every read is one writer's whole
content, no writer fails, no temp file is left; exclusive creation has exactly one
winner; the mode is exact from the start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from syftflwr.atomic import atomic_write

WRITERS = textwrap.dedent(
    """
    import sys, threading
    from syftflwr.atomic import atomic_write

    path, tag, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    failures = []

    def write(thread):
        payload = f"{tag}-{thread}:".encode() * 20_000  # ~200 KB: many write() calls
        for _ in range(rounds):
            try:
                atomic_write(path, payload)
            except Exception as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\\n".join(failures))
    sys.exit(1 if failures else 0)
    """
)


def _whole(data: bytes) -> bool:
    """One writer's payload: one ``tag-thread:`` unit repeated, nothing else."""
    unit = data[: data.index(b":") + 1] if b":" in data else b"?"
    return len(data) == len(unit) * 20_000 and data == unit * 20_000


def test_processes_and_threads_replace_one_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "shared.bin"
    atomic_write(target, b"first:" * 20_000)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITERS, str(target), f"p{i}", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]
    torn = reads = 0
    while any(w.poll() is None for w in writers):
        data = target.read_bytes()
        reads += 1
        torn += not _whole(data)
    outputs = [w.communicate()[0].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0], outputs
    assert reads and torn == 0
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]  # no temp file left


def test_exclusive_has_one_winner_with_an_exact_mode(tmp_path: Path) -> None:
    target = tmp_path / "key"
    old = os.umask(0o077)
    try:
        atomic_write(target, b"winner", mode=0o640, exclusive=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # exactly, whatever the umask
    try:
        atomic_write(target, b"loser", mode=0o600, exclusive=True)
    except FileExistsError:
        pass
    else:
        raise AssertionError("a second exclusive write won")
    assert target.read_bytes() == b"winner"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_parent_folders_are_created_and_text_is_utf8(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "token"
    atomic_write(target, "é")
    assert target.read_bytes() == "é".encode()
