"""A datasite runner killed with SIGKILL while its ClientApp trains, then restarted with
the same state dir: the round completes with exactly one reply per instruction — no
lost update, no duplicated one. Real `syftflwr run` processes over the local-directory
transport (real files, real inotify); nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

APP = Path(__file__).resolve().parent / "crashapp"
AGG = "aggregator@openmined.org"
DS1, DS2 = "ds1@openmined.org", "ds2@openmined.org"
OFFSETS = {DS1: 0.5, DS2: 0.25}


def _env(home: Path, markers: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "CRASHAPP_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), CRASHAPP_MARKERS=str(markers))
    env.update(extra)
    return env


def _run(*args: str) -> list[str]:
    return [sys.executable, "-m", "syftflwr", "run", str(APP), *args]


def _datasite(email: str, home: Path, markers: Path, **extra: str) -> subprocess.Popen[str]:
    name = email.partition("@")[0]
    env = _env(home, markers, CRASHAPP_NAME=name, CRASHAPP_OFFSET=str(OFFSETS[email]), **extra)
    return subprocess.Popen(
        _run("--as", email), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _markers(markers: Path, name: str, event: str) -> list[Path]:
    return sorted(markers.glob(f"{name}.*.{event}")) if markers.exists() else []


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_datasite_killed_mid_training_restarts_and_answers_exactly_once(
    tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    home, markers, out = tmp_path / "home", tmp_path / "markers", tmp_path / "out.json"
    slow = _datasite(DS1, home, markers, CRASHAPP_SLOW="600")
    started += [slow, _datasite(DS2, home, markers)]
    agg = subprocess.Popen(
        _run("--as", AGG, "--run-config", f"out={json.dumps(str(out))}"),
        env=_env(home, markers), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    started.append(agg)

    deadline = time.monotonic() + 120
    while not _markers(markers, "ds1", "started"):
        assert time.monotonic() < deadline, "ds1 never started training"
        assert slow.poll() is None, slow.communicate()[0]
        assert agg.poll() is None, agg.communicate()[0]
        time.sleep(0.05)
    slow.send_signal(signal.SIGKILL)  # mid-training: claimed in the journal, no reply yet
    slow.wait()
    assert not _markers(markers, "ds1", "finished")

    restarted = _datasite(DS1, home, markers)  # same SYFTFLWR_HOME: same state dir
    started.append(restarted)
    agg_output, _ = agg.communicate(timeout=180)
    assert agg.returncode == 0, agg_output

    result = json.loads(out.read_text())
    sent: dict[str, int] = result["sent"]
    replies = result["replies"]
    # exactly one reply per instruction, each answering its own instruction
    assert sorted(r["reply_to"] for r in replies) == sorted(sent)
    assert all(r["error"] is None for r in replies), replies
    for reply in replies:
        node = sent[reply["reply_to"]]
        assert reply["src"] == node
        assert reply["update"] - float(node % 1000) in (OFFSETS[DS1], OFFSETS[DS2])
    assert {round(r["update"] - sent[r["reply_to"]] % 1000, 2) for r in replies} == {0.5, 0.25}
    # nothing more is waiting to be pulled: a second reply could not be aggregated
    assert all("not a pending message" in reason for reason in result["late"])

    # ds1 trained twice (the killed attempt never replied), finished once; ds2 once
    assert len(_markers(markers, "ds1", "started")) == 2
    assert len(_markers(markers, "ds1", "finished")) == 1
    assert len(_markers(markers, "ds2", "started")) == 1

    output, _ = restarted.communicate(timeout=60)  # the aggregator's stop ends it
    assert restarted.returncode == 0, output
    assert "taking over request" in output
    assert "1 messages handled, 0 errors" in output
