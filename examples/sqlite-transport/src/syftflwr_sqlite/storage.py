"""The transport's real work: syftflwr's mailbox Storage on one SQLite file.

How it meets the storage contract (docs/mailbox.md, "The storage contract"):

* one row per object, ``objects(path PRIMARY KEY, parent, name, data)``; every folder
  above an object gets a row in ``folders(parent, name)`` when the object is written, so
  ``list`` names objects and sub-folders alike (folders are never removed: an empty
  folder lists as empty, as on a disk);
* ``put_if_absent`` is one ``INSERT`` in an immediate transaction: the primary key makes
  it exclusive, the transaction atomic, for threads, processes and every machine sharing
  the file through a filesystem whose locks work (a local disk; not most network shares:
  SQLite says so, and so must this transport's users);
* ``put`` is ``INSERT OR REPLACE``, ``delete`` a ``DELETE`` (a missing row is fine);
* ``get`` reads the size first (``length(data)`` does not load the blob), so an object
  above ``max_size`` is refused before it is read; ``read_head`` returns the first bytes
  and the size from ONE statement, so from one version of the object;
* there is no object size limit (a blob may hold up to 1 GB by default: users who send
  more set ``max_object_size`` and core chunks beneath it);
* every ``sqlite3.Error`` becomes a ``StorageError`` naming the object, the file and the
  fix; nothing else is read or written, and nothing a peer writes is ever executed or
  followed (no links, no files: rows).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from syftflwr.plugin import (
    BaseStorage,
    Buffer,
    ConfigError,
    MailboxSettings,
    StorageError,
    TransportContext,
    check_max_size,
    split_path,
    views,
)

from syftflwr_sqlite.plugin import NAME, PATH_ENV

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS objects (path TEXT PRIMARY KEY, parent TEXT NOT NULL, "
    "name TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS objects_by_parent ON objects (parent)",
    "CREATE TABLE IF NOT EXISTS folders (parent TEXT NOT NULL, name TEXT NOT NULL, "
    "PRIMARY KEY (parent, name))",
)
BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another writer's lock before failing."""


class SQLiteStorage(BaseStorage):
    """The mailbox in one SQLite file: one connection per thread, WAL journal."""

    def __init__(self, context: TransportContext, settings: MailboxSettings) -> None:
        configured = context.options.get("path") or context.env.get(PATH_ENV)
        if not configured:
            raise ConfigError(
                f"the {NAME} transport needs the path of the shared SQLite file",
                key=f"tool.syftflwr.transport.{NAME}.path",
                fix=f'set path = "/shared/mailbox.sqlite" there, or export {PATH_ENV}=...',
            )
        self.path = Path(str(configured)).expanduser().absolute()
        self.url = f"sqlite://{self.path}"
        self._local = threading.local()
        with self._transaction("open", str(self.path)) as db:
            for statement in SCHEMA:
                db.execute(statement)

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # -- connections and errors --------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _error(self, what: str, path: str, exc: Exception) -> StorageError:
        return StorageError(
            f"could not {what} {path} in the SQLite mailbox {self.path}: {exc}\n"
            "  fix: check that the file is readable and writable by this user, on a disk "
            "whose file locks work (not a network share), and not damaged "
            f"(sqlite3 {self.path} 'PRAGMA integrity_check')"
        )

    @contextmanager
    def _transaction(self, what: str, path: str) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked from the start) transaction: no deadlock between
        two readers upgrading to writers."""
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(what, path, exc) from exc
        try:
            yield db
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise self._error(what, path, exc) from exc
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(what, path, exc) from exc

    def _query(self, what: str, path: str, sql: str, *args: object) -> list[tuple[object, ...]]:
        try:
            return self._db().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(what, path, exc) from exc

    # -- the Storage protocol ----------------------------------------------------------------
    @staticmethod
    def _folders(db: sqlite3.Connection, components: Sequence[str]) -> None:
        """A row for each folder of ``components`` (in its parent), so ``list`` sees it."""
        for depth in range(len(components)):
            db.execute(
                "INSERT OR IGNORE INTO folders (parent, name) VALUES (?, ?)",
                ("/".join(components[:depth]), components[depth]),
            )

    def _write(self, db: sqlite3.Connection, path: str, parts: Sequence[Buffer], verb: str) -> None:
        components = split_path(path)
        self._folders(db, components[:-1])
        data = b"".join(views(parts))
        db.execute(
            f"{verb} INTO objects (path, parent, name, data) VALUES (?, ?, ?, ?)",
            (path, "/".join(components[:-1]), components[-1], data),
        )

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        try:
            with self._transaction("create", path) as db:
                self._write(db, path, parts, "INSERT")
        except sqlite3.IntegrityError:
            return False  # the primary key: another writer was first
        return True

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        with self._transaction("write", path) as db:
            self._write(db, path, parts, "INSERT OR REPLACE")

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        split_path(path)
        if max_size is not None:
            rows = self._query("read", path, "SELECT length(data) FROM objects WHERE path=?", path)
            if not rows:
                return None
            check_max_size(path, int(str(rows[0][0])), max_size)
        rows = self._query("read", path, "SELECT data FROM objects WHERE path=?", path)
        if not rows:
            return None
        data = rows[0][0]
        if not isinstance(data, bytes):
            raise self._error("read", path, TypeError(f"a {type(data).__name__}, not a blob"))
        check_max_size(path, len(data), max_size)  # replaced in between: still checked
        return data

    def read_head(self, path: str, size: int) -> tuple[Buffer, int] | None:
        split_path(path)
        sql = "SELECT substr(data, 1, ?), length(data) FROM objects WHERE path=?"
        rows = self._query("read", path, sql, max(size, 0), path)
        if not rows:
            return None
        head, total = rows[0]
        return (head if isinstance(head, bytes) else b""), int(str(total))  # "" of an empty blob

    def list(self, folder: str) -> list[str]:
        if folder:
            split_path(folder)
        sql = (
            "SELECT name FROM objects WHERE parent=? UNION SELECT name FROM folders WHERE parent=?"
        )
        return [str(row[0]) for row in self._query("list", folder or "/", sql, folder, folder)]

    def delete(self, path: str) -> None:
        split_path(path)
        with self._transaction("delete", path) as db:
            db.execute("DELETE FROM objects WHERE path=?", (path,))

    def makedirs(self, folder: str) -> None:
        components = split_path(folder)
        with self._transaction("create the folder", folder) as db:
            self._folders(db, components)
