"""A large upload interrupted by a kill -9 continues from its resumable session (kept in
the participant's state dir) when the process restarts: only the remaining bytes are sent
again, counted by the loopback Drive server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _gd_tokens import write_token
from _gd_upload_child import CHUNK, content
from drive_server import DriveState

ALICE = "alice@example.org"
CHILD = Path(__file__).with_name("_gd_upload_child.py")
SIZE = 16 * CHUNK + 12_345  # 17 resumable requests, the last one short
STALL = 6 * CHUNK  # the server holds the 7th chunk: the kill comes mid-upload
PATH = "syft_outbox_inbox_alice@example.org_to_bob@example.org/app/rpc/x/" + "a" * 32 + ".request"

pytestmark = pytest.mark.slow


def _run(url: str, token: Path, state_dir: str, seed: int = 20) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), url, str(token), state_dir, str(SIZE), PATH, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=CHILD.parent,
    )


def _killed_mid_upload(state: DriveState, url: str, token: Path, state_dir: str) -> None:
    state.stall_uploads(STALL)
    first = _run(url, token, state_dir)
    try:
        assert state.stalled.wait(60), first.communicate(timeout=5)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    state.release_uploads()
    assert first.returncode == -signal.SIGKILL
    assert state.media_bytes[ALICE] == STALL and not state.find(PATH.rsplit("/", 1)[1])


@pytest.mark.parametrize("keeps_state", [True, False], ids=["state-dir", "no-state-dir"])
def test_killed_upload_resumes_with_only_the_remaining_bytes(
    drive: tuple[DriveState, str], tmp_path: Path, keeps_state: bool
) -> None:
    state, url = drive
    token = write_token(tmp_path / "alice.json", state.add_user(ALICE))
    state_dir = str(tmp_path / "state") if keeps_state else ""
    _killed_mid_upload(state, url, token, state_dir)
    second = _run(url, token, state_dir)
    out, err = second.communicate(timeout=120)
    assert (second.returncode, out.strip()) == (0, "stored"), err
    resent = state.media_bytes[ALICE] - STALL
    assert resent == (SIZE - STALL if keeps_state else SIZE)
    [stored] = state.find(PATH.rsplit("/", 1)[1])
    assert stored.content == content(SIZE)
    if keeps_state:  # the record of the finished session is gone
        assert not [p for p in (tmp_path / "state").rglob("*") if p.is_file()]


def test_other_bytes_to_the_same_place_start_over(
    drive: tuple[DriveState, str], tmp_path: Path
) -> None:
    """A restart that uploads other content (a message sealed again) does not continue
    the old session: its bytes would be mixed with the new ones."""
    state, url = drive
    token = write_token(tmp_path / "alice.json", state.add_user(ALICE))
    state_dir = str(tmp_path / "state")
    _killed_mid_upload(state, url, token, state_dir)
    second = _run(url, token, state_dir, seed=21)
    assert second.communicate(timeout=120)[0].strip() == "stored"
    assert state.media_bytes[ALICE] - STALL == SIZE
    [stored] = state.find(PATH.rsplit("/", 1)[1])
    assert stored.content == content(SIZE, 21)
