"""The aggregator's run journal: what each run sent and what came back, on disk, so a
run killed mid-way can be resumed (``syftflwr run --resume``, docs/resume.md).

``{state_dir}/runs/runs.sqlite`` (sqlite3, WAL) holds two tables:

* ``runs`` — one row per run: run id, the seed of Python's and numpy's random number
  generators, a hash of the run config, ``status`` (``running`` -> ``finished`` |
  ``failed`` | ``stopped`` | ``abandoned``), the process id, the latest round and checkpoint, and
  whether it sent its stop messages;
* ``pushes`` — one row per instruction: its fingerprint and the digests of its parts
  (see :mod:`syftflwr.flower.fingerprint`), envelope message id, datasite, type, round,
  expiry and state (``pushing`` -> ``sent`` -> ``returned`` | ``gave_up``); a returned
  one also says where its reply came in the order the ServerApp got replies
  (``reply_seq``) and which call handed it over (``batch``).

Each reply handed to the ServerApp is kept as the encoded Flower message in
``{state_dir}/runs/<run id>/replies/<message id>.msg`` (written before its row says
``returned``), and deleted when the run finishes: a run in progress holds one copy of
every reply it received. A finished (or abandoned) run keeps only its ``runs`` row.

This is the aggregator's *run* journal; the mailbox journal (``mailbox/journal.py``)
records envelopes per transport and knows nothing about rounds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from syftflwr import processes
from syftflwr.atomic import atomic_write
from syftflwr.errors import StorageError
from syftflwr.roles import BlobRef
from syftflwr.sqlitedb import Database, columns, record

RUNS_DIR = "runs"
DATABASE = "runs.sqlite"
REPLIES = "replies"

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
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
    ),
    # The order replies reached the ServerApp (reply_seq, and the call that returned
    # them: batch), so a replay hands them over in that order (float sums depend on it);
    # digests of each instruction's parts, so a divergence names what changed; whether
    # the run sent its stop messages.
    2: (
        "ALTER TABLE pushes ADD COLUMN reply_seq INTEGER",
        "ALTER TABLE pushes ADD COLUMN batch INTEGER",
        "ALTER TABLE pushes ADD COLUMN parts TEXT",
        "ALTER TABLE runs ADD COLUMN stops_sent INTEGER NOT NULL DEFAULT 0",
    ),
    # Requests a run may have left in storage for nobody (its stop messages; an abandoned
    # run's unanswered instructions): the aggregator's next new run removes them.
    3: (
        """CREATE TABLE IF NOT EXISTS leftovers (
            run_id INTEGER NOT NULL, message_id TEXT NOT NULL, datasite TEXT NOT NULL,
            expires_at REAL NOT NULL, kind TEXT NOT NULL, PRIMARY KEY (run_id, message_id))""",
    ),
    # Shared model blobs the run stored (their public part: never the content key) and
    # the instructions naming them, so a resumed run keeps them until those are done.
    4: (
        """CREATE TABLE IF NOT EXISTS blobs (
            run_id INTEGER NOT NULL, name TEXT NOT NULL, sha256 TEXT NOT NULL,
            size INTEGER NOT NULL, message_ids TEXT NOT NULL, dropped INTEGER NOT NULL,
            PRIMARY KEY (run_id, name))""",
    ),
}
"""Schema migrations by target version, applied in order inside one transaction. A
journal of schema 1 (syftflwr before reply order was recorded) is migrated; its runs
with replies already returned cannot be replayed in order (see ``unordered_replies``)."""
SCHEMA_VERSION = max(MIGRATIONS)


class RunStatus(StrEnum):
    RUNNING = "running"
    """Started and not ended: still running, or killed (resumable)."""
    FINISHED = "finished"
    FAILED = "failed"
    """The ServerApp raised (resumable, e.g. after fixing the bug)."""
    STOPPED = "stopped"
    """Stopped by a signal (SIGINT/SIGTERM) before it finished (resumable)."""
    ABANDONED = "abandoned"
    """Superseded by a fresh run."""


RESUMABLE = frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.STOPPED})


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
    stops_sent: bool = False
    """The run sent its stop messages (its ServerApp had finished)."""

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
    reply_seq: int | None = None
    """Position of its reply among all replies the ServerApp got (``returned`` only)."""
    batch: int | None = None
    """The ``send_and_receive``/``pull_messages`` call that handed the reply over."""
    parts: dict[str, str] = field(default_factory=dict)
    """Digests of the instruction's parts (``fingerprint.describe_instruction``)."""


@dataclass(frozen=True, slots=True)
class Leftover:
    """A request an ended run may have left in storage, which nobody will read."""

    run_id: int
    message_id: str
    datasite: str
    expires_at: float
    kind: str
    """``stop`` or ``instruction`` (of an abandoned run)."""


