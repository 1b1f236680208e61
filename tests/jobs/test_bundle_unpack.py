"""Unpacking an inspected bundle for running it (``syftflwr.jobs.bundle.unpack_fab``): the
tree Flower's own install lays out, from verified bytes only, never importing; whole or
absent under processes x threads unpacking at once and under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _bundle_apps import (
    PACKAGE,
    STORED_VERSIONS,
    markers_written,
    rezip,
    stored_fab,
    write_app,
)
from flwr.cli.install import install_from_fab
from syftflwr.jobs.bundle import UNPACKED_HASH, BundleRefused, inspect_bundle, unpack_fab
from syftflwr.jobs.fab import build_fab
from syftflwr.jobs.staging import STALE_AFTER


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() != UNPACKED_HASH
    }


def _flower_install(data: bytes, target: Path) -> Path:
    """flwr's own ``install_from_fab``: ``(fab, install dir, skip_prompt)`` positionally in
    1.26.1 (``flwr_dir``) and 1.42 (``install_dir``)."""
    installed: Path = install_from_fab(data, target, True)
    return installed


@pytest.mark.parametrize("version", STORED_VERSIONS)
def test_unpacked_tree_is_what_flowers_install_lays_out(tmp_path: Path, version: str) -> None:
    """A FAB of either flwr installs with this flwr, and unpack_fab writes the same files."""
    data = stored_fab(version)

    unpacked = unpack_fab(data, tmp_path / "unpacked")

    assert _tree(unpacked) == _tree(_flower_install(data, tmp_path / "flower"))
    assert (unpacked / UNPACKED_HASH).read_text() == inspect_bundle(data).fab_hash
    assert (unpacked / PACKAGE / "client_app.py").is_file()


def test_unpacking_never_imports_the_app(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    data = build_fab(write_app(tmp_path / "app", markers=markers)).data

    unpack_fab(data, tmp_path / "unpacked")

    assert markers_written(markers) == []
    assert PACKAGE not in sys.modules


def test_a_refused_bundle_writes_nothing(tmp_path: Path) -> None:
    hostile = rezip(stored_fab("1.42.0"), add={"../escape.py": b"x = 1\n"}, listed=True)

    with pytest.raises(BundleRefused, match=r"'\.\.'"):
        unpack_fab(hostile, tmp_path / "apps" / "unpacked")

    assert not (tmp_path / "apps").exists() and not (tmp_path / "escape.py").exists()


def test_a_folder_holding_the_bundle_is_reused_and_anything_else_is_refused(
    tmp_path: Path,
) -> None:
    first, second = (stored_fab(v) for v in STORED_VERSIONS)
    dest = unpack_fab(first, tmp_path / "unpacked")
    (dest / PACKAGE / "task.py").touch()
    stamp = (dest / PACKAGE / "task.py").stat().st_mtime_ns

    assert unpack_fab(first, dest) == dest
    assert (dest / PACKAGE / "task.py").stat().st_mtime_ns == stamp  # not rewritten
    with pytest.raises(FileExistsError, match="holds bundle"):
        unpack_fab(second, dest)
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="no unpacked bundle"):
        unpack_fab(first, tmp_path / "other")


WORKER = """
import sys, threading
from pathlib import Path
from syftflwr.jobs.bundle import unpack_fab

data, dest = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2])
start = threading.Barrier(4)
results = []

def work():
    start.wait()
    results.append(unpack_fab(data, dest) == dest)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(sum(results))
"""


def test_processes_and_threads_unpacking_one_bundle_at_once_get_one_whole_tree(
    tmp_path: Path,
) -> None:
    data = _many_files_fab(tmp_path)
    fab = tmp_path / "app.fab"
    fab.write_bytes(data)
    dest = tmp_path / "apps" / "unpacked"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(fab), str(dest)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.split() == ["4"], out

    assert _tree(dest) == _tree(_flower_install(data, tmp_path / "flower"))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["unpacked"]  # no staging left


KILLED = """
import sys
from pathlib import Path
from syftflwr.jobs.bundle import unpack_fab

data, root = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2])
print("ready", flush=True)
for n in range(10_000):
    unpack_fab(data, root / f"copy-{n}")
"""


def _staged_files(root: Path) -> int:
    return sum(1 for staging in root.glob(".copy-*.unpacking-*") for p in staging.rglob("*.py"))


MOMENTS = {
    "inspecting": lambda root: True,  # at once: the first bundle is still being read
    "writing": lambda root: _staged_files(root) >= 20,  # files half written beside copy-0
    "between copies": lambda root: (root / "copy-0").exists(),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_9_while_unpacking_leaves_whole_trees_or_none(tmp_path: Path, moment: str) -> None:
    data = _many_files_fab(tmp_path)
    fab = tmp_path / "app.fab"
    fab.write_bytes(data)
    root = tmp_path / "apps"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(fab), str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 120
    while not MOMENTS[moment](root):
        assert time.monotonic() < deadline and proc.poll() is None, f"never reached {moment}"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    expected = _tree(unpack_fab(data, tmp_path / "reference"))
    copies = sorted(root.glob("copy-*")) if root.exists() else []
    if moment == "writing":
        assert _staged_files(root) >= 20 and not (root / "copy-0").exists()
    for copy in copies:  # every folder that has its name is whole
        assert _tree(copy) == expected, copy
    for copy in [*copies, root / f"copy-{len(copies)}"]:  # and a retry completes it
        assert _tree(unpack_fab(data, copy)) == expected
    if moment == "writing":  # what the killed process left beside: removed once stale
        left = _leftovers(root)
        assert left, "the kill left no staging folder: the test did not kill mid-write"
        busy = root / ".copy-9.unpacking-busy"  # another process's, writing right now
        busy.mkdir()
        old = time.time() - STALE_AFTER - 60
        for path in left:
            os.utime(path, (old, old))
        unpack_fab(data, root / "one-more")
        assert _leftovers(root) == [busy]


def _leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if ".unpacking-" in p.name)


def _many_files_fab(tmp_path: Path) -> bytes:
    """A bundle of ~200 files, so unpacking one takes long enough to be caught midway."""
    extra = {f"{PACKAGE}/layers/layer_{i:03}.py": f"N = {i}\n".encode() * 50 for i in range(200)}
    return build_fab(write_app(tmp_path / "many", extra=extra)).data
