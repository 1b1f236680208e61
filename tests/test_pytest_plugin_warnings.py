"""syftflwr's pytest plugin ignores typer's deprecations (typer comes with flwr's CLI) in
every session, so a plugin author's suite — which imports Flower through the conformance
suite — shows only its own warnings, with no filter of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = """
def test_imports_flowers_cli():
    import flwr.cli.app  # noqa: F401  (typer builds flwr's commands)
"""


def _session(tmp_path: Path, *extra: str) -> str:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # no filterwarnings of its own
    (tmp_path / "test_suite.py").write_text(SUITE)
    # as an author runs it: with PYTHONWARNINGS set (this suite's conftest sets it) pytest
    # leaves DeprecationWarnings at Python's default, hidden
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(tmp_path)],
        cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_plugin_authors_session_shows_no_typer_deprecations(tmp_path: Path) -> None:
    without = _session(tmp_path, "-p", "no:syftflwr")
    if "typer" not in without:
        pytest.skip("this typer and flwr raise no deprecation: nothing to ignore")
    assert "DeprecationWarning" in without  # the control: what the filter removes
    out = _session(tmp_path)
    assert "warning" not in out, out
    assert "1 passed" in out
