"""The run summary's protection line tells what was done to the bytes, and nothing it
does not know: a simulation whose aggregator fails before it connects (its ServerApp
cannot be imported) must not claim "NOT encrypted" while encryption is on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def test_a_run_that_fails_before_sending_does_not_claim_plaintext(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    server = project / "syftflwr_quickstart" / "server_app.py"
    server.write_text('raise RuntimeError("this ServerApp cannot be imported")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-m", "syftflwr", "simulate", str(project), "--rounds", "1"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    text = " ".join((out.stdout + out.stderr).split())
    assert out.returncode != 0, text
    assert "cannot be imported" in text, text
    assert "NOT encrypted" not in text, text  # encryption is on (the default)
    assert "encryption not known" in text, text
