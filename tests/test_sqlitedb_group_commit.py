"""Group commit of concurrent ``Database.write`` calls (syftflwr.sqlitedb): statements
that queue while a commit runs are committed together, each in its own savepoint, and
every caller still returns only once its own statement is committed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from syftflwr import sqlitedb
from syftflwr.errors import StorageError
from syftflwr.mailbox.journal import Journal
from syftflwr.sqlitedb import Database

MIGRATIONS = {
    1: (
        "CREATE TABLE items (id TEXT PRIMARY KEY, writer TEXT NOT NULL, n INTEGER NOT NULL)",
        "CREATE TABLE counters (id TEXT PRIMARY KEY, value INTEGER NOT NULL CHECK (value >= 0))",
    )
}
THREADS = 32


def open_db(path: Path | None) -> Database:
    return Database(path, what="test database", migrations=MIGRATIONS)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` s pass (no assertion on time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@contextmanager
def queued_behind_a_transaction(db: Database, writers: int) -> Iterator[None]:
    """Hold ``db``'s transaction while the body starts ``writers`` threads that write,
    until all of them are queued: they then run as one group once it ends."""
    with db.transaction():
        yield
        wait_until(lambda: getattr(db, "waiting_writes", 0) >= writers)


class Trace:
    """Counts the transactions that wrote, from SQLite's statement trace of ``db``: a
    write statement outside ``BEGIN`` ... ``COMMIT`` is a transaction of its own."""

    def __init__(self, db: Database) -> None:
        self.transactions = 0
        self.statements = 0
        self._open = self._wrote = False
        db._db.set_trace_callback(self._traced)

    def _traced(self, sql: str) -> None:
        words = sql.upper().split()
        if words[0] == "BEGIN":
            self._open, self._wrote = True, False
        elif words[0] in ("COMMIT", "END") or words == ["ROLLBACK"]:
            self._open = False
        elif words[0] in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            self.statements += 1
            if not (self._open and self._wrote):
                self.transactions += 1
            self._wrote = self._open


def start_threads(target: Callable[[int], None], n: int) -> Callable[[], list[BaseException]]:
    """Run ``target(i)`` in ``n`` threads; the result joins them and returns their errors."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()

    def join() -> list[BaseException]:
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        return errors

    return join


def run_threads(target: Callable[[int], None], n: int) -> list[BaseException]:
    return start_threads(target, n)()


def test_concurrent_writes_share_one_transaction(tmp_path: Path) -> None:
    """The test that fails on one-transaction-per-write: 32 writes queued behind a
    commit are committed in one transaction, each with its own rowcount."""
    db = open_db(tmp_path / "db.sqlite")
    db.write("INSERT INTO items VALUES ('seed', 'x', 0)")
    trace = Trace(db)
    rowcounts: dict[int, int] = {}

    def write(i: int) -> None:
        if i % 2:
            rowcounts[i] = db.write("INSERT INTO items VALUES (?, 't', ?)", (f"k{i}", i))
        else:  # matches nothing: rowcount 0
            rowcounts[i] = db.write("UPDATE items SET n = 1 WHERE id = ?", (f"none{i}",))

    with queued_behind_a_transaction(db, THREADS):
        join = start_threads(write, THREADS)
    assert join() == []

    assert rowcounts == {i: i % 2 for i in range(THREADS)}
    assert trace.statements == THREADS
    assert trace.transactions < THREADS, (
        f"{trace.transactions} transactions for {THREADS} concurrent writes"
    )
    assert trace.transactions == 1


