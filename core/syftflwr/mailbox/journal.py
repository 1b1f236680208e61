"""The persisted journal of one participant's mailbox traffic (sqlite3, WAL mode).

Two tables, one per direction, and one of shared blobs:

* ``inbound`` — requests this participant serves: ``claimed`` -> ``answered`` |
  ``rejected`` | ``gone``. A restarted runner consults it before touching a request, so
  nothing it answered or refused is processed again; small replies are kept so a reply
  lost after a crash is published again rather than recomputed.
* ``outbound`` — requests this participant sent: ``sending`` -> ``sent`` -> ``forgotten``.
  Retention uses it to delete expired or forgotten requests even after a restart.
* ``blobs`` — blobs this participant stored for several recipients (shared model
  arrays): ``storing`` -> ``stored`` -> ``forgotten``, and the entry goes once the blob
  is deleted; retention deletes forgotten and expired ones even after a crash.

It lives in ``{state_dir}/mailbox/journal.sqlite`` (one per participant and state dir),
is safe to use from many threads and processes at once (WAL, a busy timeout, short
transactions), and survives process crashes; with ``synchronous=NORMAL`` a power loss can
forget the last few transitions, never corrupt the file.

The schema is versioned with ``PRAGMA user_version``; extensions add migrations to
:data:`MIGRATIONS` (version 2: the kept reply; version 3: the journal's id; version 4: blobs).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.info import TransportContext
from syftflwr.sqlitedb import Database, columns, record

JOURNAL_FILE = "journal.sqlite"


class InboundState(StrEnum):
    CLAIMED = "claimed"
    """This runner holds the claim and is handling the request."""
    ANSWERED = "answered"
    """A response (ok or error) is published."""
    REJECTED = "rejected"
    """Refused (malformed, forbidden, expired...); an error reply may have been published."""
    GONE = "gone"
    """The request disappeared before it was read (its sender withdrew it)."""


TERMINAL_INBOUND = frozenset({InboundState.ANSWERED, InboundState.REJECTED, InboundState.GONE})


class OutboundState(StrEnum):
    SENDING = "sending"
    """Being written (a crash here may leave parts behind)."""
    SENT = "sent"
    FORGOTTEN = "forgotten"
    """The sender is done with it: the request (and its parts) may be deleted."""


class BlobState(StrEnum):
    STORING = "storing"
    """Being written (a crash here may leave parts behind)."""
    STORED = "stored"
    FORGOTTEN = "forgotten"
    """Dropped by its sender (or found expired by retention): it may be deleted."""


@dataclass(frozen=True, slots=True)
class InboundEntry:
    id: str
    sender: str
    app: str
    endpoint: str
    state: InboundState
    owner: str
    expires_at: float | None
    claimed_at: float
    updated_at: float
    status: str | None
    detail: str | None
    cleaned: bool
    """Retention deleted this participant's response and claim for it."""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_INBOUND


@dataclass(frozen=True, slots=True)
class OutboundEntry:
    id: str
    recipient: str
    app: str
    endpoint: str
    state: OutboundState
    parts: int
    expires_at: float | None
    sent_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class BlobEntry:
    name: str
    app: str
    state: BlobState
    parts: int
    expires_at: float | None
    created_at: float
    updated_at: float


MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS inbound (
            id TEXT PRIMARY KEY, sender TEXT NOT NULL, app TEXT NOT NULL,
            endpoint TEXT NOT NULL, state TEXT NOT NULL, owner TEXT NOT NULL,
            expires_at REAL, claimed_at REAL NOT NULL, updated_at REAL NOT NULL,
            status TEXT, detail TEXT, cleaned INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS inbound_state ON inbound(state)",
        """CREATE TABLE IF NOT EXISTS outbound (
            id TEXT PRIMARY KEY, recipient TEXT NOT NULL, app TEXT NOT NULL,
            endpoint TEXT NOT NULL, state TEXT NOT NULL, parts INTEGER NOT NULL DEFAULT 0,
            expires_at REAL, sent_at REAL NOT NULL, updated_at REAL NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS outbound_state ON outbound(state)",
    ),
    # The published reply (encoded envelope) of small answers, so a reply lost after a
    # crash is published again instead of re-running the handler.
    2: ("ALTER TABLE inbound ADD COLUMN reply BLOB",),
    # The journal's own random id: runners write it into their claims, so a restarted
    # runner recognises a claim of its journal that a crash left unjournaled.
    3: ("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",),
    # Shared blobs this participant stored, so retention deletes them after a crash.
    4: (
        """CREATE TABLE IF NOT EXISTS blobs (
            name TEXT PRIMARY KEY, app TEXT NOT NULL, state TEXT NOT NULL,
            parts INTEGER NOT NULL DEFAULT 0, expires_at REAL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS blobs_state ON blobs(state)",
    ),
}
"""Schema migrations by target version, applied in order inside one transaction."""
SCHEMA_VERSION = max(MIGRATIONS)


