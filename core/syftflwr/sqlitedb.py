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
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from syftflwr.errors import StorageError

BUSY_TIMEOUT = 30.0
"""Seconds a write waits for another process's write to finish."""
T = TypeVar("T")


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
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                ":memory:" if self.path is None else str(self.path),
                timeout=BUSY_TIMEOUT,
                isolation_level=None,  # explicit transactions only
                check_same_thread=False,
            )
            self._db.row_factory = sqlite3.Row
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL").close()
                self._db.execute("PRAGMA synchronous=NORMAL").close()
            self._migrate(migrations)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot open the {what} {self.path or ':memory:'}: {exc}; "
                "check that the state directory is writable (SYFTFLWR state_dir)"
            ) from exc

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
        """Run a statement that changes the database; returns the rows it changed."""
        return self._execute(sql, args, fetch=False)[1]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A read-modify-write as one unit across threads and processes: ``BEGIN
        IMMEDIATE`` (waits up to :data:`BUSY_TIMEOUT` for other writers), COMMIT at the
        end, ROLLBACK on an exception. Holds this handle's lock throughout."""
        with self._lock:
            self.write("BEGIN IMMEDIATE")
            try:
                yield
                self.write("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK").close()
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
