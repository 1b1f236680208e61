"""A stop message belongs to its run. An aggregator killed right after sending its stops
(no datasite was there to read them) leaves them queued; the datasites started later
for a new run must not take them for their own: each ignores the old stop with one
INFO line and serves the new run, and the new run's aggregator removes the unread stops
of earlier runs. Real ``syftflwr run`` processes over the local-directory transport,
encryption on; the kill is the test-only fault seam."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults.syftflwr_faults import Fault, fault_env

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

APP = Path(__file__).resolve().parents[1] / "reliability" / "resumeapp"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")


def _env(home: Path, calls: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "RESUMEAPP_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), RESUMEAPP_CALLS=str(calls))
    return env


def _run(email: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syftflwr", "-v", "run", str(APP), "--as", email, *extra]


def _requests(home: Path) -> list[Path]:
    return sorted(home.rglob(f"*{AGG}_to_*/**/*.request"))


def _start(email: str, home: Path, calls: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_run(email), env=_env(home, calls), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _serve_briefly(home: Path, calls: Path) -> None:
    procs = [_start(email, home, calls) for email in DATASITES]
    for proc in procs:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "serving" in line:
                break
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output


def test_a_stop_left_by_an_earlier_run_does_not_stop_the_next_one(tmp_path: Path) -> None:
    home, calls = tmp_path / "home", tmp_path / "calls.log"
    out = json.dumps(str(tmp_path / "final.npy"))
    _serve_briefly(home, calls)  # the datasites publish their keys, then stop
    # Run 1: nobody serves; its round times out, its stops go out, then it is killed.
    killed = fault_env(
        Fault("syftflwr.flower.grid:TransportGrid.stop_datasites", "kill", when="after"),
        base=_env(home, calls),
    )
    first = subprocess.run(
        _run(AGG, "--rounds", "1", "--round-timeout", "2", "--run-config", f"out={out}"),
        env=killed, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert first.returncode == -9, first.stdout + first.stderr
    stale = _requests(home)  # per datasite: its stop, and round 1's unanswered instructions
    assert len(stale) == 6, stale

    # Run 2: the datasites start, then a new aggregator run.
    procs = [_start(email, home, calls) for email in DATASITES]
    try:
        time.sleep(3)  # they read the old stop (if nothing removed it yet)
        alive = [p.poll() is None for p in procs]
        second = subprocess.run(
            _run(AGG, "--rounds", "1", "--round-timeout", "30", "--run-config", f"out={out}"),
            env=_env(home, calls), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report = "\n".join(outputs) + second.stdout + second.stderr
    assert alive == [True, True], report
    assert second.returncode == 0, report
    for email, output in zip(DATASITES, outputs, strict=True):
        assert f"datasite {email} stopped (by {AGG})" in output, output
        ignored = [line for line in output.splitlines() if "ignoring the stop of run" in line]
        assert len(ignored) == 1 and ignored[0].startswith("INFO "), output
    left = [p for p in stale if p.exists()]
    assert not left, f"run 2 left run 1's requests in place: {left}\n{second.stderr}"
