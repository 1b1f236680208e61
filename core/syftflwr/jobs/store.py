"""A participant's jobs: those it received, those it submitted, the decisions on both,
and whom it accepts jobs from (issue 19, items 3-5).

One SQLite database per participant, in its participant-level state folder (the
reserved jobs app's, :func:`syftflwr.crypto.signing.identity_dir`), shared by every
process of that participant — ``syftflwr jobs`` listing while ``serve`` or another
``jobs approve`` runs — with each read-modify-write in one ``BEGIN IMMEDIATE``
transaction (:mod:`syftflwr.sqlitedb`). A received FAB is kept as a file beside the
database (``fabs/<sha256>.fab``, written atomically *before* the row that names it, so
a kill at any moment leaves no row without its file; a file without a row is swept by
:meth:`JobStore.prune`).

The rules of item 5 live here, so every way in (CLI, serve, policies) keeps them:

* decisions are **append-only**: the database itself refuses any UPDATE or DELETE of a
  decision (triggers), and a job has at most one decision — deciding it again returns
  the earlier decision, or refuses a different verdict naming the earlier one;
* an **older version** than one approved (same aggregator and app, PEP 440 order) is
  refused — received or approved — unless its offer says rollback;
* a job id is used once: the same offer again is the same job (a redelivery), another
  offer under that id is refused;
* the **current version** of an app is the one approved last in the order this store
  recorded the decisions (one SQL rule, :func:`_approved_last`, for the diff base,
  retention and what ``serve`` runs) — after a rollback, the older version.

Retention (:meth:`JobStore.prune`) may delete the FAB files of rejected and superseded
jobs; their rows and decisions stay.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.version import Version

from syftflwr.atomic import atomic_write
from syftflwr.crypto.signing import SigningIdentity, identity_dir
from syftflwr.errors import SyftflwrError
from syftflwr.jobs.statements import Decision, JobOffer, Verdict, fab_digest, sign_decision
from syftflwr.names import validate_email
from syftflwr.sqlitedb import Database

STORE_FILE = "jobs.sqlite"
FABS_FOLDER = "fabs"
ORPHAN_AGE = 600.0
"""Seconds after which a FAB file no job names is deleted by :meth:`JobStore.prune`
(younger, a receive may still be between writing it and storing its row)."""
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE received (
            job_id TEXT PRIMARY KEY, aggregator TEXT NOT NULL, app TEXT NOT NULL,
            version TEXT NOT NULL, fab_hash TEXT NOT NULL, offer BLOB NOT NULL,
            signature BLOB NOT NULL, signer_key BLOB NOT NULL, fab_size INTEGER NOT NULL,
            fab_record BLOB, received_at REAL NOT NULL, fab_deleted_at REAL)""",
        "CREATE INDEX received_by_app ON received (aggregator, app)",
        """CREATE TABLE submitted (
            job_id TEXT NOT NULL, datasite TEXT NOT NULL, app TEXT NOT NULL,
            version TEXT NOT NULL, fab_hash TEXT NOT NULL, offer BLOB NOT NULL,
            signature BLOB NOT NULL, sent_at REAL NOT NULL, seen_at REAL,
            PRIMARY KEY (job_id, datasite))""",
        """CREATE TABLE decisions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL,
            aggregator TEXT NOT NULL, datasite TEXT NOT NULL, app TEXT NOT NULL,
            version TEXT NOT NULL, fab_hash TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('approved', 'rejected')),
            reason TEXT NOT NULL, decided_by TEXT NOT NULL, decided_at REAL NOT NULL,
            automatic INTEGER NOT NULL, statement BLOB NOT NULL, signature BLOB NOT NULL,
            recorded_at REAL NOT NULL, UNIQUE (job_id, datasite))""",
        """CREATE TRIGGER decisions_never_updated BEFORE UPDATE ON decisions
            BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END""",
        """CREATE TRIGGER decisions_never_deleted BEFORE DELETE ON decisions
            BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END""",
        """CREATE TABLE trusted_submitters (
            email TEXT PRIMARY KEY, added_by TEXT NOT NULL, added_at REAL NOT NULL)""",
    ),
    2: (  # the mailbox a job is served in (``serve``); older rows: JobStore._fill_app_names
        "ALTER TABLE received ADD COLUMN app_name TEXT",
        "CREATE INDEX received_by_app_name ON received (aggregator, app_name)",
    ),
}
Status = Literal["not yet seen", "pending", "approved", "rejected"]
AppKey = Literal["app", "app_name"]
"""What names an app among the jobs of one aggregator: the FAB's name (``app``: the diff
base, retention) or the mailbox it is served in (``app_name``: serve, retention)."""


