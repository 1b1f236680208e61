"""The aggregator killed with SIGKILL while round 2's replies are pending, then restarted
with ``syftflwr run --resume``: the run completes every round from the stopped run's
journal, re-attaches to the replies in flight, and no datasite trains a (round, node)
twice. Real ``syftflwr run`` processes over the local-directory transport (real files);
nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from syftflwr.flower.run_journal import MIGRATIONS

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

APP = Path(__file__).resolve().parent / "resumeapp"
AGG = "aggregator@openmined.org"
DS1, DS2 = "ds1@openmined.org", "ds2@openmined.org"
OFFSETS = {DS1: 1.0, DS2: 3.0}
ROUNDS = 3


def _env(home: Path, calls: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "RESUMEAPP_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), RESUMEAPP_CALLS=str(calls))
    env.update(extra)
    return env


def _run(*args: str) -> list[str]:
    return [sys.executable, "-m", "syftflwr", "run", str(APP), *args]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _calls(calls: Path) -> list[tuple[str, int, str, str]]:
    if not calls.exists():
        return []
    rows = [line.split() for line in calls.read_text().splitlines()]
    return [(kind, int(r), name, event) for kind, r, name, event, _ in rows]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_aggregator_killed_mid_round_resumes_without_retraining(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    home, calls, out = tmp_path / "home", tmp_path / "calls.log", tmp_path / "final.npy"
    logs = {name: tmp_path / f"{name}.log" for name in ("ds1", "ds2", "agg", "resumed")}
    for email, offset in OFFSETS.items():
        name = email.partition("@")[0]
        env = _env(home, calls, RESUMEAPP_NAME=name, RESUMEAPP_OFFSET=str(offset),
                   RESUMEAPP_SLOW_ROUND="2", RESUMEAPP_SLOW="3")  # fmt: skip
        started.append(_spawn(_run("--as", email), env, logs[name]))
    agg_args = _run("--as", AGG, "--run-config", f"out={json.dumps(str(out))}")
    agg = _spawn(agg_args, _env(home, calls), logs["agg"])
    started.append(agg)

    # Round 2's trainings have started (replies pending): kill the aggregator.
    deadline = time.monotonic() + 60
    while sum(1 for c in _calls(calls) if c[:2] == ("train", 2) and c[3] == "started") < 2:
        assert time.monotonic() < deadline, "round 2 never started:\n" + logs["agg"].read_text()
        assert agg.poll() is None, logs["agg"].read_text()
        time.sleep(0.05)
    agg.send_signal(signal.SIGKILL)
    agg.wait()
    state = home / "state" / "resumeapp" / AGG
    assert (state / "checkpoints").is_dir(), sorted(p.name for p in state.iterdir())
    (run_dir,) = (state / "checkpoints").iterdir()
    assert (run_dir / "round-1.npz").exists()  # round 1 was complete
    assert not (run_dir / "round-2.npz").exists()

    resumed = _spawn([*agg_args, "--resume"], _env(home, calls), logs["resumed"])
    started.append(resumed)
    assert resumed.wait(timeout=90) == 0, logs["resumed"].read_text()
    output = logs["resumed"].read_text()
    # Round 1 (4 instructions) answered from the journal, round 2's 2 trainings re-attached.
    assert "4 instructions answered from the journal, 2 re-attached" in output, output
    assert "diverged" not in output and "ended before" not in output, output

    # Every (round, datasite) trained and evaluated exactly once, across both processes.
    finished = Counter((kind, r, name) for kind, r, name, event in _calls(calls)
                       if event == "finished")  # fmt: skip
    expected = {(kind, r, name) for kind in ("train", "evaluate") for r in range(1, ROUNDS + 1)
                for name in ("ds1", "ds2")}  # fmt: skip
    assert set(finished) == expected
    assert set(finished.values()) == {1}, finished

    # The final arrays are those of an uninterrupted run: each round adds the mean offset.
    step = sum(OFFSETS.values()) / len(OFFSETS)
    np.testing.assert_array_equal(np.load(out), np.full(4, ROUNDS * step))
    # One checkpoint per round, readable with np.load: round r holds r aggregated steps.
    for r in range(1, ROUNDS + 1):
        with np.load(run_dir / f"round-{r}.npz") as npz:
            (key,) = npz.files
            np.testing.assert_array_equal(npz[key], np.full(4, r * step))
        manifest = json.loads((run_dir / f"round-{r}.json").read_text())
        assert manifest["round"] == r and manifest["run_id"] == int(run_dir.name)

    # The journal says finished, and the finished run's stored replies are gone.
    with sqlite3.connect(state / "runs" / "runs.sqlite") as db:
        assert db.execute("SELECT status, resumes FROM runs").fetchall() == [("finished", 1)]
    assert not (state / "runs" / run_dir.name / "replies").exists()
    assert (state / "runs" / run_dir.name / "result.json").is_file()  # the result stays

    for proc in started[:2]:  # the resumed aggregator's stop ends the datasites
        assert proc.wait(timeout=30) == 0


def test_resume_with_nothing_to_resume_says_so(tmp_path: Path) -> None:
    home, calls = tmp_path / "home", tmp_path / "calls.log"
    args, env = _run("--as", AGG, "--resume"), _env(home, calls)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2  # a ConfigError: something to fix
    assert "there is no run to resume" in done.stderr, done.stderr
    assert "without --resume" in done.stderr


def test_resume_refuses_a_run_journaled_without_reply_order(tmp_path: Path) -> None:
    """A run journal written by 3566330 (schema 1) with replies already returned is
    migrated, but that run is not replayed: its replies' order is unknown, and another
    order would make every datasite train again. ``--resume`` says so, and what to do."""
    home, calls = tmp_path / "home", tmp_path / "calls.log"
    runs = home / "state" / "resumeapp" / AGG / "runs"
    runs.mkdir(parents=True, mode=0o700)
    for folder in (runs, *runs.parents[:3]):
        folder.chmod(0o700)
    gone = subprocess.Popen(["true"])  # its pid is surely not running any more
    gone.wait()
    with sqlite3.connect(runs / "runs.sqlite") as db:
        for statement in MIGRATIONS[1]:  # 3566330's schema, verbatim
            db.execute(statement)
        db.execute("INSERT INTO runs (run_id, seed, config_hash, status, pid, started_at, "
                   "updated_at, last_round) VALUES (11, 1, 'h', 'running', ?, 0, 0, 1)",
                   (gone.pid,))  # fmt: skip
        db.execute("INSERT INTO pushes VALUES (11, 'm1', 1, 'f', ?, 'train', 1, 0, 'returned')",
                   (DS1,))  # fmt: skip
        db.execute("PRAGMA user_version = 1")
    args, env = _run("--as", AGG, "--resume"), _env(home, calls)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "journaled by an older syftflwr that did not record the order its 1 replies" in (
        done.stderr
    ), done.stderr
    assert "fix: finish it with the syftflwr version that started it, or start a new run" in (
        " ".join(done.stderr.split())
    ), done.stderr
