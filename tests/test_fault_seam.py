"""The test-only fault seam (tests/faults/): each action fires at the chosen call of a real
child process, and a bad spec stops the child instead of letting a test pass unfaulted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from faults.syftflwr_faults import Fault, arm, fault_env
from syftflwr.errors import StorageError
from syftflwr.mailbox.journal import Journal
from syftflwr.mailbox.localdir import LocalDirStorage

TARGET = "syftflwr.mailbox.journal:Journal.claimed"
CHILD = """
import sys
from syftflwr.mailbox.journal import Journal
from syftflwr.errors import StorageError
journal = Journal(None)
for n in range(4):
    try:
        journal.claimed(f"id-{n:08d}", sender="a@x.org", app="app", endpoint="e", owner="me")
        print("ok", n, flush=True)
    except StorageError as exc:
        print("failed", n, exc, flush=True)
print("recorded", sum(journal.state_of(f"id-{n:08d}") is not None for n in range(4)))
"""


def _child(*faults: Fault) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD], env=fault_env(*faults), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_raise_fires_at_the_chosen_call_only() -> None:
    out = _child(Fault(TARGET, "raise", skip=1, message="database is locked")).stdout.split("\n")
    assert out[:4] == ["ok 0", "failed 1 database is locked", "ok 2", "ok 3"]
    assert out[4] == "recorded 3"  # "before": the failed call never ran


def test_raise_after_the_call_ran() -> None:
    out = _child(Fault(TARGET, "raise", when="after", times=2)).stdout.split("\n")
    assert [line.split()[0] for line in out[:4]] == ["failed", "failed", "ok", "ok"]
    assert out[4] == "recorded 4"


@pytest.mark.parametrize(("action", "status"), [("exit", 137), ("kill", -9)])
def test_exit_and_kill_stop_the_process_at_the_call(
    action: str, status: int, tmp_path: Path
) -> None:
    mark = tmp_path / "reached"
    proc = _child(Fault(TARGET, action, skip=2, mark=str(mark)))
    assert proc.returncode == status
    assert proc.stdout.split() == ["ok", "0", "ok", "1"]
    assert mark.exists()


def test_a_bad_spec_stops_the_child_with_the_fix() -> None:
    proc = _child(Fault("syftflwr.mailbox.journal:Journal.no_such_call", "raise"))
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", "print('ran')"],
        env={**fault_env(), "SYFTFLWR_FAULTS": '[{"target": "m:f", "action": "explode"}]'},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "explode" in proc.stderr and proc.stdout == ""


def test_arm_in_process_and_undo() -> None:
    journal = Journal(None)
    with arm(Fault(TARGET, "raise")), pytest.raises(StorageError, match="injected fault"):
        journal.claimed("id-00000000", sender="a@x.org", app="app", endpoint="e", owner="me")
    assert journal.claimed("id-00000000", sender="a@x.org", app="app", endpoint="e", owner="me")


def test_args_contain_counts_only_the_calls_naming_it(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    target = "syftflwr.mailbox.localdir:LocalDirStorage.put_if_absent"
    with arm(Fault(target, "raise", args_contain=".blob", message="no blobs")):
        assert storage.put_if_absent("a/x.request", [b"1"])  # passes, not counted
        with pytest.raises(StorageError, match="no blobs"):
            storage.put_if_absent("a/x.blob", [b"2"])
        assert storage.put_if_absent("a/y.blob", [b"3"])  # times=1: fired once
