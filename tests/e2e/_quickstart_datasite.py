"""One real datasite (`syftflwr run QUICKSTART --as ds1` in its own process: fsspec-local,
real inotify, encryption on, the quickstart ClientApp) and an aggregator in the test's
own process over the same root, sending real Flower training messages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DS1 = "ds1@openmined.org"


@dataclass
class Datasite:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        """Start ds1 (again: a restart keeps its state dir, not its memory)."""
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syftflwr", "run", str(QUICKSTART), "--as", DS1],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        return self.proc

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)

    @property
    def mailbox(self) -> Path:
        return Path(self.env["SYFTFLWR_HOME"]) / "mailbox"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def folder(self, sender: str, recipient: str) -> Path:
        return self.mailbox / f"syft_outbox_inbox_{sender}_to_{recipient}/quickstart/rpc/messages"


@contextmanager
def quickstart_datasite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> Iterator[Datasite]:
    """ds1 serving, its key published; the test process's environment points at the
    same home (SYFTFLWR_HOME and ``env``), so the aggregator it connects shares it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    full.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(tmp_path / "home"), **env)
    for name, value in full.items():
        if name.startswith("SYFTFLWR_"):
            monkeypatch.setenv(name, value)
    site = Datasite(full, tmp_path / "ds1.log")
    proc = site.start()
    try:
        key = (
            site.mailbox
            / f"syft_outbox_inbox_{DS1}_to_{AGG}"
            / "quickstart"
            / "syftflwr.pubkey.json"
        )
        deadline = time.monotonic() + 120
        while not key.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # ds1 publishes its key when it starts serving
        assert key.exists(), site.log
        yield site
    finally:
        site.kill()


class Aggregator:
    """The aggregator's real roles (sealed by default) under a Flower grid."""

    def __init__(self, env: dict[str, str]) -> None:
        from syftflwr.flower.grid import TransportGrid
        from syftflwr.session import connect

        self.participant = connect(QUICKSTART, email=AGG, env=env)
        self.grid = TransportGrid(
            self.participant.rpc(),
            email=AGG,
            app_name=self.participant.context.app_name,
            datasites=self.participant.project.datasites,
        )

    def train_message(self) -> Any:
        """A real round-1 training instruction for ds1 (the quickstart's initial model)."""
        sys.path.insert(0, str(QUICKSTART))
        try:
            from syftflwr_quickstart.task import initial_weights
        finally:
            sys.path.remove(str(QUICKSTART))
        from flwr.app import ArrayRecord, ConfigRecord, RecordDict

        content = RecordDict({"arrays": ArrayRecord(initial_weights()),
                              "config": ConfigRecord({"server-round": 1})})  # fmt: skip
        return self.grid.create_message(content, "train", self.grid.node_ids[DS1], "1", ttl=300)

    def train(self) -> tuple[Any, float]:
        """Send ds1 one real training message; its reply and the round trip's seconds."""
        message = self.train_message()
        started = time.monotonic()
        [reply] = self.grid.send_and_receive([message], timeout=120)
        return reply, time.monotonic() - started

    def close(self) -> None:
        self.grid.close()
        self.participant.close()


@contextmanager
def aggregator(env: dict[str, str]) -> Iterator[Aggregator]:
    agg = Aggregator(env)
    try:
        yield agg
    finally:
        agg.close()
