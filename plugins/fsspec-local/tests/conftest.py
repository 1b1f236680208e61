"""Fixtures of the fsspec-local tests: isolated process-wide state and real datasite
processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import syftflwr.plugin as watcher
from _fsl_helpers import AGG, DS1, DS2, HERE, Datasite
from syftflwr_fsspec_local import plugin


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test opens its own roots and builds its own watcher hub."""
    yield
    plugin.kit.forget()
    watcher.set_backend_factory(None)
    watcher.reset_hub()


@pytest.fixture
def spawn_datasite(tmp_path: Path) -> Iterator[Callable[..., Datasite]]:
    """Start datasite runners as separate OS processes (stopped at teardown)."""
    started: list[Datasite] = []

    def spawn(email: str, root: str | Path, **config: Any) -> Datasite:
        log_path = tmp_path / f"datasite-{len(started)}.log"
        settings = {
            "root": str(root),
            "email": email,
            "aggregator": AGG,
            "datasites": [DS1, DS2],
            **config,
        }
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_fsl_datasite.py"), json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=log_path.open("w"),
            text=True,
            env={**os.environ, "FLWR_TELEMETRY_ENABLED": "0"},
        )
        datasite = Datasite(proc, log_path)
        started.append(datasite)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"datasite failed to start:\n{datasite.log}"
        return datasite

    yield spawn
    for datasite in started:
        datasite.stop()