class Journal:
    """Thread-safe handle on a journal database; ``path=None`` keeps it in memory
    (nothing survives the process: only for tests and throwaway participants)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self._instance_id: str | None = None
        self._db = Database(path, what="mailbox journal", migrations=MIGRATIONS)

    @property
    def instance_id(self) -> str:
        """A random id of this journal (created once, kept in the file): every runner
        sharing the journal writes it into its claims."""
        if self._instance_id is None:
            self._db.write(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)",
                (uuid.uuid4().hex,),
            )
            row = self._db.one("SELECT value FROM meta WHERE key = 'instance_id'")
            assert row is not None
            self._instance_id = str(row[0])
        return self._instance_id

    @classmethod
    def for_context(cls, context: TransportContext) -> Journal:
        """The participant's journal in ``context.state_dir`` (in memory without one)."""
        if context.state_dir is None:
            return cls(None)
        return cls(Path(context.state_dir) / "mailbox" / JOURNAL_FILE)

    # -- inbound (the events side) -------------------------------------------------------
    def claimed(
        self,
        message_id: str,
        *,
        sender: str,
        app: str,
        endpoint: str,
        owner: str,
        expires_at: float | None = None,
    ) -> bool:
        """Record that ``owner`` holds the claim on the request (it won the storage claim).

        Returns False, changing nothing, if the journal says the request is finished.
        """
        now = time.time()
        changed = self._db.write(
            "INSERT INTO inbound (id, sender, app, endpoint, state, owner, expires_at, "
            "claimed_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, "
            "updated_at = excluded.updated_at WHERE inbound.state = ?",
            (message_id, sender, app, endpoint, InboundState.CLAIMED, owner, expires_at, now, now,
             InboundState.CLAIMED),
        )  # fmt: skip
        return changed == 1

    def take_over(self, message_id: str, *, old_owner: str, new_owner: str) -> bool:
        """Move an unfinished claim from a dead runner to ``new_owner``; exactly one of
        several runners sharing this journal wins."""
        changed = self._db.write(
            "UPDATE inbound SET owner = ?, updated_at = ? WHERE id = ? AND owner = ? AND state = ?",
            (new_owner, time.time(), message_id, old_owner, InboundState.CLAIMED),
        )
        return changed == 1

    def adopt(self, message_id: str, *, sender: str, app: str, endpoint: str, owner: str) -> bool:
        """Record ``owner`` as the holder of a request that has no entry although a
        runner of this journal published its claim (it died before journaling it);
        exactly one of several runners sharing this journal wins."""
        now = time.time()
        changed = self._db.write(
            "INSERT INTO inbound (id, sender, app, endpoint, state, owner, claimed_at, "
            "updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING",
            (message_id, sender, app, endpoint, InboundState.CLAIMED, owner, now, now),
        )
        return changed == 1

    def _set_inbound(self, message_id: str, state: InboundState, **fields: Any) -> None:
        assignments = ", ".join(f"{k} = ?" for k in fields)
        extra = f", {assignments}" if assignments else ""
        self._db.write(
            f"UPDATE inbound SET state = ?, updated_at = ?{extra} WHERE id = ?",
            (state, time.time(), *fields.values(), message_id),
        )

    def answered(
        self,
        message_id: str,
        *,
        status: str = "ok",
        expires_at: float | None = None,
        reply: bytes | None = None,
    ) -> None:
        """The response for ``message_id`` is published (``expires_at``: the request's,
        which retention uses; ``reply``: the published object, kept to re-publish it if
        it is lost — see :meth:`stored_reply`)."""
        fields: dict[str, Any] = {"status": status, "reply": reply}
        if expires_at is not None:
            fields["expires_at"] = expires_at
        self._set_inbound(message_id, InboundState.ANSWERED, **fields)

    def stored_reply(self, message_id: str) -> bytes | None:
        """The reply recorded by :meth:`answered`, if it was kept."""
        row = self._db.one("SELECT reply FROM inbound WHERE id = ?", (message_id,))
        return None if row is None or row[0] is None else bytes(row[0])

    def reopen(self, message_id: str, *, owner: str) -> bool:
        """Move an answered request whose reply was lost (and not kept) back to
        ``claimed`` by ``owner``, to handle it again; exactly one of several runners
        sharing this journal wins."""
        changed = self._db.write(
            "UPDATE inbound SET state = ?, owner = ?, updated_at = ?, reply = NULL "
            "WHERE id = ? AND state = ?",
            (InboundState.CLAIMED, owner, time.time(), message_id, InboundState.ANSWERED),
        )
        return changed == 1

    def rejected(
        self,
        message_id: str,
        reason: str,
        *,
        sender: str,
        app: str,
        endpoint: str,
        owner: str = "",
        replied: bool = False,
    ) -> None:
        """Record a refused request (creating the entry if it was never claimed)."""
        now = time.time()
        self._db.write(
            "INSERT INTO inbound (id, sender, app, endpoint, state, owner, claimed_at, "
            "updated_at, status, detail) VALUES (?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at, status = excluded.status, "
            "detail = excluded.detail",
            (
                message_id,
                sender,
                app,
                endpoint,
                InboundState.REJECTED,
                owner,
                now,
                now,
                "error" if replied else None,
                reason[:2000],
            ),
        )

    def gone(self, message_id: str) -> None:
        """The request vanished before it was read."""
        self._set_inbound(message_id, InboundState.GONE)

    def cleaned(self, message_id: str) -> None:
        """Retention removed this participant's response and claim for the request."""
        self._db.write("UPDATE inbound SET cleaned = 1, reply = NULL WHERE id = ?", (message_id,))

    def state_of(self, message_id: str) -> InboundEntry | None:
        row = self._db.one(
            f"SELECT {columns(InboundEntry)} FROM inbound WHERE id = ?",
            (message_id,),
        )
        return None if row is None else _inbound(row)

    def is_finished(self, message_id: str) -> bool:
        entry = self.state_of(message_id)
        return entry is not None and entry.finished

    def unfinished(self) -> list[InboundEntry]:
        """Requests claimed but never answered (a crash mid-handling)."""
        rows = self._db.query(
            f"SELECT {columns(InboundEntry)} FROM inbound WHERE state = ?",
            (InboundState.CLAIMED,),
        )
        return [_inbound(r) for r in rows]

    # -- outbound (the RPC side) ---------------------------------------------------------
    def sending(
        self,
        message_id: str,
        *,
        recipient: str,
        app: str,
        endpoint: str,
        expires_at: float | None,
        parts: int = 0,
    ) -> None:
        """Record a request about to be published. An unchunked one (``parts=0``) is one
        atomic object, so it is recorded as ``sent`` at once (one write per send); a
        chunked one stays ``sending`` until :meth:`sent`."""
        now = time.time()
        state = OutboundState.SENDING if parts else OutboundState.SENT
        self._db.write(
            "INSERT OR REPLACE INTO outbound (id, recipient, app, endpoint, state, parts, "
            "expires_at, sent_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (message_id, recipient, app, endpoint, state, parts, expires_at, now, now),
        )

    def sent(self, message_id: str) -> None:
        self._db.write(
            "UPDATE outbound SET state = ?, updated_at = ? WHERE id = ?",
            (OutboundState.SENT, time.time(), message_id),
        )

    def forgotten(self, message_id: str) -> None:
        self._db.write(
            "UPDATE outbound SET state = ?, updated_at = ? WHERE id = ?",
            (OutboundState.FORGOTTEN, time.time(), message_id),
        )

    def sent_state(self, message_id: str) -> OutboundEntry | None:
        row = self._db.one(
            f"SELECT {columns(OutboundEntry)} FROM outbound WHERE id = ?",
            (message_id,),
        )
        return None if row is None else _outbound(row)

    def outbound_routes(self) -> list[tuple[str, str, str]]:
        """(recipient, app, endpoint) of every request whose objects may still exist."""
        rows = self._db.query(
            "SELECT DISTINCT recipient, app, endpoint FROM outbound WHERE state != ? "
            "OR updated_at > ?",
            (OutboundState.FORGOTTEN, time.time() - 3600),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- blobs (the RPC side) ------------------------------------------------------------
    def blob_storing(
        self, name: str, *, app: str, expires_at: float | None, parts: int = 0
    ) -> None:
        """Record a blob about to be written (before its first byte: a crash mid-write
        leaves an entry retention acts on)."""
        now = time.time()
        self._db.write(
            "INSERT OR REPLACE INTO blobs (name, app, state, parts, expires_at, created_at, "
            "updated_at) VALUES (?,?,?,?,?,?,?)",
            (name, app, BlobState.STORING, parts, expires_at, now, now),
        )

    def _set_blob(self, name: str, state: BlobState) -> None:
        self._db.write(
            "UPDATE blobs SET state = ?, updated_at = ? WHERE name = ?",
            (state, time.time(), name),
        )

    def blob_stored(self, name: str) -> None:
        self._set_blob(name, BlobState.STORED)

    def blob_forgotten(self, name: str) -> None:
        self._set_blob(name, BlobState.FORGOTTEN)

    def blob_state(self, name: str) -> BlobEntry | None:
        row = self._db.one(f"SELECT {columns(BlobEntry)} FROM blobs WHERE name = ?", (name,))
        return None if row is None else _blob(row)

    def blob_deleted(self, name: str) -> None:
        """The blob's objects are deleted: nothing is left for retention to do."""
        self._db.write("DELETE FROM blobs WHERE name = ?", (name,))

    def blobs(self) -> list[BlobEntry]:
        """Every blob whose objects may still exist (an entry goes once they are
        deleted: a forgotten one left is a delete that failed, tried again)."""
        rows = self._db.query(f"SELECT {columns(BlobEntry)} FROM blobs")
        return [_blob(r) for r in rows]

    def live_requests_since(self, app: str, since: float, *, now: float, skew: float) -> bool:
        """Whether a request for ``app`` sent at or after ``since`` is still live (not
        forgotten, not expired): it may name a blob stored then, which a sender reuses
        beyond the expiry it was stored with."""
        row = self._db.one(
            "SELECT 1 FROM outbound WHERE app = ? AND sent_at >= ? AND state != ? "
            "AND (expires_at IS NULL OR expires_at + ? >= ?) LIMIT 1",
            (app, since, OutboundState.FORGOTTEN, skew, now),
        )
        return row is not None

    # -- maintenance ---------------------------------------------------------------------
    def prune(self, older_than: float) -> int:
        """Drop entries nobody needs any more: inbound ones whose objects retention
        removed, outbound ones and blobs forgotten, all last updated before
        ``older_than``."""
        a = self._db.write(
            "DELETE FROM inbound WHERE cleaned = 1 AND updated_at < ?", (older_than,)
        )
        b = self._db.write(
            "DELETE FROM outbound WHERE state = ? AND updated_at < ?",
            (OutboundState.FORGOTTEN, older_than),
        )
        c = self._db.write(
            "DELETE FROM blobs WHERE state = ? AND updated_at < ?",
            (BlobState.FORGOTTEN, older_than),
        )
        return int(a) + int(b) + int(c)

    def health(self) -> JournalHealth:
        """Counts by state and SQLite's own integrity check, for ``syftflwr doctor``."""
        integrity = str(self._db.query("PRAGMA quick_check")[0][0])
        inbound, outbound = (
            {r[0]: r[1] for r in self._db.query(f"SELECT state, COUNT(*) FROM {t} GROUP BY state")}
            for t in ("inbound", "outbound")
        )
        oldest_row = self._db.one(
            "SELECT MIN(claimed_at) FROM inbound WHERE state = ?", (InboundState.CLAIMED,)
        )
        oldest = None if oldest_row is None else oldest_row[0]
        return JournalHealth(
            path=self.path,
            integrity=integrity,
            inbound={str(k): int(v) for k, v in inbound.items()},
            outbound={str(k): int(v) for k, v in outbound.items()},
            oldest_claim=None if oldest is None else float(oldest),
        )

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class JournalHealth:
    path: Path | None
    integrity: str
    """``ok``, or what SQLite's ``quick_check`` found."""
    inbound: dict[str, int]
    outbound: dict[str, int]
    oldest_claim: float | None
    """When the oldest request still being handled was claimed (None: none is)."""

    @property
    def ok(self) -> bool:
        return self.integrity == "ok"

    def summary(self) -> str:
        def counts(by_state: dict[str, int]) -> str:
            return ", ".join(f"{n} {state}" for state, n in sorted(by_state.items())) or "none"

        text = f"requests: {counts(self.inbound)}; sent: {counts(self.outbound)}"
        if self.oldest_claim is not None:
            text += f"; oldest in progress since {time.time() - self.oldest_claim:.0f}s"
        return text


def _inbound(row: sqlite3.Row) -> InboundEntry:
    return record(InboundEntry, row, state=InboundState(row["state"]), cleaned=bool(row["cleaned"]))


def _outbound(row: sqlite3.Row) -> OutboundEntry:
    return record(OutboundEntry, row, state=OutboundState(row["state"]))


def _blob(row: sqlite3.Row) -> BlobEntry:
    return record(BlobEntry, row, state=BlobState(row["state"]))


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
