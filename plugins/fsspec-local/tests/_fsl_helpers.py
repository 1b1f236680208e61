"""Helpers of the fsspec-local tests: names, contexts, datasite processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from syftflwr.info import TransportContext

HERE = Path(__file__).parent
AGG = "agg@example.org"
DS1 = "ds1@example.org"
DS2 = "ds2@example.org"


def make_context(
    email: str,
    root: str | Path,
    *,
    datasites: tuple[str, ...] = (DS1, DS2),
    aggregator: str = AGG,
    state_dir: Path | None = None,
    **options: Any,
) -> TransportContext:
    return TransportContext(
        transport="fsspec-local",
        app_name="app",
        email=email,
        aggregator=aggregator,
        datasites=datasites,
        options={"root": str(root), "retention_interval": 0, **options},
        state_dir=state_dir,
    )


@dataclass
class Datasite:
    proc: subprocess.Popen[str]
    log_path: Path
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until true (a test helper, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