def _approved_last(key: AppKey) -> str:
    """SQL: the decision ``d`` on the received job ``r`` is the approval recorded last
    among the approvals of ``r``'s app (same aggregator and ``key``) — the one rule of
    which version is current. Recorded last is the decision sequence, the order this
    store appended them in: never a clock (two decisions may carry one time, or a clock
    step back), and never the version (after a rollback the older one is current)."""
    return (
        "(d.verdict = 'approved' AND d.seq = (SELECT MAX(a.seq) FROM received j "
        "JOIN decisions a ON a.job_id = j.job_id AND a.datasite = d.datasite "
        f"WHERE j.aggregator = r.aggregator AND j.{key} = r.{key} "
        "AND a.verdict = 'approved'))"
    )


class JobError(SyftflwrError):
    """A job or decision the store refuses; the message says why in one line."""


class DecisionConflictError(JobError):
    """The job was already decided the other way: decisions are final (append-only)."""

    def __init__(self, earlier: StoredDecision) -> None:
        self.earlier = earlier
        super().__init__(
            f"job {earlier.decision.offer.job_id} was already {earlier.describe()}; a "
            "decision is final: submit a new job to decide again"
        )


@dataclass(frozen=True)
class StoredDecision:
    """A decision as recorded: the signed statement and when it was recorded here."""

    decision: Decision
    signature: bytes
    recorded_at: float

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    def describe(self) -> str:
        """ "rejected by ds@x at 2026-12-07 09:01:02 UTC (reason)", for messages."""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.decision.decided_at))
        how = " automatically" if self.decision.automatic else ""
        reason = f" ({self.decision.reason})" if self.decision.reason else ""
        return f"{self.verdict}{how} by {self.decision.decided_by} at {when}{reason}"


@dataclass(frozen=True)
class ReceivedJob:
    """A job this participant received as a datasite."""

    offer: JobOffer
    signature: bytes
    signer_key: bytes
    """The aggregator's signing key the offer was verified with."""
    fab_size: int
    fab_record: bytes | None
    """The FAB's signature in Flower's verification-record format, when sent."""
    received_at: float
    fab_deleted_at: float | None
    """When retention deleted its FAB file (rejected or superseded), else None."""
    decision: StoredDecision | None

    @property
    def job_id(self) -> str:
        return self.offer.job_id

    @property
    def status(self) -> Status:
        return "pending" if self.decision is None else self.decision.verdict


@dataclass(frozen=True)
class SubmittedJob:
    """A job this participant submitted to one datasite, as that datasite answered."""

    offer: JobOffer
    signature: bytes
    sent_at: float
    seen_at: float | None
    decision: StoredDecision | None

    @property
    def job_id(self) -> str:
        return self.offer.job_id

    @property
    def status(self) -> Status:
        if self.decision is not None:
            return self.decision.verdict
        return "not yet seen" if self.seen_at is None else "pending"


