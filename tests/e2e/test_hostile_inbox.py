"""Hostile files in a real datasite's inbox, seen from a real aggregator (see
``_quickstart_datasite``: ds1 is `syftflwr run` in its own process).

Files that are not envelopes must cost the runner their header, not their size: four
1 GB sparse files planted ahead of a real training request may neither delay that
request noticeably (the ``messages`` endpoint is serial, so the request waits behind
them) nor grow the runner's memory (measured as its peak RSS, VmHWM)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
from _quickstart_datasite import AGG, DS1, aggregator, quickstart_datasite
from syftflwr.names import new_message_id

GB = 1 << 30
MiB = 1 << 20

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (bytes): what reading a planted file would raise."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_planted_gigabyte_files_cost_their_header_not_their_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 GiB - 1: the planted 1 GB files are within the limit, so only their content
    # can refuse them
    with (
        quickstart_datasite(
            tmp_path, monkeypatch, SYFTFLWR_MAX_MESSAGE_SIZE=str((2 << 30) - 1)
        ) as ds1,  # fmt: skip
        aggregator(ds1.env) as agg,
    ):

        def round_trip() -> float:
            reply, elapsed = agg.train()
            assert reply.has_content(), reply.error
            return elapsed

        assert ds1.proc is not None
        pid = ds1.proc.pid
        round_trip()  # the first one waits for keys and imports the ClientApp
        baseline = statistics.median(round_trip() for _ in range(5))
        before = _peak_rss(pid)

        planted = [new_message_id() for _ in range(4)]
        for message_id in planted:
            with (ds1.folder(AGG, DS1) / f"{message_id}.request").open("wb") as f:
                f.truncate(GB)  # sparse: a gigabyte of zeros that costs no disk
        elapsed = round_trip()

        # every planted file was refused (with an error reply: the folder's sender
        # is allowed) before the peak is read
        replies = ds1.folder(DS1, AGG)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
            (replies / f"{m}.response").exists() for m in planted
        ):
            time.sleep(0.1)
        assert all((replies / f"{m}.response").exists() for m in planted)
        grown = _peak_rss(pid) - before
    print(f"baseline {baseline:.3f}s, behind 4 planted 1 GB files {elapsed:.3f}s, "
          f"peak RSS grew {grown / MiB:.1f} MiB")  # fmt: skip
    assert elapsed <= baseline + 0.5, (baseline, elapsed, ds1.log[-3000:])
    assert grown < 64 * MiB, (grown, ds1.log[-3000:])
    assert "not a syftflwr envelope" in ds1.log
