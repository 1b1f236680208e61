"""The quickstart app trains over syftbox with every participant in its own OS process
(``syftflwr run``), each with its own SyftBox client config, all sharing one data dir —
encrypted (the default: core seals every message) and plaintext (``encryption = false``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _sb_helpers import write_config

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
AGGREGATOR = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org", "ds3@openmined.org")


def _run(email: str, tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    config = write_config(tmp_path / "configs", email, tmp_path / "SyftBox")
    log = (tmp_path / f"{email}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "run", str(QUICKSTART), "--as", email, *args],
        env={**env, "SYFTBOX_CLIENT_CONFIG_PATH": str(config)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(tmp_path),
    )


def _logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))


@pytest.mark.slow
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "plaintext"])
def test_quickstart_trains_between_processes(tmp_path: Path, encryption: bool) -> None:
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "SYFTFLWR_HOME": str(tmp_path / "home"),
        "SYFTFLWR_TRANSPORT": "syftbox",
        "SYFTFLWR_ENCRYPTION": "true" if encryption else "false",
    }
    datasites = [
        _run(email, tmp_path, env, "--node-config", f"partition-id={i}",
             "--node-config", f"num-partitions={len(DATASITES)}")
        for i, email in enumerate(DATASITES)
    ]  # fmt: skip
    try:  # all start at once on a fresh federation: the aggregator's first sends wait
        # for the datasites' keys (published when each connects), never fail on them
        result = tmp_path / "result.json"
        agg = _run(AGGREGATOR, tmp_path, env, "--rounds", "2", "--result-file", str(result))
        assert agg.wait(timeout=300) == 0, _logs(tmp_path)
    finally:
        for proc in datasites:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in datasites:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = json.loads(result.read_text())
    assert summary["transport"] == "syftbox"
    assert summary["error"] is None and summary["failures"] == [], _logs(tmp_path)
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]  # 0: initial evaluation
    assert "Traceback" not in _logs(tmp_path)