class JobStore:
    """One participant's jobs database (open it once per process; thread-safe)."""

    def __init__(self, state_root: Path, email: str) -> None:
        self.email = validate_email(email)
        self.folder = identity_dir(state_root, self.email)
        self.fabs = self.folder / FABS_FOLDER
        self.db = Database(self.folder / STORE_FILE, what="jobs store", migrations=MIGRATIONS)
        self._fill_app_names()

    def _fill_app_names(self) -> None:
        """Jobs received before schema 2 take their ``app_name`` from their offer (once)."""
        if self.db.one("SELECT 1 FROM received WHERE app_name IS NULL LIMIT 1") is None:
            return
        with self.db.transaction():
            for job_id, offer in self.db.query(
                "SELECT job_id, offer FROM received WHERE app_name IS NULL"
            ):
                self.db.write(
                    "UPDATE received SET app_name = ? WHERE job_id = ?",
                    (JobOffer.decode(bytes(offer)).app_name, job_id),
                )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- received (datasite) ---------------------------------------------------------
    def receive(
        self,
        offer: JobOffer,
        signature: bytes,
        signer_key: bytes,
        fab: bytes,
        *,
        fab_record: bytes | None = None,
        now: float | None = None,
    ) -> tuple[ReceivedJob, bool]:
        """Store a job whose offer the caller verified (:func:`~.statements.verify_offer`);
        returns it and whether it is new (False: the same offer arrived before, maybe
        already decided — the caller answers with that decision).

        :raises JobError: not for this participant, its FAB not the signed one, its id
            taken by another offer, or older than an approved version without rollback.
        """
        if offer.datasite != self.email:
            raise JobError(f"job {offer.job_id} is for {offer.datasite}, not {self.email}")
        if fab_digest(fab) != offer.fab_hash:
            raise JobError(f"job {offer.job_id}: the FAB is not the one its offer signs")
        encoded = offer.encode()
        existing = self._received_row(offer.job_id)
        if existing is not None:
            return self._same_offer(existing, encoded), False
        self._older_than_approved(offer)  # before writing anything
        self._keep_fab(offer.fab_hash, fab)  # the bulk of the writing, outside the lock
        with self.db.transaction():
            row = self.db.one("SELECT offer FROM received WHERE job_id = ?", (offer.job_id,))
            if row is None:
                self._older_than_approved(offer)
                if not self.fab_path(offer.fab_hash).exists():  # pruned meanwhile
                    self._keep_fab(offer.fab_hash, fab)
                self.db.write(
                    "INSERT INTO received (job_id, aggregator, app, app_name, version, "
                    "fab_hash, offer, signature, signer_key, fab_size, fab_record, "
                    "received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        offer.job_id,
                        offer.aggregator,
                        offer.app,
                        offer.app_name,
                        offer.version,
                        offer.fab_hash,
                        encoded,
                        signature,
                        signer_key,
                        len(fab),
                        fab_record,
                        time.time() if now is None else now,
                    ),
                )
        job = self.received_job(offer.job_id)
        if row is not None:  # another process stored it meanwhile
            return self._same_offer(job, encoded), False
        return job, True

    def _same_offer(self, job: ReceivedJob, encoded: bytes) -> ReceivedJob:
        if job.offer.encode() != encoded:
            raise JobError(
                f"job id {job.job_id} is taken by another offer ({job.offer.app} "
                f"{job.offer.version} from {job.offer.aggregator}): refused"
            )
        return job

    def _older_than_approved(self, offer: JobOffer) -> None:
        """Refuse ``offer`` if a newer version of its app from its aggregator was
        approved here, unless it is marked as a rollback."""
        if offer.rollback:
            return
        rows = self.db.query(
            "SELECT version FROM decisions WHERE datasite = ? AND aggregator = ? AND "
            "app = ? AND verdict = 'approved'",
            (self.email, offer.aggregator, offer.app),
        )
        approved = max((Version(str(r[0])) for r in rows), default=None)
        if approved is not None and Version(offer.version) < approved:
            raise JobError(
                f"job {offer.job_id}: {offer.app} {offer.version} from {offer.aggregator} "
                f"is older than the approved {approved}: refused (to go back, the "
                "aggregator submits it again as a rollback: `syftflwr submit --rollback`)"
            )

    def _keep_fab(self, fab_hash: str, data: bytes) -> None:
        path = self.fab_path(fab_hash)
        if path.exists() and _digest_of(path) == fab_hash:
            return
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(path, data, mode=0o600)

    def fab_path(self, fab_hash: str) -> Path:
        return self.fabs / f"{fab_hash}.fab"

    def fab(self, job_id: str) -> bytes:
        """The FAB of a received job, checked against the hash its offer signs.

        :raises JobError: unknown job, FAB deleted by retention, or altered on disk.
        """
        job = self.received_job(job_id)
        if job.fab_deleted_at is not None:
            raise JobError(f"job {job_id}: its FAB was deleted ({job.status}, then pruned)")
        path = self.fab_path(job.offer.fab_hash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise JobError(f"job {job_id}: its FAB {path} is missing") from None
        if fab_digest(data) != job.offer.fab_hash:
            raise JobError(
                f"job {job_id}: the FAB {path} was altered after it was received "
                f"(hash {fab_digest(data)[:16]}, signed {job.offer.fab_hash[:16]}): refused"
            )
        return data

    def received_job(self, job_id: str) -> ReceivedJob:
        """:raises JobError: no such job here."""
        job = self._received_row(job_id)
        if job is None:
            raise JobError(f"no job {job_id} here; `syftflwr jobs` lists them")
        return job

    def _received_row(self, job_id: str) -> ReceivedJob | None:
        jobs = self._received("WHERE r.job_id = ?", (job_id,))
        return jobs[0] if jobs else None

    def received_jobs(self) -> list[ReceivedJob]:
        """Every received job, oldest first."""
        return self._received("ORDER BY r.received_at, r.job_id", ())

    def last_approved(self, aggregator: str, app: str) -> ReceivedJob | None:
        """The current version of ``app`` from ``aggregator``: the one approved last
        (after a rollback, the older version it went back to; see :func:`_approved_last`).
        What a new version is diffed against, and what retention keeps."""
        jobs = self._received(
            f"WHERE r.aggregator = ? AND r.app = ? AND {_approved_last('app')}",
            (aggregator, app),
        )
        return jobs[0] if jobs else None

    def served_versions(
        self, aggregator: str | None = None, app_name: str | None = None
    ) -> list[ReceivedJob]:
        """The current version of each app by the mailbox it is served in (its aggregator
        and ``app_name``; of that one only when given): the one approved last, by the rule
        of :meth:`last_approved` — what ``syftflwr serve`` runs. Retention keeps each of
        them."""
        where = [_approved_last("app_name")]
        args: list[object] = []
        for column, value in (("aggregator", aggregator), ("app_name", app_name)):
            if value is not None:
                where.append(f"r.{column} = ?")
                args.append(value)
        return self._received(
            f"WHERE {' AND '.join(where)} ORDER BY r.aggregator, r.app_name", tuple(args)
        )

    def received_with_hash(self, aggregator: str, fab_hash: str) -> ReceivedJob | None:
        """The job of the FAB ``fab_hash`` from ``aggregator`` received last, or None."""
        jobs = self._received(
            "WHERE r.aggregator = ? AND r.fab_hash = ? "
            "ORDER BY r.received_at DESC, r.job_id DESC LIMIT 1",
            (aggregator, fab_hash),
        )
        return jobs[0] if jobs else None

    def _received(self, where: str, args: tuple[object, ...]) -> list[ReceivedJob]:
        rows = self.db.query(
            "SELECT r.offer, r.signature, r.signer_key, r.fab_size, r.fab_record, "
            "r.received_at, r.fab_deleted_at, d.statement, d.signature, d.recorded_at "
            "FROM received r LEFT JOIN decisions d "
            f"ON d.job_id = r.job_id AND d.datasite = ? {where}",
            (self.email, *args),
        )
        return [
            ReceivedJob(
                offer=JobOffer.decode(bytes(r[0])),
                signature=bytes(r[1]),
                signer_key=bytes(r[2]),
                fab_size=int(r[3]),
                fab_record=None if r[4] is None else bytes(r[4]),
                received_at=float(r[5]),
                fab_deleted_at=None if r[6] is None else float(r[6]),
                decision=_stored(r[7], r[8], r[9]),
            )
            for r in rows
        ]

    # -- decisions (datasite) ------------------------------------------------------
    def decide(
        self,
        job_id: str,
        verdict: Verdict,
        identity: SigningIdentity,
        *,
        reason: str = "",
        automatic: bool = False,
        now: float | None = None,
    ) -> tuple[StoredDecision, bool]:
        """Decide a received job, sign the decision with ``identity`` and record it;
        returns it and whether it is new (False: the same verdict was given before, and
        that earlier decision is returned).

        :raises DecisionConflictError: it was decided the other way before.
        :raises JobError: unknown job, or approving an older version than one approved.
        """
        if identity.email != self.email:
            raise JobError(f"{identity.email} cannot decide the jobs of {self.email}")
        with self.db.transaction():
            job = self.received_job(job_id)
            if job.decision is not None:
                if job.decision.verdict != verdict:
                    raise DecisionConflictError(job.decision)
                return job.decision, False
            if verdict == "approved":
                self._older_than_approved(job.offer)
            decision = Decision(
                offer=job.offer,
                verdict=verdict,
                reason=reason,
                decided_by=self.email,
                decided_at=time.time() if now is None else now,
                automatic=automatic,
            )
            stored = StoredDecision(
                decision, sign_decision(decision, identity), decision.decided_at
            )
            self._append(stored)
        return stored, True

    def _append(self, stored: StoredDecision) -> None:
        d, o = stored.decision, stored.decision.offer
        self.db.write(
            "INSERT INTO decisions (job_id, aggregator, datasite, app, version, fab_hash, "
            "verdict, reason, decided_by, decided_at, automatic, statement, signature, "
            "recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                o.job_id,
                o.aggregator,
                o.datasite,
                o.app,
                o.version,
                o.fab_hash,
                d.verdict,
                d.reason,
                d.decided_by,
                d.decided_at,
                int(d.automatic),
                d.encode(),
                stored.signature,
                stored.recorded_at,
            ),
        )

    # -- submitted (aggregator) ----------------------------------------------------
    def record_sent(self, offer: JobOffer, signature: bytes, *, now: float | None = None) -> None:
        """Remember an offer sent to its datasite (sending the same one again keeps the
        first; another offer under a job id already sent to that datasite is refused)."""
        if offer.aggregator != self.email:
            raise JobError(f"job {offer.job_id} is from {offer.aggregator}, not {self.email}")
        encoded = offer.encode()
        with self.db.transaction():
            row = self.db.one(
                "SELECT offer FROM submitted WHERE job_id = ? AND datasite = ?",
                (offer.job_id, offer.datasite),
            )
            if row is not None:
                if bytes(row[0]) != encoded:
                    raise JobError(
                        f"job id {offer.job_id} was already sent to {offer.datasite} with "
                        "another offer: refused"
                    )
                return
            self.db.write(
                "INSERT INTO submitted (job_id, datasite, app, version, fab_hash, offer, "
                "signature, sent_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    offer.job_id,
                    offer.datasite,
                    offer.app,
                    offer.version,
                    offer.fab_hash,
                    encoded,
                    signature,
                    time.time() if now is None else now,
                ),
            )

    def mark_seen(self, job_id: str, datasite: str, *, now: float | None = None) -> None:
        """The datasite stored the job (its reply to the job arrived); the first time counts."""
        self.db.write(
            "UPDATE submitted SET seen_at = ? WHERE job_id = ? AND datasite = ? "
            "AND seen_at IS NULL",
            (time.time() if now is None else now, job_id, datasite),
        )

    def record_answer(
        self, decision: Decision, signature: bytes, *, now: float | None = None
    ) -> tuple[StoredDecision, bool]:
        """Record a datasite's decision on an offer sent from here, once the caller
        verified it (:func:`~.statements.verify_decision`); returns it and whether new.

        :raises JobError: no such offer was sent (or a different one).
        :raises DecisionConflictError: the datasite sent another verdict before.
        """
        offer = decision.offer
        with self.db.transaction():
            row = self.db.one(
                "SELECT offer FROM submitted WHERE job_id = ? AND datasite = ?",
                (offer.job_id, offer.datasite),
            )
            if row is None or bytes(row[0]) != offer.encode():
                raise JobError(
                    f"a decision from {offer.datasite} on job {offer.job_id}, which was not "
                    "sent to it from here: refused"
                )
            earlier = self._decision_on(offer.job_id, offer.datasite)
            if earlier is not None:
                if earlier.decision != decision:
                    raise DecisionConflictError(earlier)
                return earlier, False
            now = time.time() if now is None else now
            stored = StoredDecision(decision, signature, now)
            self._append(stored)
            self.db.write(
                "UPDATE submitted SET seen_at = ? WHERE job_id = ? AND datasite = ? "
                "AND seen_at IS NULL",
                (now, offer.job_id, offer.datasite),
            )
        return stored, True

    def _decision_on(self, job_id: str, datasite: str) -> StoredDecision | None:
        row = self.db.one(
            "SELECT statement, signature, recorded_at FROM decisions "
            "WHERE job_id = ? AND datasite = ?",
            (job_id, datasite),
        )
        return None if row is None else _stored(row[0], row[1], row[2])

    def submitted_jobs(self, job_id: str | None = None) -> list[SubmittedJob]:
        """Every offer sent (or those of ``job_id``), oldest first, with its status."""
        where, args = ("WHERE s.job_id = ?", (job_id,)) if job_id else ("", ())
        rows = self.db.query(
            "SELECT s.offer, s.signature, s.sent_at, s.seen_at, d.statement, d.signature, "
            "d.recorded_at FROM submitted s LEFT JOIN decisions d "
            f"ON d.job_id = s.job_id AND d.datasite = s.datasite {where} "
            "ORDER BY s.sent_at, s.job_id, s.datasite",
            args,
        )
        return [
            SubmittedJob(
                offer=JobOffer.decode(bytes(r[0])),
                signature=bytes(r[1]),
                sent_at=float(r[2]),
                seen_at=None if r[3] is None else float(r[3]),
                decision=_stored(r[4], r[5], r[6]),
            )
            for r in rows
        ]

    # -- who may submit (item 3) -----------------------------------------------------
    def trust_submitter(self, email: str, *, now: float | None = None) -> bool:
        """Accept jobs from ``email`` (``syftflwr jobs trust``); False if already did."""
        return bool(
            self.db.write(
                "INSERT OR IGNORE INTO trusted_submitters (email, added_by, added_at) "
                "VALUES (?,?,?)",
                (validate_email(email), self.email, time.time() if now is None else now),
            )
        )

    def trusted_submitters(self) -> dict[str, float]:
        """email -> when it was trusted."""
        rows = self.db.query("SELECT email, added_at FROM trusted_submitters ORDER BY email")
        return {str(r[0]): float(r[1]) for r in rows}

    # -- retention -----------------------------------------------------------------
    def prune(self, *, now: float | None = None) -> list[Path]:
        """Delete the FAB files no job needs: those of rejected jobs, of approved jobs
        superseded by a later approval of the same app from the same aggregator (see
        :meth:`last_approved`) and in the same mailbox (:meth:`served_versions`: what
        ``serve`` runs stays), and files no row names once :data:`ORPHAN_AGE` old (a kill
        between a file and its row). A file a pending or current job shares is kept; rows
        and decisions always stay. Returns the files deleted."""
        now = time.time() if now is None else now
        deleted: list[Path] = []
        with self.db.transaction():  # no job is stored meanwhile: none loses its file
            jobs = self.received_jobs()
            current = {
                j.job_id
                for j in self._received(
                    f"WHERE {_approved_last('app')} OR {_approved_last('app_name')}", ()
                )
            }
            keep = {j.offer.fab_hash for j in jobs if j.status == "pending" or j.job_id in current}
            named = {j.offer.fab_hash for j in jobs}
            for job in jobs:  # a FAB another job still needs stays readable for this one
                if job.offer.fab_hash not in keep and job.fab_deleted_at is None:
                    self.db.write(
                        "UPDATE received SET fab_deleted_at = ? WHERE job_id = ?",
                        (now, job.job_id),
                    )
            for path in sorted(self.fabs.iterdir()) if self.fabs.is_dir() else ():
                fab_hash = path.name.removesuffix(".fab")
                if fab_hash in keep or (fab_hash not in named and not _older(path, now)):
                    continue
                path.unlink(missing_ok=True)
                deleted.append(path)
        return deleted


def _older(path: Path, now: float) -> bool:
    """Whether ``path`` is older than :data:`ORPHAN_AGE` (no receive is still writing it)."""
    try:
        return now - path.stat().st_mtime > ORPHAN_AGE
    except FileNotFoundError:
        return False


def _stored(statement: Any, signature: Any, recorded_at: Any) -> StoredDecision | None:
    """A decision from its columns (a LEFT JOIN without one: None)."""
    if statement is None:
        return None
    return StoredDecision(Decision.decode(bytes(statement)), bytes(signature), float(recorded_at))


def _digest_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
