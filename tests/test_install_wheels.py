"""A user's install, exactly: build the wheels of core and a plugin into a folder, create a
fresh virtual environment, and ``pip install "syftflwr[fsspec-local]"`` from it.

This catches what editable development installs hide: files missing from a wheel, entry
points that only exist in the source tree, extras that do not resolve.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def build_wheel_command(source: Path, out: Path) -> list[str | Path]:
    """uv when present (nox venvs made by uv have no pip), else pip."""
    uv = shutil.which("uv")
    if uv:
        return [uv, "build", "--wheel", "-q", "-o", out, source]
    return [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source]


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    for source in (ROOT, ROOT / "plugins" / "fsspec-local"):
        run(*build_wheel_command(source, wheels))
    names = sorted(p.name for p in wheels.glob("*.whl"))
    assert any(n.startswith("syftflwr-0") for n in names), names
    assert any(n.startswith("syftflwr_fsspec_local-") for n in names), names
    target = tmp_path_factory.mktemp("venv")
    venv.create(target, with_pip=True)
    run(target / "bin" / "python", "-m", "pip", "install", "-q", "--find-links", wheels,
        "syftflwr[fsspec-local]")  # fmt: skip
    return target


def user_environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home))
    return env


def test_cli_lists_the_plugin_installed_through_the_extra(user_env: Path, tmp_path: Path) -> None:
    out = run(user_env / "bin" / "syftflwr", "transports", "--json", env=user_environ(tmp_path))
    listed = {t["name"]: t for t in json.loads(out)}
    assert listed["memory"]["distribution"] == "syftflwr"
    assert listed["fsspec-local"]["distribution"] == "syftflwr-fsspec-local"
    assert listed["fsspec-local"]["status"] == "ok"
    version = run(user_env / "bin" / "syftflwr", "--version", env=user_environ(tmp_path))
    assert "syftflwr 0.1.0" in version and "syftflwr-fsspec-local" in version


def test_new_then_simulate_on_a_fresh_machine(user_env: Path, tmp_path: Path) -> None:
    """The README's first steps with nothing but the installed wheels: a new HOME, no
    network for `new` (its template ships in the wheel), then a whole federation."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "SYFTFLWR_", "XDG_"))
    }
    env.update(FLWR_TELEMETRY_ENABLED="0", HOME=str(home))
    offline = {**env, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    bin_dir = user_env / "bin"
    new = subprocess.run(
        [bin_dir / "syftflwr", "new", "my-app"], cwd=tmp_path, env=offline,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert new.returncode == 0, new.stdout + new.stderr
    sim = subprocess.run(
        [bin_dir / "syftflwr", "simulate", "my-app"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stdout + sim.stderr
    summary = " ".join(sim.stdout.split())
    assert "my-app: simulation (separate processes)" in summary
    assert float(summary.split("final accuracy")[1].split()[0]) >= 0.85


def test_installed_package_ships_its_test_kit_and_typing(user_env: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.resources as r, importlib.metadata as m;"
        "f = r.files('syftflwr');"
        "print((f / 'py.typed').is_file(), (f / 'testing' / 'pytest_plugin.py').is_file(),"
        " [e.value for e in m.entry_points(group='pytest11') if e.name == 'syftflwr'])"
    )
    out = run(user_env / "bin" / "python", "-c", code, env=user_environ(tmp_path))
    assert out.strip() == "True True ['syftflwr.testing.pytest_plugin']"
