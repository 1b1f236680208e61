"""The pytest session guard (``syftflwr_isolate_home``, syftflwr's pytest plugin), run on
a small suite of its own: a test writing into HOME fails the session and is named; a
clean session passes and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE = """
import os
from pathlib import Path

def test_home_is_a_session_folder():
    assert os.environ["HOME"] != {real_home!r}
    assert not any(k.startswith("SYFTFLWR_") for k in os.environ)

def test_maybe_writes():
    if os.environ.get("WRITE_HOME") and os.environ["HOME"] != {real_home!r}:  # never the real
        (Path.home() / ".local" / "share" / "syftflwr").mkdir(parents=True)
"""


def _session(tmp_path: Path, *, write: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\nsyftflwr_isolate_home = true\n")
    (tmp_path / "test_suite.py").write_text(SUITE.format(real_home=os.environ["HOME"]))
    env = {**os.environ, "SYFTFLWR_HOME": str(tmp_path / "leaked"), "WRITE_HOME": "1" * write}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_test_writing_into_home_fails_the_session(tmp_path: Path) -> None:
    done = _session(tmp_path, write=True)
    assert done.returncode == 1, done.stdout
    assert "2 passed" in done.stdout  # the tests pass; the session fails
    assert "tests wrote into the user's folders" in done.stdout
    assert ".local/share/syftflwr" in done.stdout and "fix:" in done.stdout


def test_a_clean_session_passes(tmp_path: Path) -> None:
    done = _session(tmp_path, write=False)
    assert done.returncode == 0, done.stdout
