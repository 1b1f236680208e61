"""`syftflwr doctor`: validates the config, then proves the transport carries a message
(a real request to oneself through the storage and back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"


def doctor(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "syftflwr", "doctor", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_round_trip_through_the_local_transport(tmp_path: Path) -> None:
    pytest.importorskip("syftflwr_fsspec_local")
    out = doctor(tmp_path, str(QUICKSTART), "--as", "ds1@openmined.org", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    statuses = {name: c["status"] for name, c in checks.items()}
    assert statuses == {
        "project config": "ok", "participant settings": "ok", "transport": "ok",
        "identity": "ok", "state directory": "ok",
        "encryption": "warn",  # nobody else has published a key yet
        "allowlist": "ok", "journal": "ok", "round trip": "ok",
    }  # fmt: skip
    assert "fsspec-local" in checks["transport"]["detail"]
    assert "1 KiB request and response through fsspec-local" in checks["round trip"]["detail"]


def test_a_stranger_fails_at_the_transport_step_with_the_fix(tmp_path: Path) -> None:
    out = doctor(tmp_path, str(QUICKSTART), "--as", "eve@example.org")
    assert out.returncode == 1
    assert "✓ project config" in out.stdout
    assert "✗ transport" in out.stdout and "is neither the aggregator" in out.stdout
    assert "round trip" not in out.stdout  # dependent checks are not run


def test_a_project_without_syftflwr_config_names_bootstrap(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "plain"\n')
    out = doctor(tmp_path / "home", str(tmp_path))
    assert out.returncode == 1
    assert "has no [tool.syftflwr] table" in out.stdout
    assert "syftflwr bootstrap" in out.stdout
