"""Per-round checkpoints of an aggregator's run: the global arrays and the round's
metrics, as plain files users can open without syftflwr.

``{state_dir}/checkpoints/<run id>/round-<r>.npz`` — numpy's ``.npz``: one entry per
array, named ``<record>/<array>`` (e.g. ``arrays/fc1.weight``); ``np.load`` reads it.
``round-<r>.json`` — the round's metrics and where the arrays came from.

The Grid never sees a strategy's aggregate directly, but it sees what the server sends
next: round *r+1*'s instructions carry the arrays aggregated in round *r*. So round *r*'s
checkpoint is written when round *r+1*'s first instruction is pushed, with the arrays of
that instruction; the last round's is written at the end of the run, with the latest
arrays that round sent (its evaluate instructions carry the final aggregate; a round
without them can only show the arrays its training started from — ``source`` in the
JSON says which).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message

from syftflwr.atomic import atomic_write

log = logging.getLogger("syftflwr.flower")

CHECKPOINTS_DIR = "checkpoints"
RoundSummary = Callable[[int], Mapping[str, Any]]
"""The metrics of a round (what the JSON file's ``metrics`` holds)."""


def checkpoint_dir(state_dir: Path, run_id: int) -> Path:
    return Path(state_dir) / CHECKPOINTS_DIR / str(run_id)


def arrays_of(message: Message) -> dict[str, ArrayRecord]:
    if not message.has_content():
        return {}
    return {k: r for k, r in message.content.items() if isinstance(r, ArrayRecord)}


def write_checkpoint(
    folder: Path,
    server_round: int,
    arrays: Mapping[str, ArrayRecord],
    *,
    source: str,
    metrics: Mapping[str, Any],
    run_id: int,
) -> Path:
    """Write ``round-<r>.npz`` and ``round-<r>.json``; returns the JSON file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, np.ndarray[Any, Any]] = {}
    raw: list[str] = []
    for record_key, record in arrays.items():
        for name, array in record.items():
            key = f"{record_key}/{name}"
            try:
                entries[key] = array.numpy()
            except Exception:  # a non-numpy serialisation: keep its bytes as they are
                entries[key] = np.frombuffer(bytes(array.data), dtype=np.uint8)
                raw.append(key)
    buffer = io.BytesIO()
    np.savez(buffer, **entries)  # type: ignore[arg-type]
    atomic_write(folder / f"round-{server_round}.npz", buffer.getvalue())
    manifest = {
        "run_id": run_id,
        "round": server_round,
        "arrays": {
            "file": f"round-{server_round}.npz",
            "source": source,
            "entries": {
                k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in entries.items()
            },
            "raw_bytes": raw,
        },
        "metrics": dict(metrics),
        "written_at": time.time(),
    }
    path = folder / f"round-{server_round}.json"
    atomic_write(path, json.dumps(manifest, indent=2, default=str).encode())
    return path


class RoundCheckpoints:
    """Watches the instructions a run pushes (in push order) and writes round *r*'s
    checkpoint when round *r* is over (see the module docstring). Thread-safe."""

    def __init__(
        self,
        folder: Path,
        *,
        run_id: int,
        summary: RoundSummary,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.run_id = run_id
        self.summary = summary
        self._on_written = on_written
        self._lock = threading.Lock()
        self._round: int | None = None
        self._arrays: dict[str, ArrayRecord] = {}
        self._source = ""
        self.written: list[int] = []

    def observe(self, server_round: int | None, message: Message) -> None:
        if server_round is None:
            return
        arrays = arrays_of(message)
        kind = message.metadata.message_type
        with self._lock:
            if self._round is not None and server_round > self._round:
                if arrays:
                    source = f"round {server_round}'s {kind} instructions (the aggregate of "
                    source += f"round {self._round})"
                    self._write(self._round, arrays, source)
                else:
                    self._write(self._round, self._arrays, self._source)
                self._arrays = {}
            if self._round is None or server_round >= self._round:
                self._round = server_round
                if arrays:
                    self._arrays = arrays
                    self._source = f"round {server_round}'s {kind} instructions"

    def finish(self) -> None:
        """The run ended: write the last round's checkpoint."""
        with self._lock:
            if self._round is not None and self._round not in self.written:
                self._write(self._round, self._arrays, self._source)

    def _write(self, server_round: int, arrays: Mapping[str, ArrayRecord], source: str) -> None:
        try:
            write_checkpoint(
                self.folder,
                server_round,
                arrays,
                source=source or "no instruction of this round carried arrays",
                metrics=self.summary(server_round),
                run_id=self.run_id,
            )
        except Exception as exc:  # a checkpoint is a convenience: never fail the run for it
            log.warning("could not write round %d's checkpoint in %s: %s", server_round,
                        self.folder, exc)  # fmt: skip
            return
        self.written.append(server_round)
        if self._on_written is not None:
            self._on_written(server_round)
