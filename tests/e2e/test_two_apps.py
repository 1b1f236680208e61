"""Two apps with the same participants, mailbox root and homes, as users run them
(`syftflwr run` in separate processes over the local-directory transport, encryption on).

Each app has its own key pairs; before, both published them into one slot per
sender->reader pair, so whichever app started last overwrote the other's keys and the
other app's aggregator refused every send ("the key of ... changed"). Now each app
publishes into its own slot (``{outbox}/{app}/syftflwr.pubkey.json``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from _e2e import AGG, DATASITES, QUICKSTART, Procs, env_for, syftflwr

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def _app(tmp_path: Path, name: str) -> Path:
    project = tmp_path / name
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('app_name = "quickstart"', f'app_name = "{name}"'))
    return project


def _serve(procs: Procs, project: Path, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    return [procs.start(syftflwr("run", str(project), "--as", e), env) for e in DATASITES]


def _train(project: Path, env: dict[str, str]) -> str:
    agg = subprocess.run(
        syftflwr("run", str(project), "--as", AGG, "--rounds", "1"),
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert agg.returncode == 0, f"{project.name}'s aggregator failed:\n{agg.stdout}{agg.stderr}"
    return agg.stdout + agg.stderr


def _stopped(runners: list[subprocess.Popen[str]]) -> str:
    out = ""
    for runner in runners:
        output, _ = runner.communicate(timeout=60)
        assert runner.returncode == 0, output
        out += output
    return out


def test_an_app_trains_after_another_app_ran_with_the_same_participants(
    home: Path, procs: Procs, tmp_path: Path
) -> None:
    env = env_for(home)
    app_a, app_b = _app(tmp_path, "appa"), _app(tmp_path, "appb")
    runners = _serve(procs, app_a, env)
    _train(app_a, env)  # app A's aggregator now knows app A's keys
    _stopped(runners)

    runners_a = _serve(procs, app_a, env)  # app A's datasites serve while app B runs
    runners_b = _serve(procs, app_b, env)
    _train(app_b, env)
    _stopped(runners_b)

    output = _train(app_a, env)
    assert "changed" not in output
    _stopped(runners_a)
    mailbox = next(home.rglob(f"syft_outbox_inbox_{DATASITES[0]}_to_{AGG}"))
    assert sorted(p.relative_to(mailbox).as_posix() for p in mailbox.rglob("*.pubkey.json")) == [
        "appa/syftflwr.pubkey.json",
        "appb/syftflwr.pubkey.json",
    ]
