"""Runner processes (``_inbox_runner.py``) of the reliability tests, their output and
what they handled."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from faults.syftflwr_faults import Fault, fault_env
from syftflwr.envelope import Response
from syftflwr.roles import RequestHandle, RPCRole

RUNNER = Path(__file__).resolve().parent / "_inbox_runner.py"


class Procs:
    """Runner processes serving ds1's ``echo`` over the local directory ``root``."""

    def __init__(self, root: Path, markers: Path) -> None:
        self.root, self.markers = root, markers
        self.procs: list[subprocess.Popen[str]] = []
        self.output: dict[int, list[str]] = {}

    def start(self, state: Path, *faults: Fault, fast: bool = True) -> subprocess.Popen[str]:
        """A runner with the state dir ``state``, armed with ``faults`` (tests/faults)."""
        env = fault_env(*faults, base={**os.environ, "FLWR_TELEMETRY_ENABLED": "0"})
        args = [str(RUNNER), str(self.root), str(state), str(self.markers)]
        proc = subprocess.Popen(
            [sys.executable, *args, *(["--fast"] if fast else [])],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        self.procs.append(proc)
        lines = self.output[proc.pid] = []
        threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        return proc

    def handled(self, pid: int) -> list[str]:
        path = self.markers / f"{pid}.handled"
        return path.read_text().split() if path.exists() else []

    def all_handled(self) -> list[str]:
        return [mid for proc in self.procs for mid in self.handled(proc.pid)]

    def logged(self, pid: int, text: str) -> bool:
        return any(text in line for line in list(self.output[pid]))

    def lines(self, prefix: str) -> list[str]:
        """Every runner's output lines starting with ``prefix`` (e.g. ``WARNING``)."""
        return [
            line for out in self.output.values() for line in list(out) if line.startswith(prefix)
        ]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def collect(rpc: RPCRole, handles: list[RequestHandle], timeout: float) -> dict[str, Response]:
    """Every response that arrives within ``timeout`` seconds, by request id."""
    deadline = time.monotonic() + timeout
    pending = {h.id: h for h in handles}
    got: dict[str, Response] = {}
    while pending and time.monotonic() < deadline:
        for response in rpc.wait(list(pending.values()), timeout=deadline - time.monotonic()):
            got[response.id] = response
            pending.pop(response.id, None)
    return got
