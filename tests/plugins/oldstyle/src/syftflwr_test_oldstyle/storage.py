"""syftflwr's Storage protocol over one SQLite file: objects are rows, folders are
implicit (plus the ones ``makedirs`` records). SQLite gives the atomicity the mailbox
needs: ``INSERT OR IGNORE`` is an exclusive create, ``INSERT OR REPLACE`` an atomic
replace, across threads and processes (WAL, a generous busy timeout)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from syftflwr.envelope import Buffer
from syftflwr.errors import StorageError
from syftflwr.mailbox.storage import BaseStorage, check_max_size, split_path, views

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (path TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY);
"""


class SqliteStorage(BaseStorage):
    def __init__(self, database: Path) -> None:
        self.database = database
        self._local = threading.local()
        database.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            try:
                db = sqlite3.connect(self.database, timeout=60, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self.database}: {exc}") from exc
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def _run(self, what: str, path: str, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._db().execute(sql, args)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot {what} {path} in {self.database}: {exc}") from exc

    @staticmethod
    def _blob(parts: Sequence[Buffer]) -> bytes:
        return b"".join(views(parts))

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        split_path(path)
        sql = "INSERT OR IGNORE INTO objects (path, data) VALUES (?, ?)"
        return self._run("write", path, sql, (path, self._blob(parts))).rowcount == 1

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        split_path(path)
        sql = "INSERT OR REPLACE INTO objects (path, data) VALUES (?, ?)"
        self._run("write", path, sql, (path, self._blob(parts)))

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        split_path(path)
        limit = -1 if max_size is None else max_size
        sql = (
            "SELECT length(data), CASE WHEN ? < 0 OR length(data) <= ? THEN data END"
            " FROM objects WHERE path = ?"
        )
        row = self._run("read", path, sql, (limit, limit, path)).fetchone()
        if row is None:
            return None
        check_max_size(path, row[0], max_size)
        return bytes(row[1])

    def list(self, folder: str) -> list[str]:
        prefix = "/".join(split_path(folder)) + "/" if folder else ""
        names: set[str] = set()
        for table in ("objects", "folders"):
            sql = f"SELECT path FROM {table} WHERE substr(path, 1, ?) = ?"
            for (path,) in self._run("list", folder, sql, (len(prefix), prefix)):
                names.add(path[len(prefix) :].split("/", 1)[0])
        names.discard("")
        return sorted(names)

    def delete(self, path: str) -> None:
        split_path(path)
        self._run("delete", path, "DELETE FROM objects WHERE path = ?", (path,))

    def makedirs(self, folder: str) -> None:
        parts = split_path(folder)
        for end in range(1, len(parts) + 1):
            sql = "INSERT OR IGNORE INTO folders (path) VALUES (?)"
            self._run("create folder", folder, sql, ("/".join(parts[:end]),))