def test_a_failing_statement_fails_alone(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db.sqlite")
    db.write("INSERT INTO items VALUES ('taken', 'x', 0)")
    db.write("INSERT INTO counters VALUES ('c', 0)")
    trace = Trace(db)
    failures: dict[int, BaseException] = {}
    bad = {5: ("INSERT INTO items VALUES ('taken', 'dup', 5)", ()),  # primary key
           9: ("UPDATE counters SET value = value - 1 WHERE id = 'c'", ()),  # CHECK
           13: ("INSERT OR ROLLBACK INTO items VALUES ('taken', 'dup', 13)", ())}  # fmt: skip

    def write(i: int) -> None:
        sql, args = bad.get(i, ("INSERT INTO items VALUES (?, 't', ?)", (f"k{i}", i)))
        try:
            assert db.write(sql, args) == 1
        except StorageError as exc:
            failures[i] = exc

    with queued_behind_a_transaction(db, THREADS):
        join = start_threads(write, THREADS)
    assert join() == []

    assert sorted(failures) == sorted(bad)
    assert "UNIQUE constraint failed" in str(failures[5])
    assert "CHECK constraint failed" in str(failures[9])
    assert isinstance(failures[13].__cause__, sqlite3.IntegrityError)
    rows = {r["id"]: r["n"] for r in db.query("SELECT id, n FROM items")}
    assert rows == {"taken": 0, **{f"k{i}": i for i in range(THREADS) if i not in bad}}
    assert db.one("SELECT value FROM counters")[0] == 0  # type: ignore[index]
    # The OR ROLLBACK one ended the shared transaction: the rest were run again.
    assert trace.transactions <= 3
    assert not db._db.in_transaction


def test_writes_in_a_transaction_stay_in_it(tmp_path: Path) -> None:
    """A write from the thread holding transaction() joins it (rolled back with it), and
    another thread's write waits for it to end."""
    db = open_db(tmp_path / "db.sqlite")
    other: list[int] = []
    with pytest.raises(RuntimeError), db.transaction():
        assert db.write("INSERT INTO items VALUES ('a', 'x', 1)") == 1
        writer = threading.Thread(
            target=lambda: other.append(db.write("INSERT INTO items VALUES ('b', 'y', 2)"))
        )
        writer.start()
        assert wait_until(lambda: db.waiting_writes == 1)
        assert db.one("SELECT COUNT(*) FROM items")[0] == 1  # type: ignore[index]
        raise RuntimeError("undo")
    writer.join()
    assert other == [1]
    assert [r["id"] for r in db.query("SELECT id FROM items")] == ["b"]


def test_in_memory_database_groups_too() -> None:
    db = open_db(None)
    errors = run_threads(
        lambda i: db.write("INSERT INTO items VALUES (?, 't', ?)", (f"k{i}", i)), THREADS
    )
    assert errors == []
    assert db.one("SELECT COUNT(*) FROM items")[0] == THREADS  # type: ignore[index]


def test_journal_claims_keep_their_rowcount_semantics(tmp_path: Path) -> None:
    """``Journal.claimed`` relies on the rowcount of an upsert with a WHERE: of the
    concurrent claims of one request after it is answered, none wins."""
    journal = Journal(tmp_path / "journal.sqlite")
    claim = {"sender": "s@x.org", "app": "a", "endpoint": "e"}
    assert journal.claimed("m1", owner="first", **claim)
    journal.answered("m1")
    results: dict[int, bool] = {}

    def work(i: int) -> None:
        results[i] = journal.claimed("m1" if i % 2 else f"new{i}", owner=f"o{i}", **claim)

    assert run_threads(work, THREADS) == []
    assert results == {i: not i % 2 for i in range(THREADS)}
    assert journal.state_of("m1").owner == "first"  # type: ignore[union-attr]


class Interrupted(Exception):
    pass


@contextmanager
def held_by_another_thread(db: Database) -> Iterator[None]:
    """Another thread holds ``db``'s transaction (and so its lock) meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.transaction():
            entered.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait()
    try:
        yield
    finally:
        release.set()
        holder.join()


@contextmanager
def interrupted_after(seconds: float) -> Iterator[None]:
    """Raise Interrupted in this (the main) thread, as a KeyboardInterrupt would be."""

    def interrupt(*_: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_an_interrupted_writer_leaves_the_others_writing(tmp_path: Path, role: str) -> None:
    """A writer interrupted while it waits (for the connection as the leader, for the
    leader as a follower) drops its write and leaves no one waiting for a leader."""
    db = open_db(tmp_path / "db.sqlite")
    with held_by_another_thread(db):
        join = start_threads(
            lambda i: db.write("INSERT INTO items VALUES ('before', 't', 0)"),
            1 if role == "follower" else 0,
        )
        assert wait_until(lambda: db.waiting_writes == (1 if role == "follower" else 0))
        with pytest.raises(Interrupted), interrupted_after(0.2):
            db.write("INSERT INTO items VALUES ('interrupted', 't', 0)")
    assert join() == []
    assert run_threads(lambda i: db.write("INSERT INTO items VALUES (?, 't', 0)", (f"k{i}",)),
                       THREADS) == []  # fmt: skip
    ids = {r["id"] for r in db.query("SELECT id FROM items")}
    assert "interrupted" not in ids
    assert ids == {f"k{i}" for i in range(THREADS)} | ({"before"} if role == "follower" else set())


WRITER = textwrap.dedent(
    """
    import itertools, os, sys, threading
    from syftflwr.sqlitedb import Database
    path, name, threads, each = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    db = Database(path, what="test database", migrations={1: (
        "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, writer TEXT NOT NULL, "
        "n INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS counters (id TEXT PRIMARY KEY, "
        "value INTEGER NOT NULL CHECK (value >= 0))",
    )})
    print("ready", flush=True)
    sys.stdin.readline()
    out = threading.Lock()

    def work(t):
        for i in (range(each) if each else itertools.count()):  # 0: until killed
            key = f"{name}-{t}-{i}"
            ok = db.write("INSERT INTO items VALUES (?, ?, ?)", (key, name, i)) == 1
            ok = ok and db.write("UPDATE items SET n = n + 1 WHERE id = ?", (key,)) == 1
            ok = ok and db.write("UPDATE items SET n = 0 WHERE id = ?", (key + "?",)) == 0
            with out:
                os.write(1, f"{key} {ok}\\n".encode())

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    """
)


def start_writers(path: Path, count: int, threads: int, each: int) -> list[subprocess.Popen[str]]:
    open_db(path).close()  # created and migrated once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"p{n}", str(threads), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:  # all start together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return procs


def test_threads_of_several_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    procs = start_writers(path, count=3, threads=THREADS, each=5)
    returned: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err
        returned += out.splitlines()
    assert len(returned) == 3 * THREADS * 5
    assert all(line.endswith(" True") for line in returned), [
        line for line in returned if not line.endswith(" True")
    ]
    db = open_db(path)
    rows = {r["id"]: r["n"] for r in db.query("SELECT id, n FROM items")}
    assert rows == {
        line.split()[0]: int(line.split()[0].rsplit("-", 1)[1]) + 1 for line in returned
    }


def test_kill_9_mid_group_commit_loses_no_returned_write(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    (victim,) = start_writers(path, count=1, threads=THREADS, each=0)
    assert victim.stdout is not None
    returned = []
    for _ in range(300):  # well into the group commits
        returned.append(victim.stdout.readline())
    os.kill(victim.pid, signal.SIGKILL)
    rest, _ = victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    lines = [line for line in "".join(returned).splitlines() + rest.split("\n")[:-1] if line]
    assert len(lines) >= 300 and all(line.endswith(" True") for line in lines)

    db = open_db(path)
    assert db.one("PRAGMA integrity_check")[0] == "ok"  # type: ignore[index]
    stored = {r["id"]: r["n"] for r in db.query("SELECT id, n FROM items")}
    for line in lines:
        key = line.split()[0]
        assert stored.get(key) == int(key.rsplit("-", 1)[1]) + 1, key
    assert db.write("INSERT INTO items VALUES ('after', 'x', 0)") == 1


def test_a_store_opened_while_the_wal_is_busy_waits_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting WAL mode can meet "database is locked" at once, busy timeout or not (a
    process's last connection checkpointing the WAL away as it closes). Opening a store
    then failed outright (seen in CI: 4 processes x 4 threads each opening the trust
    store per key, "cannot open the trust store ...: database is locked"); it tries again.
    The lock is injected here: the real race is a matter of microseconds."""
    busy = [3]

    class LockedAtFirst(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith("PRAGMA journal_mode") and busy[0] > 0:
                busy[0] -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().execute(sql, *args)

    real = sqlite3.connect
    monkeypatch.setattr(sqlitedb.sqlite3, "connect",
                        lambda *a, **kw: real(*a, factory=LockedAtFirst, **kw))  # fmt: skip
    db = Database(tmp_path / "store.sqlite", what="test store", migrations=MIGRATIONS)
    try:
        assert busy == [0]
        assert db.write("INSERT INTO items (id, writer, n) VALUES (?, ?, ?)", ("a", "w", 1)) == 1
    finally:
        db.close()
