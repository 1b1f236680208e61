"""Hostile files in a real datasite's inbox, seen from a real aggregator: the datasite is
`syftflwr run --as ds1` in its own process (fsspec-local, real inotify, encryption on,
the quickstart ClientApp), the aggregator this test process over the same root.

Files that are not envelopes must cost the runner their header, not their size: four
1 GB sparse files planted ahead of a real training request may neither delay that
request noticeably (the ``messages`` endpoint is serial, so the request waits behind
them) nor grow the runner's memory (measured as its peak RSS, VmHWM)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from syftflwr.names import new_message_id

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DS1 = "ds1@openmined.org"
GB = 1 << 30
MiB = 1 << 20

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (bytes): what reading a planted file would raise."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.fixture
def datasite(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    # 2 GiB - 1: the planted 1 GB files are within the limit, so only their content
    # can refuse them
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home),
               SYFTFLWR_MAX_MESSAGE_SIZE=str((2 << 30) - 1))  # fmt: skip
    log = (tmp_path / "ds1.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "run", str(QUICKSTART), "--as", DS1],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc, env
    finally:
        proc.kill()
        proc.wait(30)
        log.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_planted_gigabyte_files_cost_their_header_not_their_size(
    datasite: tuple[subprocess.Popen[str], dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc, env = datasite
    for name in ("SYFTFLWR_HOME", "SYFTFLWR_MAX_MESSAGE_SIZE"):
        monkeypatch.setenv(name, env[name])
    sys.path.insert(0, str(QUICKSTART))
    try:
        from syftflwr_quickstart.task import initial_weights
    finally:
        sys.path.remove(str(QUICKSTART))
    from flwr.app import ArrayRecord, ConfigRecord, RecordDict
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.session import connect

    mailbox = Path(env["SYFTFLWR_HOME"]) / "mailbox"
    key = mailbox / f"syft_outbox_inbox_{DS1}_to_{AGG}" / "syftflwr.pubkey.json"
    deadline = time.monotonic() + 120
    while not key.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # ds1 publishes its key when it starts serving
    assert key.exists(), (tmp_path / "ds1.log").read_text()
    with connect(QUICKSTART, email=AGG, env=env) as aggregator:
        grid = TransportGrid(
            aggregator.rpc(),
            email=AGG,
            app_name=aggregator.context.app_name,
            datasites=aggregator.project.datasites,
        )
        node = grid.node_ids[DS1]

        def round_trip() -> float:
            content = RecordDict({"arrays": ArrayRecord(initial_weights()),
                                  "config": ConfigRecord({"server-round": 1})})  # fmt: skip
            message = grid.create_message(content, "train", node, "1", ttl=300)
            started = time.monotonic()
            [reply] = grid.send_and_receive([message], timeout=120)
            elapsed = time.monotonic() - started
            assert reply.has_content(), reply.error
            return elapsed

        round_trip()  # the first one waits for keys and imports the ClientApp
        baseline = statistics.median(round_trip() for _ in range(5))
        before = _peak_rss(proc.pid)

        inbox = mailbox / f"syft_outbox_inbox_{AGG}_to_{DS1}/quickstart/rpc/messages"
        planted = [new_message_id() for _ in range(4)]
        for message_id in planted:
            with (inbox / f"{message_id}.request").open("wb") as f:
                f.truncate(GB)  # sparse: a gigabyte of zeros that costs no disk
        elapsed = round_trip()

        # every planted file was refused (with an error reply: the folder's sender
        # is allowed) before the peak is read
        outbox = mailbox / f"syft_outbox_inbox_{DS1}_to_{AGG}/quickstart/rpc/messages"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
            (outbox / f"{m}.response").exists() for m in planted
        ):
            time.sleep(0.1)
        assert all((outbox / f"{m}.response").exists() for m in planted)
        grown = _peak_rss(proc.pid) - before
        log = (tmp_path / "ds1.log").read_text()
    print(f"baseline {baseline:.3f}s, behind 4 planted 1 GB files {elapsed:.3f}s, "
          f"peak RSS grew {grown / MiB:.1f} MiB")  # fmt: skip
    assert elapsed <= baseline + 0.5, (baseline, elapsed, log[-3000:])
    assert grown < 64 * MiB, (grown, log[-3000:])
    assert "not a syftflwr envelope" in log
