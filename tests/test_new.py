"""``syftflwr new NAME``: a Flower app from the template shipped in the wheel.

The generated app is checked against Flower itself (its own name rule where the installed
Flower has one, and ``flwr build``, which refuses what Flower would refuse); a whole
federation trains it in separate processes. The fresh-machine path (built wheels, a new
venv and HOME) is in tests/test_install_wheels.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from syftflwr.cli import cli
from syftflwr.config import load_project
from syftflwr.names import flower_name_problem, suggest_flower_name

BIN = Path(sys.executable).parent


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "XDG_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", HOME=str(home), SYFTFLWR_HOME=str(home / "syftflwr"))
    return env


def test_new_writes_an_app_whose_names_flower_accepts(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "my-app")])
    assert result.exit_code == 0, result.output
    assert f"next: syftflwr simulate {tmp_path / 'my-app'}" in result.output
    document = tomllib.loads((tmp_path / "my-app" / "pyproject.toml").read_text())
    assert document["project"]["name"] == "my-app"
    assert document["tool"]["flwr"]["app"]["publisher"]
    assert "federations" not in document["tool"]["flwr"]  # flwr 1.42 rewrites files with it
    assert document["tool"]["flwr"]["app"]["components"]["serverapp"] == "my_app.server_app:app"
    project = load_project(tmp_path / "my-app")
    assert project.configured and project.app_name == "my-app" and len(project.datasites) == 3
    if importlib.util.find_spec("flwr.supercore.utils") is not None:  # Flower's own rule
        from flwr.supercore.utils import is_valid_name

        assert is_valid_name(document["project"]["name"]) == (True, "")


def test_flwr_build_packages_the_new_app(tmp_path: Path) -> None:
    """Flower's builder validates [project].name, the directory name and the publisher."""
    assert CliRunner().invoke(cli, ["new", str(tmp_path / "fed-demo")]).exit_code == 0
    proc = subprocess.run(
        [str(BIN / "flwr"), "build", "--app", "fed-demo"],
        cwd=tmp_path, env=env_for(tmp_path / "home"), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in tmp_path.glob("*.fab")], proc.stdout


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("my_app", "my-app"),
        ("2fast", "app-2fast"),
        ("My App!", "My-App"),
        ("a" * 33, "a" * 32),
    ],
)
def test_new_refuses_a_name_flower_refuses_with_a_fix_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, suggestion: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["new", name])
    assert result.exit_code == 2, result.output
    assert f"{name!r} cannot be a Flower app's name" in result.output
    assert f"fix: syftflwr new {suggestion}\n" in result.output
    assert flower_name_problem(suggestion) is None and suggest_flower_name(name) == suggestion
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_new_never_writes_into_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "my-app").mkdir()
    (tmp_path / "my-app" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["new", str(tmp_path / "my-app")])
    assert result.exit_code == 2 and "already exists" in result.output
    assert [p.name for p in (tmp_path / "my-app").iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_new_app_trains_in_separate_processes(tmp_path: Path) -> None:
    pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin (nox installs it)")
    env = env_for(tmp_path / "home")
    for args in (["new", "my-app"], ["simulate", "my-app"]):
        proc = subprocess.run(
            [sys.executable, "-m", "syftflwr", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = " ".join(proc.stdout.split())
    assert "transport fsspec-local, 3 datasites, end-to-end encrypted" in summary
    assert "the simulated datasites approved this folder's app automatically" in summary
    assert float(summary.split("final accuracy")[1].split()[0]) >= 0.85
