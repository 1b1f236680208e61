"""The aggregator's run journal: what each run sent and what came back, on disk, so a
run killed mid-way can be resumed (``syftflwr run --resume``, docs/resume.md).

``{state_dir}/runs/runs.sqlite`` (sqlite3, WAL) holds two tables:

* ``runs`` — one row per run: run id, the seed of Python's and numpy's random number
  generators, a hash of the run config, ``status`` (``running`` -> ``finished`` |
  ``failed`` | ``abandoned``), the process id, the latest round and checkpoint;
* ``pushes`` — one row per instruction: its fingerprint (see
  :mod:`syftflwr.flower.fingerprint`), envelope message id, datasite, type, round,
  expiry and state (``pushing`` -> ``sent`` -> ``returned`` | ``gave_up``).

Each reply handed to the ServerApp is kept as the encoded Flower message in
``{state_dir}/runs/<run id>/replies/<message id>.msg`` (written before its row says
``returned``), and deleted when the run finishes: a run in progress holds one copy of
every reply it received. A finished (or abandoned) run keeps only its ``runs`` row.

This is the aggregator's *run* journal; the mailbox journal (``mailbox/journal.py``)
records envelopes per transport and knows nothing about rounds.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from syftflwr import processes
from syftflwr.errors import StorageError

RUNS_DIR = "runs"
DATABASE = "runs.sqlite"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        run_id INTEGER PRIMARY KEY, seed INTEGER NOT NULL, config_hash TEXT NOT NULL,
        status TEXT NOT NULL, pid INTEGER NOT NULL, started_at REAL NOT NULL,
        updated_at REAL NOT NULL, resumes INTEGER NOT NULL DEFAULT 0,
        last_round INTEGER, last_checkpoint INTEGER)""",
    """CREATE TABLE IF NOT EXISTS pushes (
        run_id INTEGER NOT NULL, message_id TEXT NOT NULL, seq INTEGER NOT NULL,
        fingerprint TEXT NOT NULL, datasite TEXT NOT NULL, message_type TEXT NOT NULL,
        round INTEGER, expires_at REAL NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (run_id, message_id))""",
    "CREATE INDEX IF NOT EXISTS pushes_seq ON pushes(run_id, seq)",
)
SCHEMA_VERSION = 1


class RunStatus(StrEnum):
    RUNNING = "running"
    """Started and not ended: still running, or killed (resumable)."""
    FINISHED = "finished"
    FAILED = "failed"
    """The ServerApp raised (resumable, e.g. after fixing the bug)."""
    ABANDONED = "abandoned"
    """Superseded by a fresh run."""


RESUMABLE = frozenset({RunStatus.RUNNING, RunStatus.FAILED})


