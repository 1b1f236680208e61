"""A healthy run is quiet and tidy, as users run it (separate processes, fsspec-local,
default settings): the quickstart logs no WARNING line, by hand and under `simulate`,
and the mailbox holds only the folders the roles use — the aggregator's outbox to each
datasite and each datasite's outbox to the aggregator.

Before, every participant published its key into an outbox toward every participant
(itself included: 16 folders for 4 participants), and each datasite then warned about
every other datasite's folder ("... is not an allowed sender for ...")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _e2e import AGG, DATASITES, QUICKSTART, Procs, env_for, syftflwr

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

EXPECTED_FOLDERS = sorted(
    [f"syft_outbox_inbox_{AGG}_to_{ds}" for ds in DATASITES]
    + [f"syft_outbox_inbox_{ds}_to_{AGG}" for ds in DATASITES]
)


def _warnings(*outputs: str) -> list[str]:
    return [line for out in outputs for line in out.splitlines() if "WARNING" in line]


def test_quickstart_by_hand_logs_no_warning_and_makes_only_the_used_folders(
    home: Path, procs: Procs
) -> None:
    env = env_for(home)
    runners = [procs.start(syftflwr("run", str(QUICKSTART), "--as", e), env) for e in DATASITES]
    agg = subprocess.run(
        syftflwr("run", str(QUICKSTART), "--as", AGG, "--rounds", "2"),
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert agg.returncode == 0, agg.stdout + agg.stderr
    outputs = [agg.stdout, agg.stderr]
    for runner in runners:
        output, _ = runner.communicate(timeout=60)
        assert runner.returncode == 0, output
        outputs.append(output)
    assert _warnings(*outputs) == []
    folders = sorted(p.name for p in (home / "mailbox").iterdir() if p.name != ".syftflwr")
    assert folders == EXPECTED_FOLDERS


def test_simulate_logs_no_warning(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    done = subprocess.run(
        syftflwr("simulate", str(QUICKSTART), "--rounds", "2", "--workspace", str(workspace)),
        env=env_for(tmp_path / "unused"), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    logs = [p.read_text() for p in (workspace / "logs").iterdir()]
    assert _warnings(done.stdout, done.stderr, *logs) == []
    mailbox = workspace / "home" / "mailbox"
    folders = sorted(p.name for p in mailbox.iterdir() if p.name != ".syftflwr")
    assert folders == EXPECTED_FOLDERS