def pid_alive(pid: int) -> bool:
    """Whether ANOTHER process with ``pid`` exists on this machine (another aggregator
    may still be running the run); this process never counts."""
    return pid != os.getpid() and processes.pid_alive(pid)


class RunJournal:
    """Thread-safe handle on ``{root}/runs.sqlite`` and the stored replies under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / DATABASE
        self._db = Database(self.path, what="run journal", migrations=MIGRATIONS)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> RunJournal:
        return cls(Path(state_dir) / RUNS_DIR)

    # -- runs ------------------------------------------------------------------------------
    def latest(self) -> RunRecord | None:
        row = self._db.one(
            f"SELECT {columns(RunRecord)} FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
        )
        return None if row is None else _run_record(row)

    def get(self, run_id: int) -> RunRecord | None:
        row = self._db.one(f"SELECT {columns(RunRecord)} FROM runs WHERE run_id = ?", (run_id,))
        return None if row is None else _run_record(row)

    def start(self, run_id: int, *, seed: int, config_hash: str) -> RunRecord:
        now = time.time()
        self._db.write(
            "INSERT INTO runs (run_id, seed, config_hash, status, pid, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, seed, config_hash, RunStatus.RUNNING, os.getpid(), now, now),
        )
        record = self.get(run_id)
        assert record is not None
        return record

    def reopen(self, run_id: int) -> RunRecord:
        """Mark a stopped run running again, owned by this process."""
        self._db.write(
            "UPDATE runs SET status = ?, pid = ?, updated_at = ?, resumes = resumes + 1 "
            "WHERE run_id = ?",
            (RunStatus.RUNNING, os.getpid(), time.time(), run_id),
        )
        record = self.get(run_id)
        assert record is not None
        return record

    def end(self, run_id: int, status: RunStatus) -> None:
        """Record how the run ended; a finished or abandoned run's replies are deleted
        (the checkpoints and the run's result file stay)."""
        self._db.write(
            "UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?",
            (status, time.time(), run_id),
        )
        if status is RunStatus.ABANDONED:  # its unanswered instructions are for nobody now
            unanswered = {p.message_id: (p.datasite, p.expires_at) for p in self.pushes(run_id)
                          if p.state is not PushState.RETURNED}  # fmt: skip
            self._leave(run_id, unanswered, "instruction")
        if status in (RunStatus.FINISHED, RunStatus.ABANDONED):  # nothing left to replay
            self._db.write("DELETE FROM pushes WHERE run_id = ?", (run_id,))
            folder = self.root / str(run_id)
            shutil.rmtree(folder / REPLIES, ignore_errors=True)
            with contextlib.suppress(OSError):  # kept if it holds the result file
                folder.rmdir()

    def set_round(self, run_id: int, server_round: int) -> None:
        self._db.write(
            "UPDATE runs SET last_round = MAX(COALESCE(last_round, 0), ?), updated_at = ? "
            "WHERE run_id = ?",
            (server_round, time.time(), run_id),
        )

    def stops_sent(self, run_id: int, stops: Mapping[str, tuple[str, float]]) -> None:
        """The run sent its stop messages: ``{message id: (datasite, expires_at)}``."""
        with self._db.transaction():
            self._leave(run_id, stops, "stop")
            self._db.write("UPDATE runs SET stops_sent = 1, updated_at = ? WHERE run_id = ?",
                      (time.time(), run_id))  # fmt: skip

    def _leave(self, run_id: int, requests: Mapping[str, tuple[str, float]], kind: str) -> None:
        for message_id, (datasite, expires_at) in requests.items():
            self._db.write("INSERT OR REPLACE INTO leftovers VALUES (?, ?, ?, ?, ?)",
                      (run_id, message_id, datasite, expires_at, kind))  # fmt: skip

    def leftovers(self, run_id: int) -> list[Leftover]:
        """Requests other runs than ``run_id`` may have left in storage for nobody."""
        rows = self._db.query(
            f"SELECT {columns(Leftover)} FROM leftovers WHERE run_id != ?", (run_id,)
        )
        return [record(Leftover, r) for r in rows]

    def removed(self, leftover: Leftover) -> None:
        self._db.write("DELETE FROM leftovers WHERE run_id = ? AND message_id = ?",
                  (leftover.run_id, leftover.message_id))  # fmt: skip

    def set_checkpoint(self, run_id: int, server_round: int) -> None:
        self._db.write(
            "UPDATE runs SET last_checkpoint = MAX(COALESCE(last_checkpoint, 0), ?) "
            "WHERE run_id = ?",
            (server_round, run_id),
        )

    # -- pushes ----------------------------------------------------------------------------
    def pushes(self, run_id: int) -> list[PushRecord]:
        rows = self._db.query(
            f"SELECT {columns(PushRecord)} FROM pushes WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [
            record(PushRecord, r, state=PushState(r["state"]), parts=json.loads(r["parts"] or "{}"))
            for r in rows
        ]

    def unordered_replies(self, run_id: int) -> int:
        """Replies the run returned without recording their order (journaled by a
        syftflwr before schema 2): such a run cannot be replayed as it ran."""
        row = self._db.one(
            "SELECT COUNT(*) FROM pushes WHERE run_id = ? AND state = ? AND reply_seq IS NULL",
            (run_id, PushState.RETURNED),
        )
        return int(row[0]) if row else 0

    def last_order(self, run_id: int) -> tuple[int, int]:
        """The highest ``reply_seq`` and ``batch`` the run recorded (0 if none)."""
        row = self._db.one(
            "SELECT COALESCE(MAX(reply_seq), 0), COALESCE(MAX(batch), 0) FROM pushes "
            "WHERE run_id = ?",
            (run_id,),
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

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
        parts: dict[str, str] | None = None,
    ) -> None:
        with self._db.transaction():
            row = self._db.one(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM pushes WHERE run_id = ?", (run_id,)
            )
            seq = row[0] if row else 1
            self._db.write(
                "INSERT INTO pushes (run_id, message_id, seq, fingerprint, datasite, "
                "message_type, round, expires_at, state, parts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, message_id, seq, fingerprint, datasite, message_type, server_round,
                 expires_at, PushState.PUSHING, json.dumps(parts or {}, sort_keys=True)),
            )  # fmt: skip

    def mark(self, run_id: int, message_id: str, state: PushState) -> None:
        self._db.write(
            "UPDATE pushes SET state = ? WHERE run_id = ? AND message_id = ?",
            (state, run_id, message_id),
        )

    def forget_push(self, run_id: int, message_id: str) -> None:
        """The send failed: nothing was handed over."""
        self._db.write(
            "DELETE FROM pushes WHERE run_id = ? AND message_id = ?", (run_id, message_id)
        )

    # -- shared blobs ----------------------------------------------------------------------
    def blob_used(self, run_id: int, ref: BlobRef, message_ids: Sequence[str]) -> None:
        """Instructions ``message_ids`` name blob ``ref`` (recorded before they are sent)."""
        with self._db.transaction():
            row = self._db.one(
                "SELECT message_ids FROM blobs WHERE run_id = ? AND name = ?", (run_id, ref.name)
            )
            ids = json.loads(row[0]) if row else []
            ids += [i for i in message_ids if i not in ids]
            self._db.write(
                "INSERT OR REPLACE INTO blobs (run_id, name, sha256, size, message_ids, "
                "dropped) VALUES (?, ?, ?, ?, ?, 0)",
                (run_id, ref.name, ref.sha256, ref.size, json.dumps(ids)),
            )

    def blob_dropped(self, run_id: int, name: str) -> None:
        self._db.write("UPDATE blobs SET dropped = 1 WHERE run_id = ? AND name = ?",
                       (run_id, name))  # fmt: skip

    def blobs(self, run_id: int) -> list[tuple[BlobRef, list[str]]]:
        """The run's blobs not dropped yet, each with the instructions naming it."""
        rows = self._db.query(
            "SELECT name, sha256, size, message_ids FROM blobs WHERE run_id = ? AND dropped = 0",
            (run_id,),
        )
        return [(BlobRef(r[0], r[1], int(r[2])), list(json.loads(r[3]))) for r in rows]

    # -- replies ---------------------------------------------------------------------------
    def reply_path(self, run_id: int, message_id: str) -> Path:
        return self.root / str(run_id) / REPLIES / f"{message_id}.msg"

    def store_reply(
        self,
        run_id: int,
        message_id: str,
        data: bytes,
        *,
        reply_seq: int | None = None,
        batch: int | None = None,
    ) -> None:
        """Keep the reply the ServerApp got, and where it came in the order of replies
        (file first, then the state: a crash in between leaves ``sent``, and the resumed
        run re-attaches to the reply)."""
        path = self.reply_path(run_id, message_id)
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise StorageError(
                f"cannot keep the reply to {message_id} in {path.parent}: {exc}; check free "
                "space in the state directory (a run keeps every reply until it finishes)"
            ) from exc
        self._db.write(
            "UPDATE pushes SET state = ?, reply_seq = ?, batch = ? "
            "WHERE run_id = ? AND message_id = ?",
            (PushState.RETURNED, reply_seq, batch, run_id, message_id),
        )

    def load_reply(self, run_id: int, message_id: str) -> bytes | None:
        try:
            return self.reply_path(run_id, message_id).read_bytes()
        except FileNotFoundError:
            return None

    def close(self) -> None:
        self._db.close()


def _run_record(row: sqlite3.Row) -> RunRecord:
    status = RunStatus(row["status"])
    return record(RunRecord, row, status=status, stops_sent=bool(row["stops_sent"]))
