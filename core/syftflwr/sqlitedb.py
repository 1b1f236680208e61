"""SQLite files in the state dir, shared by the threads of a process and by processes
(runners sharing one ``SYFTFLWR_HOME``): open, migrate, query, write — one helper for
every database (the mailbox and run journals, the trust pins). Rows are
:class:`sqlite3.Row`: a dataclass whose fields are named after columns is selected with
:func:`columns` and built with :func:`record`.

The rule that keeps them free of "database is locked": no statement outlives its call.
A SELECT cursor left open on the connection holds a read snapshot (WAL); a write on that
connection after another process committed must upgrade the stale snapshot, which SQLite
refuses at once with SQLITE_BUSY_SNAPSHOT — the busy timeout does not apply. So every
query fetches all its rows and closes its cursor under the connection's lock, and a
read-modify-write runs in :meth:`Database.transaction` (``BEGIN IMMEDIATE``: the write
lock is taken first, waiting up to the busy timeout, before anything is read).

Plain writes from several threads are committed together (group commit): each commit
would otherwise wait for the one before it, so the writes that queue while one commit
runs are run next by one of their threads in ONE transaction, each statement in its own
savepoint (a statement that fails is undone alone and only its caller gets the error).
That leader closes every cursor before any caller returns, so the rule above still
holds; each caller returns once its statement is committed. A write that finds the
connection free runs at once in its own autocommit transaction, as before.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from syftflwr.errors import StorageError

BUSY_TIMEOUT = 30.0
"""Seconds a write waits for another process's write to finish."""
T = TypeVar("T")

_SAVEPOINT = "syftflwr_write"


def _groupable(sql: str) -> bool:
    """Whether :meth:`Database.write` may group ``sql`` with others in one transaction:
    INSERT, UPDATE, DELETE, REPLACE; any other (PRAGMA, CREATE, transaction control)
    runs on its own, as it may not be valid inside a transaction."""
    return sql.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))


def columns(cls: type[Any]) -> str:
    """The SELECT list of the dataclass ``cls``, whose fields are named after columns."""
    return ", ".join(f.name for f in dataclasses.fields(cls))


def record(cls: type[T], row: sqlite3.Row, **converted: Any) -> T:
    """``cls`` from a row selected with :func:`columns`; ``converted`` replaces the fields
    that need more than SQLite's types (enums, booleans)."""
    return cls(**{**dict(row), **converted})


