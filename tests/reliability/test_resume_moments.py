"""``kill -9`` of the aggregator at five moments of a run, then ``syftflwr run --resume``:
the resumed run replays what the stopped run journaled — every journaled instruction is
sent again with the fingerprint the journal holds (none "diverged"), its replies reach
the ServerApp in the order they first did — and no datasite handles a message id twice.

Three datasites answer 2, 3 and 4 s after they are asked, so replies arrive in another
order than the (randomly sampled) order FedAvg sends in, and FedAvg's float sums depend
on the order: a replay in push order makes the next instruction differ (what 3566330
did, in 2 of 3 runs per moment). Real ``syftflwr run`` processes over the local-directory
transport (real files, inotify), encryption on; nothing is mocked. The moments run side by
side (each in a folder of its own) to keep the test's wall time near one run's.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults.syftflwr_faults import Fault, fault_env

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

APP = Path(__file__).resolve().parent / "resumeapp"
AGG = "aggregator@openmined.org"
DELAYS = {"ds1@openmined.org": 2.0, "ds2@openmined.org": 3.0, "ds3@openmined.org": 4.0}
EXAMPLES = {"ds1@openmined.org": 3, "ds2@openmined.org": 5, "ds3@openmined.org": 7}
ROUNDS = 2
MOMENTS = (
    "train in flight",
    "between rounds",
    "evaluate in flight",
    "50 ms after the last train replies",
    "right after the stop",
)


def _progress(path: Path) -> list[tuple[str, str, int | None]]:
    """(event, message type, round) of each complete line of the aggregator's progress."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        info = data.get("info") or data.get("data", {}).get("info") or {}
        events.append((data["event"], info.get("message_type", ""), info.get("round")))
    return events


def _replies(path: Path, kind: str, server_round: int) -> int:
    return sum(1 for e in _progress(path) if e == ("reply", kind, server_round))


@dataclass
class Scenario:
    """One kill-and-resume of the aggregator at ``moment``, in ``root``."""

    moment: str
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def calls(self) -> Path:
        return self.root / "calls.log"

    @property
    def progress(self) -> Path:
        return self.root / "progress.jsonl"

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SYFTFLWR_", "RESUMEAPP_"))}  # fmt: skip
        env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(self.root / "home"),
                   RESUMEAPP_CALLS=str(self.calls), RESUMEAPP_NOISE="1")  # fmt: skip
        if self.moment == "between rounds":
            env["RESUMEAPP_PAUSE"] = "1.0"
        env.update(extra)
        return env

    def spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def command(self, email: str, *extra: str) -> list[str]:
        roster = self.root / "roster.json"
        return [sys.executable, "-m", "syftflwr", "run", str(APP), "--as", email,
                "--roster", str(roster), *extra]  # fmt: skip

    def aggregator_args(self) -> list[str]:
        out = json.dumps(str(self.root / "final.npy"))
        return self.command(AGG, "--rounds", str(ROUNDS), "--run-config", "size=64",
                            "--run-config", f"out={out}", "--progress-file",
                            str(self.progress))  # fmt: skip

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")))  # fmt: skip

    def journaled(self) -> list[tuple[str, str]]:
        state = self.root / "home" / "state" / "resumeapp" / AGG / "runs" / "runs.sqlite"
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
            return db.execute("SELECT message_id, state FROM pushes").fetchall()


def _reached(scenario: Scenario) -> Callable[[], bool]:
    """When the aggregator is at ``scenario.moment``."""
    moment, progress = scenario.moment, scenario.progress
    if moment == "train in flight":  # ds1 answered round 2's training, ds2 and ds3 not yet
        return lambda: _replies(progress, "train", 2) >= 1
    if moment == "between rounds":  # round 1 over, the ServerApp evaluates centrally
        return lambda: scenario.calls.exists() and "server 1 between" in scenario.calls.read_text()
    if moment == "evaluate in flight":
        return lambda: _replies(progress, "evaluate", 2) >= 1
    if moment == "50 ms after the last train replies":
        return lambda: _replies(progress, "train", 2) >= 3
    assert moment == "right after the stop"
    return (scenario.root / "stopped.mark").exists


def _stop_hang_env(scenario: Scenario) -> dict[str, str]:
    """The aggregator hangs once its stop messages are out (test-only fault seam)."""
    fault = Fault("syftflwr.flower.grid:TransportGrid.stop_datasites", "hang", when="after",
                  mark=str(scenario.root / "stopped.mark"))  # fmt: skip
    return fault_env(fault, base=scenario.env())


