"""``kill -9`` of the aggregator while a shared model blob uploads, after the messages
naming it went out (they travel beside the upload), then ``syftflwr run --resume``.

The datasites got instructions whose model never arrives. They must not answer them
with a model that is not there, must not hold up what comes next while they look for it
(the serial Flower endpoint), and must not handle a message id twice; the resumed run
must finish (round 1's training fails for want of the model, round 2 trains everywhere),
and the datasites still looking for the model stop when told to.
Real ``syftflwr run`` processes over the local-directory transport (real files, inotify),
encryption on, every model a blob (``blob_threshold = 0``); the aggregator hangs in its
first blob write (the test-only fault seam) and is killed there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from faults.syftflwr_faults import Fault, fault_env

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

APP = Path(__file__).resolve().parent / "resumeapp"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
ROUND_TIMEOUT = 8.0
"""The round limit: what a datasite waits for a model still uploading (plus 3 s, 1 s skew)."""


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "RESUMEAPP_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(root / "home"),
               RESUMEAPP_CALLS=str(root / "calls.log"), SYFTFLWR_BLOB_THRESHOLD="0",
               SYFTFLWR_CLOCK_SKEW="1", **extra)  # fmt: skip
    return env


def _logs(root: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                     for p in sorted(root.glob("*.log")))  # fmt: skip


def test_a_kill_while_the_model_uploads_strands_no_datasite(tmp_path: Path) -> None:
    root = tmp_path
    (root / "roster.json").write_text(json.dumps(
        {"app_name": "resumeapp", "aggregator": AGG, "datasites": list(DATASITES)}))  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(email: str, env: dict[str, str], name: str, *extra: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "syftflwr", "run", str(APP), "--as", email,
                "--roster", str(root / "roster.json"), *extra]  # fmt: skip
        with (root / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    aggregator = ["--rounds", "2", "--allow-failures", "--run-config", "size=64",
                  "--run-config", f"round-timeout={ROUND_TIMEOUT}",
                  "--run-config", f"out={json.dumps(str(root / 'final.npy'))}"]  # fmt: skip
    try:
        datasites = [spawn(email, _env(root, RESUMEAPP_NAME=email.partition("@")[0]),
                           email.partition("@")[0]) for email in DATASITES]  # fmt: skip
        uploading = root / "uploading.mark"
        hang = Fault("syftflwr.mailbox.localdir:LocalDirStorage.put_if_absent", "hang",
                     args_contain=".blob", mark=str(uploading))  # fmt: skip
        agg = spawn(AGG, fault_env(hang, base=_env(root)), "agg", *aggregator)
        deadline = time.monotonic() + 120
        claims = lambda: list((root / "home").rglob("*.claim"))  # noqa: E731
        while not (uploading.exists() and len(claims()) >= len(DATASITES)):
            assert agg.poll() is None, f"the aggregator ended early\n{_logs(root)}"
            assert time.monotonic() < deadline, f"never reached\n{_logs(root)}"
            time.sleep(0.02)
        agg.send_signal(signal.SIGKILL)  # round 1's training: sent, its model never stored
        agg.wait()

        resumed = spawn(AGG, _env(root), "resumed", *aggregator, "--resume")
        assert resumed.wait(timeout=180) == 0, f"the resumed run failed\n{_logs(root)}"
        assert (root / "final.npy").exists()
        for proc in datasites:  # the resumed run's stop ends them
            assert proc.wait(timeout=60) == 0, _logs(root)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    rows = [line.split() for line in (root / "calls.log").read_text().splitlines()]
    finished = [(kind, int(r), name, mid) for kind, r, name, event, mid in rows
                if event == "finished" and kind in ("train", "evaluate")]  # fmt: skip
    twice = [mid for mid, n in Counter(mid for *_, mid in finished).items() if n > 1]
    assert not twice, f"message ids handled twice: {twice}"
    work = Counter((kind, r, name) for kind, r, name, _ in finished)
    assert ("train", 1, "ds1") not in work and ("train", 1, "ds2") not in work, (
        "a datasite trained on a model that was never stored"
    )
    assert {("train", 2, "ds1"), ("train", 2, "ds2")} <= set(work), _logs(root)
    output = (root / "resumed.log").read_text()
    assert "2 re-attached to replies in flight" in output, output
    for email in DATASITES:  # reported as what it is: round 1's training, no model reply
        assert f"failed: {email} (round 1, train)" in output, output
