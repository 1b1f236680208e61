"""Two runner processes on one inbox, one killed with SIGKILL mid-handling (real
processes, real files). What the takeover rule guarantees: the request is handled to
completion exactly once; a survivor SHARING the dead runner's journal takes it over at
its next sweep; a survivor with its own journal never does (it cannot know the claim's
history) — a restart of the dead runner's state dir does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mailbox_helpers import DS1, Mailbox

RUNNER = Path(__file__).resolve().parent / "_inbox_runner.py"


class Runners:
    def __init__(self, root: Path, markers: Path) -> None:
        self.root, self.markers = root, markers
        self.procs: dict[int, subprocess.Popen[str]] = {}
        self.output: dict[int, list[str]] = {}

    def start(self, state: Path, *flags: str) -> subprocess.Popen[str]:
        env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(self.root), str(state), str(self.markers), *flags],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        self.procs[proc.pid] = proc
        lines = self.output[proc.pid] = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        return proc

    def wait_logged(self, pid: int, text: str) -> None:
        deadline = time.monotonic() + 30
        while not any(text in line for line in list(self.output[pid])):
            assert time.monotonic() < deadline, f"{pid} never logged {text!r}"
            time.sleep(0.02)

    def pids(self, message_id: str, event: str) -> list[int]:
        return sorted(
            int(p.name.split(".")[1]) for p in self.markers.glob(f"{message_id}.*.{event}")
        )

    def wait_started(self, message_id: str, count: int) -> list[int]:
        deadline = time.monotonic() + 30
        while len(self.pids(message_id, "started")) < count:
            assert time.monotonic() < deadline, "the request was never handled"
            time.sleep(0.02)
        return self.pids(message_id, "started")

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self.procs[pid].wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def runners(mailbox: Mailbox, tmp_path: Path) -> Iterator[Runners]:
    markers = tmp_path / "markers"
    markers.mkdir()
    r = Runners(mailbox.root, markers)
    yield r
    r.close()


def _answer(mailbox: Mailbox, handle_id: str, handles: list[object]) -> bytes:
    rpc = mailbox.rpcs[0]
    (response,) = rpc.wait(handles, timeout=30)  # type: ignore[arg-type]
    assert response.ok and response.id == handle_id, response.error_text
    return bytes(response.body)


def test_a_survivor_sharing_the_journal_takes_over(
    mailbox: Mailbox, runners: Runners, tmp_path: Path
) -> None:
    state = tmp_path / "shared-state"
    a, b = runners.start(state), runners.start(state)
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"survive"))
    (claimer,) = runners.wait_started(handle.id, 1)
    survivor = b.pid if claimer == a.pid else a.pid
    # the survivor saw the request and backed off: nothing will announce it again
    runners.wait_logged(survivor, f"request {handle.id} is claimed by another runner")
    runners.kill(claimer)
    assert _answer(mailbox, handle.id, [handle]) == b"survive"
    assert runners.pids(handle.id, "started") == sorted([claimer, survivor])
    assert runners.pids(handle.id, "finished") == [survivor]  # completed exactly once


def test_a_survivor_with_its_own_journal_never_takes_over(
    mailbox: Mailbox, runners: Runners, tmp_path: Path
) -> None:
    a = runners.start(tmp_path / "state-a")
    b = runners.start(tmp_path / "state-b")
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"survive"))
    (claimer,) = runners.wait_started(handle.id, 1)
    survivor = b if claimer == a.pid else a
    runners.wait_logged(survivor.pid, f"request {handle.id} is claimed by another runner")
    runners.kill(claimer)
    dead_state = tmp_path / ("state-a" if claimer == a.pid else "state-b")
    time.sleep(1)  # five of the survivor's sweeps: it must leave the claim alone
    assert runners.pids(handle.id, "started") == [claimer]
    restarted = runners.start(dead_state)  # the dead runner's journal comes back
    assert _answer(mailbox, handle.id, [handle]) == b"survive"
    assert runners.pids(handle.id, "finished") == [restarted.pid]
    assert survivor.pid not in runners.pids(handle.id, "started")


def test_two_runner_processes_answer_a_thousand_concurrent_sends_once_each(
    mailbox: Mailbox, runners: Runners, tmp_path: Path
) -> None:
    """The CI-sized version of issue 8's bar (10,000 in the benchmark): two runner
    processes with their own journals on one inbox, 1,000 requests sent at once — every
    request handled exactly once, every reply complete and its own."""
    a = runners.start(tmp_path / "state-a", "--fast")
    b = runners.start(tmp_path / "state-b", "--fast")
    rpc = mailbox.rpc()
    handles = [rpc.send(mailbox.request(DS1, f"body-{i}".encode())) for i in range(1000)]
    expected = {h.id: f"body-{i}".encode() for i, h in enumerate(handles)}
    got: dict[str, bytes] = {}
    deadline = time.monotonic() + 120
    while len(got) < len(handles):
        assert time.monotonic() < deadline, f"only {len(got)} of 1000 replies"
        for response in rpc.wait([h for h in handles if h.id not in got], timeout=5):
            assert response.ok, response.error_text
            got[response.id] = bytes(response.body)
    assert got == expected  # no partial read, no mixed-up reply
    handled = [
        line
        for pid in (a.pid, b.pid)
        for line in (runners.markers / f"{pid}.handled").read_text().split()
    ]
    assert sorted(handled) == sorted(expected)  # each exactly once, across both processes