def _run_scenario(scenario: Scenario) -> None:
    scenario.root.mkdir(parents=True)
    roster = {"app_name": "resumeapp", "aggregator": AGG, "datasites": list(DELAYS)}
    (scenario.root / "roster.json").write_text(json.dumps(roster))
    datasites = []
    for email, delay in DELAYS.items():
        name = email.partition("@")[0]
        env = scenario.env(RESUMEAPP_NAME=name, RESUMEAPP_DELAY=str(delay),
                           RESUMEAPP_EXAMPLES=str(EXAMPLES[email]))  # fmt: skip
        datasites.append(scenario.spawn(scenario.command(email), env, name))
    stopping = scenario.moment == "right after the stop"
    env = _stop_hang_env(scenario) if stopping else scenario.env()
    agg = scenario.spawn(scenario.aggregator_args(), env, "agg")
    reached = _reached(scenario)
    deadline = time.monotonic() + 180
    while not reached():
        assert agg.poll() is None, (
            f"{scenario.moment}: the aggregator ended early\n{scenario.logs()}"
        )
        assert time.monotonic() < deadline, f"{scenario.moment}: never reached\n{scenario.logs()}"
        time.sleep(0.01)
    if scenario.moment.startswith("50 ms"):
        time.sleep(0.05)
    agg.send_signal(signal.SIGKILL)
    agg.wait()
    journaled = scenario.journaled()

    resumed = scenario.spawn([*scenario.aggregator_args(), "--resume"], scenario.env(), "resumed")
    code = resumed.wait(timeout=180)
    assert code == 0, f"the resumed aggregator exited with {code}\n{scenario.logs()}"
    output = scenario.log("resumed").read_text()
    where = f"{scenario.moment}: {output}"
    diverged = [line for line in output.splitlines() if "diverged" in line]
    assert not diverged, "\n".join(diverged)
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    # Every instruction the stopped run journaled was sent again with the same fingerprint.
    counts = [line for line in output.splitlines() if line.startswith("resumed run ")]
    assert counts, where
    replayed, reattached = (int(w) for w in counts[-1].split() if w.isdigit())
    assert replayed + reattached == len(journaled), (journaled, where)
    for proc in datasites:  # the stop (of the resumed run, or of the stopped one) ends them
        assert proc.wait(timeout=60) == 0, f"{scenario.moment}\n{scenario.logs()}"
    # No datasite handled a message id twice; each trained/evaluated each round once.
    rows = [line.split() for line in scenario.calls.read_text().splitlines()]
    finished = [(kind, r, name, mid) for kind, r, name, event, mid in rows if event == "finished"]
    ids = Counter(mid for *_, mid in finished)
    twice = sorted(mid for mid, n in ids.items() if n > 1)
    assert not twice, f"message ids handled twice: {twice}"
    work = Counter((kind, int(r), name) for kind, r, name, _ in finished)
    assert set(work) == {(kind, r, email.partition("@")[0]) for kind in ("train", "evaluate")
                         for r in range(1, ROUNDS + 1) for email in DELAYS}  # fmt: skip
    assert (scenario.root / "final.npy").exists()


@pytest.fixture
def scenarios() -> Iterator[list[Scenario]]:
    made: list[Scenario] = []
    yield made
    for scenario in made:
        for proc in scenario.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _run_side_by_side(batch: list[Scenario]) -> None:
    errors: dict[str, BaseException] = {}

    def run(scenario: Scenario) -> None:
        try:
            _run_scenario(scenario)
        except BaseException as exc:
            errors[f"{scenario.moment} ({scenario.root.name})"] = exc
            print(f"[{scenario.moment}] {exc}")  # the whole story, in the captured output

    threads = [threading.Thread(target=run, args=(s,)) for s in batch]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, "\n".join(f"[{k}] {str(v).splitlines()[0]}" for k, v in errors.items())


def test_resume_after_a_kill_at_each_moment_replays_without_diverging(
    tmp_path: Path, scenarios: list[Scenario]
) -> None:
    scenarios += [Scenario(m, tmp_path / f"m{i}") for i, m in enumerate(MOMENTS)]
    _run_side_by_side(scenarios)


@pytest.mark.slow
@pytest.mark.soak
def test_resume_after_a_kill_at_each_moment_three_times(
    tmp_path: Path, scenarios: list[Scenario]
) -> None:
    for attempt in range(3):
        batch = [Scenario(m, tmp_path / f"a{attempt}m{i}") for i, m in enumerate(MOMENTS)]
        scenarios += batch
        _run_side_by_side(batch)
