"""No wait of the aggregator escapes ``--round-timeout``. Real ``syftflwr run`` processes
over the local-directory transport, encryption on.

* Five datasites that never started (no public key to seal to): every send of a round
  waits for its key in parallel and gives up at the round's deadline, the stops too.
* A datasite whose key changed since the aggregator first trusted it: the aggregator
  refuses to send it anything, and tells it so — the datasite stops instead of serving
  a run that never comes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
APP = ROOT / "tests" / "reliability" / "resumeapp"
AGG = "aggregator@openmined.org"
ROUND_TIMEOUT = 4.0


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "RESUMEAPP_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), **extra)
    return env


def _run(app: Path, email: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "syftflwr", "-v", "run", str(app), "--as", email, *extra]


def test_every_wait_of_a_round_is_bounded_by_the_round_timeout(tmp_path: Path) -> None:
    datasites = [f"ds{i}@openmined.org" for i in range(1, 6)]
    roster = tmp_path / "roster.json"
    roster.write_text(json.dumps({"app_name": "quickstart", "aggregator": AGG,
                                  "datasites": datasites}))  # fmt: skip
    args = _run(QUICKSTART, AGG, "--roster", str(roster), "--rounds", "1", "--round-timeout",
                str(ROUND_TIMEOUT), "--allow-failures")  # fmt: skip
    proc = subprocess.Popen(args, env=_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    round_started: float | None = None
    assert proc.stdout is not None
    for line in proc.stdout:  # timed from the round's start: a loaded machine's start-up
        lines.append(line)  # (importing Flower: 20 s and more under CI's load) is not a wait
        if round_started is None and "[ROUND 1/1]" in line:
            round_started = time.monotonic()
    code = proc.wait(timeout=300)
    took = time.monotonic() - (round_started or 0.0)
    output = "".join(lines)
    assert code == 0, output
    assert round_started is not None, output
    # Each datasite's training and evaluation failed unsent (no key), and no stop went out.
    assert output.count("no public key of") >= 2 * len(datasites), output
    # Three waits (training, evaluation, stops), each at most the round timeout (plus the
    # grace a blocked transport gets), then the summary and exit; one after another per
    # datasite, as 3566330 waited, the waits alone are 3 x 5 x 4 s = 60 s.
    print(f"one round with --round-timeout {ROUND_TIMEOUT:.0f}: {took:.1f}s to exit")
    assert took < 3 * ROUND_TIMEOUT + 20, f"took {took:.1f}s from the round's start\n{output}"


def test_a_datasite_whose_key_changed_is_told_the_run_ended(tmp_path: Path) -> None:
    home, calls = tmp_path / "home", tmp_path / "calls.log"
    out = json.dumps(str(tmp_path / "final.npy"))
    env = _env(home, RESUMEAPP_CALLS=str(calls))
    agg = _run(APP, AGG, "--rounds", "1", "--round-timeout", str(ROUND_TIMEOUT),
               "--run-config", f"out={out}", "--allow-failures")  # fmt: skip
    # A first run: the aggregator trusts both datasites' keys on first use.
    first = [subprocess.Popen(_run(APP, f"ds{i}@openmined.org"), env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in (1, 2)]  # fmt: skip
    try:
        done = subprocess.run(agg, env=env, capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        for proc in first:
            proc.communicate(timeout=60)
    finally:
        for proc in first:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # ds2 loses its state (a new machine, a wiped home): it comes back with a new key.
    shutil.rmtree(home / "state" / "resumeapp" / "ds2@openmined.org")
    second = [subprocess.Popen(_run(APP, f"ds{i}@openmined.org"), env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
              for i in (1, 2)]  # fmt: skip
    try:
        time.sleep(2)
        done = subprocess.run(agg, env=env, capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip
        report = done.stdout + done.stderr
        assert "the key of ds2@openmined.org changed" in report, report
        # ds2 was told: it stops by itself, saying why, instead of serving forever.
        output, _ = second[1].communicate(timeout=60)
        assert second[1].returncode == 0, output
        assert f"the aggregator {AGG} refuses this datasite" in output, output
        assert "stopped" in output, output
        second[0].communicate(timeout=60)  # ds1 stops on the normal stop
    finally:
        for proc in second:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
