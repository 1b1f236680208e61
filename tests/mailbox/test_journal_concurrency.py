"""The journal shared by processes x threads (runners sharing one state dir): no
"database is locked" however the writes of other processes interleave.

A statement left open on a connection shared by threads kept a read snapshot; a write on
that connection after another process had committed could then not upgrade it, and
SQLite failed at once (SQLITE_BUSY_SNAPSHOT skips the busy timeout)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from syftflwr.mailbox import Journal
from syftflwr.mailbox.journal import InboundState

WORKER = Path(__file__).resolve().parent / "_journal_worker.py"


def _hammer(journal: Path, processes: int, threads: int, requests: int) -> list[dict[str, object]]:
    args = [str(journal), str(threads), str(requests)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), f"p{n}", *args], stdout=subprocess.PIPE, text=True
        )
        for n in range(processes)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out
        results.append(json.loads(out))
    return results


def _check(journal_path: Path, processes: int, threads: int, requests: int) -> None:
    Journal(journal_path).close()  # created (and migrated) before the race starts
    results = _hammer(journal_path, processes, threads, requests)
    errors = [e for r in results for e in r["errors"]]  # type: ignore[attr-defined]
    count = sum(int(r["error_count"]) for r in results)  # type: ignore[call-overload]
    assert count == 0, f"{count} errors, e.g. {errors[:3]}"
    assert sum(int(r["answered"]) for r in results) == processes * threads * requests  # type: ignore[call-overload]
    journal = Journal(journal_path)
    try:
        health = journal.health()
        assert health.ok
        assert health.inbound == {InboundState.ANSWERED.value: processes * threads * requests}
    finally:
        journal.close()


def test_two_processes_of_four_threads_share_a_journal(tmp_path: Path) -> None:
    _check(tmp_path / "journal.sqlite", processes=2, threads=4, requests=250)


def test_four_processes_of_eight_threads_share_a_journal(tmp_path: Path) -> None:
    _check(tmp_path / "journal.sqlite", processes=4, threads=8, requests=1000)