class Database:
    """A thread-safe handle on one SQLite file (WAL) or, with ``path=None``, an in-memory
    database (nothing survives the process).

    :param what: names the database in errors ("mailbox journal").
    :param migrations: statements by target schema version (``PRAGMA user_version``),
        applied in order in one transaction; a file newer than the code is refused.
    """

    def __init__(
        self, path: str | Path | None, *, what: str, migrations: Mapping[int, Sequence[str]]
    ) -> None:
        self.path = None if path is None else Path(path)
        self.what = what
        self._lock = threading.RLock()
        self._owner: int | None = None
        """The thread inside :meth:`transaction` (its writes join that transaction)."""
        self._queued = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False
        """A thread is running the queued writes (or waiting for the lock to): a write
        queues behind it, woken once committed or to lead the next group."""
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            self._migrate(migrations)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot open the {what} {self.path or ':memory:'}: {exc}; "
                "check that the state directory is writable (SYFTFLWR state_dir)"
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        """The connection, in WAL mode. Setting the mode can meet "database is locked"
        at once, the busy timeout notwithstanding: another process's last connection
        checkpointing and removing the WAL as it closes, or one recovering it (processes
        opening one store per operation, e.g. the trust store). Tried again until
        :data:`BUSY_TIMEOUT`, like any other wait for a lock."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.005
        while True:
            db = sqlite3.connect(
                ":memory:" if self.path is None else str(self.path),
                timeout=BUSY_TIMEOUT,
                isolation_level=None,  # explicit transactions only
                check_same_thread=False,
            )
            db.row_factory = sqlite3.Row
            try:
                if self.path is not None:
                    db.execute("PRAGMA journal_mode=WAL").close()
                    db.execute("PRAGMA synchronous=NORMAL").close()
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _migrate(self, migrations: Mapping[int, Sequence[str]]) -> None:
        latest = max(migrations)
        current = self.one("PRAGMA user_version")
        if current is not None and current[0] > latest:
            raise StorageError(
                f"the {self.what} {self.path} has schema version {current[0]}, newer than "
                f"this syftflwr ({latest}); upgrade syftflwr"
            )
        if current is not None and current[0] == latest:
            return
        with self.transaction():
            row = self.one("PRAGMA user_version")
            version = 0 if row is None else int(row[0])
            for target in sorted(v for v in migrations if v > version):
                for statement in migrations[target]:
                    self.write(statement)
                self.write(f"PRAGMA user_version = {int(target)}")

    def _execute(self, sql: str, args: Iterable[Any], fetch: bool) -> tuple[list[Any], int]:
        with self._lock:
            return self._execute_locked(sql, args, fetch)

    def _execute_locked(self, sql: str, args: Iterable[Any], fetch: bool) -> tuple[list[Any], int]:
        try:
            cursor = self._db.execute(sql, tuple(args))
            try:
                return (cursor.fetchall() if fetch else []), cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.what} {self.path or ':memory:'}: {exc}") from exc

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """All rows of ``sql`` (the statement is finished when this returns)."""
        return self._execute(sql, args, fetch=True)[0]

    def one(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row of ``sql``, or None."""
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def write(self, sql: str, args: Iterable[Any] = ()) -> int:
        """Run a statement that changes the database; returns the rows it changed, once
        the statement is committed (in the caller's :meth:`transaction`, if it holds one:
        then at that transaction's end). Concurrent writes are committed together (see
        the module docstring)."""
        # Nothing queued and the connection free (or this thread's transaction): run at once.
        if not self._leading and self._lock.acquire(False):
            try:
                return self._execute_locked(sql, args, fetch=False)[1]
            finally:
                self._lock.release()
        if self._owner == threading.get_ident() or not _groupable(sql):
            return self._execute(sql, args, fetch=False)[1]
        item = _Write(sql, tuple(args))
        with self._queued:
            self._queue.append(item)
            item.lead, self._leading = not self._leading, True
        if not item.lead:
            try:
                item.wake.wait()  # committed (or failed) by a leader, or made the leader
            except BaseException:  # KeyboardInterrupt: drop the write if nobody took it
                self._abandon(item)
                raise
        if not item.done:
            self._lead(item)
        if item.error is not None:
            raise StorageError(f"{self.what} {self.path or ':memory:'}: {item.error}") from (
                item.error
            )
        return item.rowcount

    @property
    def waiting_writes(self) -> int:
        """Writes queued for the next group commit (for observability and tests)."""
        with self._queued:
            return len(self._queue)

    def _lead(self, own: _Write) -> None:
        """Run every queued write (``own`` among them), then hand over: a writer that
        queued meanwhile leads the next group."""
        batch: list[_Write] = []
        try:
            with self._lock:  # after a transaction() or a query of another thread
                with self._queued:
                    batch, self._queue = self._queue, []
                try:
                    if len(batch) == 1:
                        self._run_one(batch[0])
                    else:
                        self._run_grouped(batch)
                except BaseException as exc:  # interrupted: report no write as committed
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK").close()
                    for item in batch:
                        if item.error is None:
                            item.error = sqlite3.OperationalError(f"write interrupted: {exc!r}")
                    raise
        finally:
            with self._queued:
                if not batch:  # interrupted while waiting for the lock: nothing ran
                    self._queue.remove(own)
                for item in batch:
                    item.done = True
                successor = self._hand_over()
            for item in batch:
                item.wake.set()
            if successor is not None:
                successor.wake.set()

    def _hand_over(self) -> _Write | None:
        """The writer that leads the next group, if any queued (under ``_queued``)."""
        successor = self._queue[0] if self._queue else None
        if successor is not None:
            successor.lead = True
        self._leading = successor is not None
        return successor

    def _abandon(self, item: _Write) -> None:
        """The caller of ``item`` stopped waiting: its write is dropped unless a leader
        took it already, and the lead handed to it goes to the next writer."""
        with self._queued:
            if item.done or item not in self._queue:  # committed, or being committed
                return
            self._queue.remove(item)
            successor = self._hand_over() if item.lead else None
        if successor is not None:
            successor.wake.set()

    def _run_one(self, item: _Write) -> None:
        """``item``'s statement, alone or inside a group's savepoint: its rowcount, or
        its error, recorded on it."""
        try:
            cursor = self._db.execute(item.sql, item.args)
            try:
                item.rowcount = cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            item.error = exc

    def _run_grouped(self, batch: list[_Write]) -> None:
        """``batch`` in one ``BEGIN IMMEDIATE`` ... ``COMMIT``, each statement in a
        savepoint. A statement whose error ended the whole transaction (``OR
        ROLLBACK``, some I/O errors) fails alone and the others are run again."""
        pending = batch
        while pending:
            try:
                self._db.execute("BEGIN IMMEDIATE").close()
                for item in pending:
                    self._db.execute(f"SAVEPOINT {_SAVEPOINT}").close()
                    self._run_one(item)
                    if item.error is not None:
                        if not self._db.in_transaction:
                            break
                        self._db.execute(f"ROLLBACK TO {_SAVEPOINT}").close()
                    self._db.execute(f"RELEASE {_SAVEPOINT}").close()
                else:
                    self._db.execute("COMMIT").close()
                    return
                pending = [item for item in pending if item.error is None]
            except sqlite3.Error as exc:  # BEGIN, a savepoint or COMMIT: nothing commits
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK").close()
                for item in pending:
                    if item.error is None:
                        item.error = exc
                return

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A read-modify-write as one unit across threads and processes: ``BEGIN
        IMMEDIATE`` (waits up to :data:`BUSY_TIMEOUT` for other writers), COMMIT at the
        end, ROLLBACK on an exception. Holds this handle's lock throughout."""
        with self._lock:
            outer, self._owner = self._owner, threading.get_ident()
            try:
                self.write("BEGIN IMMEDIATE")
                try:
                    yield
                    self.write("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK").close()
                    raise
            finally:
                self._owner = outer

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclasses.dataclass(slots=True)
class _Write:
    """One caller's statement in a group commit, and what became of it."""

    sql: str
    args: tuple[Any, ...]
    rowcount: int = -1
    error: sqlite3.Error | None = None
    done: bool = False
    lead: bool = False
    """Its thread runs the next group (it found no leader, or one handed over to it)."""
    wake: threading.Event = dataclasses.field(default_factory=threading.Event)
