"""Core encryption end to end, as users run it: `syftflwr simulate` with every participant
in its own OS process over the local-directory transport (real files, real inotify).

A scanner thread reads every file of the participants' home (mailboxes, journals, keys)
every few milliseconds while the federation trains, looking for what a plaintext Flower
message always contains. The control run (encryption = false) proves the scanner finds
it; the default run must leave none of it anywhere, at any moment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
MARKERS = (b"\x93NUMPY", b"num-examples", b"train_loss")
"""Serialized numpy arrays (instructions and replies) and the quickstart's metric names."""

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


class Scanner(threading.Thread):
    """Reads every regular file under ``root`` over and over until stopped."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.hits: dict[str, set[bytes]] = {}
        self.files_seen: set[str] = set()
        self.passes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.scan()
            self._stop_event.wait(0.01)
        self.scan()  # and what is left at the end

    def scan(self) -> None:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath, name)
                try:
                    if path.is_symlink() or not path.is_file():
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue  # renamed or removed meanwhile
                self.files_seen.add(str(path.relative_to(self.root)))
                found = {m for m in MARKERS if m in data}
                if found:
                    self.hits.setdefault(str(path.relative_to(self.root)), set()).update(found)
        self.passes += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def simulate(workspace: Path, **env_extra: str) -> tuple[subprocess.CompletedProcess[str], Scanner]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    # SYFTFLWR_HOME: where simulate keeps its result (docs/results.md), not the user's
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(workspace / "user"), **env_extra)
    home = workspace / "home"  # mailboxes and private state (logs and results sit beside)
    home.mkdir(parents=True)
    scanner = Scanner(home)
    scanner.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "syftflwr", "simulate", str(QUICKSTART), "--rounds", "1",
             "--datasites", "2", "--workspace", str(workspace)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        scanner.stop()
    return done, scanner


def test_plaintext_never_reaches_storage_or_state_with_the_default_encryption(
    tmp_path: Path,
) -> None:
    control, plain = simulate(tmp_path / "plain", SYFTFLWR_ENCRYPTION="0")
    assert control.returncode == 0, control.stdout + control.stderr
    in_mailbox = [p for p in plain.hits if "syft_outbox_inbox_" in p]
    assert in_mailbox, f"the scanner found no plaintext even unencrypted: {plain.hits}"
    assert "NOT encrypted (encryption = false)" in " ".join(control.stdout.split())

    run, sealed = simulate(tmp_path / "sealed")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 datasites, end-to-end encrypted" in " ".join(run.stdout.split())
    assert sealed.passes > 10 and any("syft_outbox_inbox_" in f for f in sealed.files_seen)
    # The aggregator's own results (per-round checkpoints, the replies its run journal
    # keeps for --resume) are plaintext by purpose, in its private state directory.
    agg_state = tmp_path / "sealed" / "home" / "state" / "quickstart" / "aggregator@openmined.org"
    private = ("checkpoints/", "runs/")
    prefix = str(agg_state.relative_to(tmp_path / "sealed" / "home")) + "/"
    leaks = {
        p: m for p, m in sealed.hits.items()
        if not (p.startswith(prefix) and p.removeprefix(prefix).startswith(private))
    }  # fmt: skip
    assert leaks == {}, f"plaintext on disk with encryption on: {leaks}"
    assert agg_state.stat().st_mode & 0o077 == 0
    keys = [f for f in sealed.files_seen if f.endswith("keys/x25519.key")]
    assert len(keys) == 3, keys  # the aggregator and both datasites made their own
    for key in keys:
        assert (tmp_path / "sealed" / "home" / key).stat().st_mode & 0o077 == 0


def test_shared_model_blobs_are_written_and_hold_no_plaintext(tmp_path: Path) -> None:
    """blob_threshold = 0: every model of a push goes as one shared blob (issue 20)."""
    blob_folders = "syftflwr_blobs_"
    control, plain = simulate(tmp_path / "plain", SYFTFLWR_ENCRYPTION="0",
                              SYFTFLWR_BLOB_THRESHOLD="0")  # fmt: skip
    assert control.returncode == 0, control.stdout + control.stderr
    assert "model sent once per phase (shared blob)" in " ".join(control.stdout.split())
    in_blobs = [p for p, m in plain.hits.items() if blob_folders in p and b"\x93NUMPY" in m]
    assert in_blobs, f"the scanner found no plaintext model in any blob: {plain.hits}"

    run, sealed = simulate(tmp_path / "sealed", SYFTFLWR_BLOB_THRESHOLD="0")
    assert run.returncode == 0, run.stdout + run.stderr
    out = " ".join(run.stdout.split())
    assert "end-to-end encrypted, model sent once per phase (shared blob)" in out
    blobs = {f for f in sealed.files_seen if blob_folders in f and f.endswith(".blob")}
    assert blobs, f"no blob was written: {sorted(sealed.files_seen)}"
    agg_state = "state/quickstart/aggregator@openmined.org/"
    leaks = {p: m for p, m in sealed.hits.items() if not p.startswith(agg_state)}
    assert leaks == {}, f"plaintext on disk with encryption on: {leaks}"
