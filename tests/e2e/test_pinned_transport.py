"""A pinned transport is used, or the command fails with exit 2 and the fix — never
silently replaced. ``transport = "…"`` in the project or ``SYFTFLWR_TRANSPORT`` naming a
mistyped or unusable transport: ``simulate`` and ``run`` stop with an ``error:``/``fix:``
pair (exit 2), ``doctor`` fails its transport check naming the pin, and ``transports
--project`` reports the pin it cannot use (exit 2). (With nothing pinned, the fallback
to threads over ``memory`` stays and the summary names it: test_processes.py.) Real
``syftflwr`` processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), **extra)
    return env


def _syftflwr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syftflwr", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def _pinned_project(tmp_path: Path, transport: str) -> Path:
    project = tmp_path / "app"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pinned = f'[tool.syftflwr]\ntransport = "{transport}"\n'
    pyproject.write_text(text.replace("[tool.syftflwr]\n", pinned, 1))
    return project


def _refused(done: subprocess.CompletedProcess[str], name: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "error:" in done.stderr and "fix:" in done.stderr, output
    assert name in done.stderr, output
    assert "simulation (" not in output, output  # nothing trained


@pytest.mark.parametrize("pin", ["project", "env"])
def test_a_pinned_transport_that_cannot_be_used_stops_every_command(
    tmp_path: Path, pin: str
) -> None:
    name = "fsspec-locl"  # a typo of fsspec-local
    if pin == "project":
        project, env = _pinned_project(tmp_path, name), _env(tmp_path / "home")
    else:
        project, env = QUICKSTART, _env(tmp_path / "home", SYFTFLWR_TRANSPORT=name)
    _refused(_syftflwr("simulate", str(project), "--rounds", "1", env=env), name)
    _refused(_syftflwr("run", str(project), "--as", "ds1@openmined.org", env=env), name)
    doctor = _syftflwr("doctor", str(project), "--as", "ds1@openmined.org", env=env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr  # a failed check (docs/cli.md)
    assert f"names the transport '{name}'" in doctor.stdout and "fix:" in doctor.stdout
    listed = _syftflwr("transports", "--project", str(project), env=env)
    assert listed.returncode == 2, listed.stdout + listed.stderr
    assert f"pins the transport '{name}'" in listed.stderr, listed.stderr
    assert "fix:" in listed.stderr, listed.stderr