class PushState(StrEnum):
    PUSHING = "pushing"
    """Recorded before the transport was asked to send; the request may not exist."""
    SENT = "sent"
    """Handed to the transport; no reply given to the ServerApp yet."""
    RETURNED = "returned"
    """A reply (or Flower's error reply) was given to the ServerApp and is stored."""
    GAVE_UP = "gave_up"
    """The ServerApp's wait ended without a reply; it went on without one."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    seed: int
    config_hash: str
    status: RunStatus
    pid: int
    started_at: float
    updated_at: float
    resumes: int
    last_round: int | None
    last_checkpoint: int | None

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        where = f"in round {self.last_round}" if self.last_round is not None else "before round 1"
        done = (
            f"last checkpoint: round {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no round completed"
        )
        return f"run {self.run_id} (started {started}) stopped {where} ({done})"


@dataclass(frozen=True, slots=True)
class PushRecord:
    message_id: str
    seq: int
    fingerprint: str
    datasite: str
    message_type: str
    round: int | None
    expires_at: float
    state: PushState


def pid_alive(pid: int) -> bool:
    """Whether ANOTHER process with ``pid`` exists on this machine (another aggregator
    may still be running the run); this process never counts."""
    return pid != os.getpid() and processes.pid_alive(pid)


class RunJournal:
    """Thread-safe handle on ``{root}/runs.sqlite`` and the stored replies under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / DATABASE
        self._lock = threading.RLock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"the run journal {self.path} has schema version {version}, newer than "
                    f"this syftflwr ({SCHEMA_VERSION}); upgrade syftflwr"
                )
            for statement in SCHEMA:
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot open the run journal {self.path}: {exc}; check that the state "
                "directory is writable (SYFTFLWR state_dir)"
            ) from exc

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> RunJournal:
        return cls(Path(state_dir) / RUNS_DIR)

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args))
            except sqlite3.Error as exc:
                raise StorageError(f"run journal {self.path}: {exc}") from exc

    # -- runs ------------------------------------------------------------------------------
    def latest(self) -> RunRecord | None:
        row = self._run(
            "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _run_record(row)

    def get(self, run_id: int) -> RunRecord | None:
        row = self._run("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_record(row)

    def start(self, run_id: int, *, seed: int, config_hash: str) -> RunRecord:
        now = time.time()
        self._run(
            "INSERT INTO runs (run_id, seed, config_hash, status, pid, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, seed, config_hash, RunStatus.RUNNING, os.getpid(), now, now),
        )
        record = self.get(run_id)
        assert record is not None
        return record

    def reopen(self, run_id: int) -> RunRecord:
        """Mark a stopped run running again, owned by this process."""
        self._run(
            "UPDATE runs SET status = ?, pid = ?, updated_at = ?, resumes = resumes + 1 "
            "WHERE run_id = ?",
            (RunStatus.RUNNING, os.getpid(), time.time(), run_id),
        )
        record = self.get(run_id)
        assert record is not None
        return record

    def end(self, run_id: int, status: RunStatus) -> None:
        """Record how the run ended; a finished or abandoned run's replies are deleted
        (the checkpoints stay)."""
        self._run(
            "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?",
            (status, time.time(), run_id),
        )
        if status in (RunStatus.FINISHED, RunStatus.ABANDONED):  # nothing left to replay
            self._run("DELETE FROM pushes WHERE run_id = ?", (run_id,))
            shutil.rmtree(self.root / str(run_id), ignore_errors=True)

    def set_round(self, run_id: int, server_round: int) -> None:
        self._run(
            "UPDATE runs SET last_round = MAX(COALESCE(last_round, 0), ?), updated_at = ? "
            "WHERE run_id = ?",
            (server_round, time.time(), run_id),
        )

    def set_checkpoint(self, run_id: int, server_round: int) -> None:
        self._run(
            "UPDATE runs SET last_checkpoint = MAX(COALESCE(last_checkpoint, 0), ?) "
            "WHERE run_id = ?",
            (server_round, run_id),
        )

    # -- pushes ----------------------------------------------------------------------------
    def pushes(self, run_id: int) -> list[PushRecord]:
        rows = self._run(
            "SELECT message_id, seq, fingerprint, datasite, message_type, round, expires_at, "
            "state FROM pushes WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        return [
            PushRecord(
                message_id=str(row[0]),
                seq=int(row[1]),
                fingerprint=str(row[2]),
                datasite=str(row[3]),
                message_type=str(row[4]),
                round=row[5],
                expires_at=float(row[6]),
                state=PushState(row[7]),
            )
            for row in rows
        ]

    def pushing(
        self,
        run_id: int,
        message_id: str,
        *,
        fingerprint: str,
        datasite: str,
        message_type: str,
        server_round: int | None,
        expires_at: float,
    ) -> None:
        with self._lock:
            seq = self._run(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM pushes WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            self._run(
                "INSERT INTO pushes (run_id, message_id, seq, fingerprint, datasite, "
                "message_type, round, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, message_id, seq, fingerprint, datasite, message_type, server_round,
                 expires_at, PushState.PUSHING),
            )  # fmt: skip

    def mark(self, run_id: int, message_id: str, state: PushState) -> None:
        self._run(
            "UPDATE pushes SET state = ? WHERE run_id = ? AND message_id = ?",
            (state, run_id, message_id),
        )

    def forget_push(self, run_id: int, message_id: str) -> None:
        """The send failed: nothing was handed over."""
        self._run("DELETE FROM pushes WHERE run_id = ? AND message_id = ?", (run_id, message_id))

    # -- replies ---------------------------------------------------------------------------
    def reply_path(self, run_id: int, message_id: str) -> Path:
        return self.root / str(run_id) / "replies" / f"{message_id}.msg"

    def store_reply(self, run_id: int, message_id: str, data: bytes) -> None:
        """Keep the reply the ServerApp got (file first, then the state: a crash in
        between leaves ``sent``, and the resumed run re-attaches to the reply)."""
        path = self.reply_path(run_id, message_id)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            raise StorageError(
                f"cannot keep the reply to {message_id} in {path.parent}: {exc}; check free "
                "space in the state directory (a run keeps every reply until it finishes)"
            ) from exc
        self.mark(run_id, message_id, PushState.RETURNED)

    def load_reply(self, run_id: int, message_id: str) -> bytes | None:
        try:
            return self.reply_path(run_id, message_id).read_bytes()
        except FileNotFoundError:
            return None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=int(row[0]),
        seed=int(row[1]),
        config_hash=str(row[2]),
        status=RunStatus(row[3]),
        pid=int(row[4]),
        started_at=float(row[5]),
        updated_at=float(row[6]),
        resumes=int(row[7]),
        last_round=row[8],
        last_checkpoint=row[9],
    )
