"""``syftflwr jobs``: what arrived over the jobs channel, checked and kept — a datasite's
incoming jobs, an aggregator's decisions and "seen" replies — and the data owner's review
and decision.

Receiving a job checks, in this order, and refuses with one line naming the first
problem (the sender reads it as the reply; nothing is stored):

1. the sender is accepted (``accept_jobs_from`` or ``syftflwr jobs trust``) — others are
   never even read (the channel leaves them unread; one INFO line per sender);
2. the signing key the job carries is the one this participant believes for the sender
   (pinned, or first seen; a changed key is refused);
3. the offer is signed by it and binds this job: from the sender, to this datasite, as
   this job id (an offer copied under another id is a replay), with this FAB's hash (a
   FAB altered in storage fails);
4. the FAB's own signature (Flower's record) verifies with the same key;
5. the FAB passes inspection (:func:`~syftflwr.jobs.bundle.inspect_bundle`: members,
   paths, sizes, shadowed modules) and is the app and version its offer names;
6. the store's rules (a job decided before keeps its decision; an older version than an
   approved one needs the aggregator's rollback flag).

Nothing of a bundle is imported or executed here: it is read as a zip archive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from syftflwr.config import ParticipantSettings, load_participant, resolve_email, resolve_state_dir
from syftflwr.crypto.keyring import Keyring
from syftflwr.crypto.signing import SignerTrust, SigningIdentity
from syftflwr.crypto.trust import TrustStatus
from syftflwr.envelope import Request, Response
from syftflwr.errors import ConfigError, EncryptionError, MessageRejectedError
from syftflwr.jobs import JOB_TTL, JOBS_APP
from syftflwr.jobs.bundle import BundleInfo, BundleRefused, diff_bundles, inspect_bundle, same_files
from syftflwr.jobs.channel import (
    DECISIONS_ENDPOINT,
    JOBS_ENDPOINT,
    Delivery,
    JobsChannel,
    connect_jobs,
)
from syftflwr.jobs.fabsig import verify_fab
from syftflwr.jobs.messages import DecisionMessage, JobMessage
from syftflwr.jobs.policies import automatic_reason
from syftflwr.jobs.statements import (
    Decision,
    JobOffer,
    StatementError,
    Verdict,
    verify_decision,
    verify_offer,
)
from syftflwr.jobs.store import JobError, JobStore, ReceivedJob, StoredDecision, SubmittedJob
from syftflwr.names import validate_email
from syftflwr.registry import Registry
from syftflwr.roles import RequestHandle

log = logging.getLogger("syftflwr.jobs")

STORED = b"stored"
"""A datasite's reply to a job it kept: the aggregator shows the job as seen."""
RECEIVED = b"received"
"""An aggregator's reply to a decision."""

REFUSALS = (BundleRefused, StatementError, EncryptionError, MessageRejectedError, JobError)
"""What a job or decision is refused for (each with a one-line message)."""


@dataclass(frozen=True)
class Who:
    """The participant a jobs command acts for, where its state is, and how its jobs
    channel is reached."""

    email: str
    state_root: Path
    settings: ParticipantSettings
    transport: str | None = None
    """``--transport``; None: ``SYFTFLWR_TRANSPORT``, else auto-detection."""
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    allow_in_process: bool = False
    registry: Registry | None = None

    def connect(self, peers: Iterable[str]) -> JobsChannel:
        """This participant's jobs channel with ``peers`` (:func:`connect_jobs`)."""
        return connect_jobs(
            self.email,
            peers,
            transport=self.transport,
            env=self.env,
            participant=self.settings,
            allow_in_process=self.allow_in_process,
            registry=self.registry,
        )


def who_am_i(
    email: str | None,
    *,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    participant: ParticipantSettings | None = None,
) -> Who:
    """:raises ConfigError: no email given anywhere."""
    settings = participant if participant is not None else load_participant(env)
    who, _ = resolve_email(settings, email=email, env=env)
    if who is None:
        raise ConfigError(
            "who are you? no email given",
            fix='pass --as EMAIL, set SYFTFLWR_EMAIL, or write email = "..." in your '
            "settings file (docs/configuration.md)",
        )
    state_root, _ = resolve_state_dir(settings, env=env)
    return Who(who.lower(), state_root, settings, transport=transport, env=env)


# --------------------------------------------------------------------------- receiving
@dataclass(frozen=True)
class VerifiedJob:
    """A job every check of :func:`verify_job` passed."""

    offer: JobOffer
    message: JobMessage
    info: BundleInfo
    signer_status: TrustStatus


def verify_job(request: Request, *, me: str, keyring: Keyring, signers: SignerTrust) -> VerifiedJob:
    """Checks 2-5 of the module docstring on an opened, authenticated ``request``.

    :raises BundleRefused, StatementError, EncryptionError, MessageRejectedError: one line.
    """
    source = f"job {request.id} from {request.sender}"
    message = JobMessage.decode(bytes(request.body), source=source)
    public, status = signers.key_of(keyring, request.sender, presented=message.signer)
    offer = verify_offer(
        message.offer,
        message.offer_signature,
        public,
        sender=request.sender,
        recipient=me,
        job_id=request.id,
        fab=message.fab,
    )
    verify_fab(message.fab, message.fab_record, public)
    info = inspect_bundle(message.fab)
    if (info.name, info.version) != (offer.app, offer.version):
        raise BundleRefused(
            f"{source}: the FAB is {info.name} {info.version}, its offer says "
            f"{offer.app} {offer.version}"
        )
    return VerifiedJob(offer, message, info, status)


@dataclass
class Collected:
    """What one ``syftflwr jobs`` collected."""

    stored: list[str] = field(default_factory=list)
    """Ids of the jobs received and kept."""
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    """(job id, sender, reason) of jobs refused."""
    decisions: list[Decision] = field(default_factory=list)
    """Decisions on jobs this participant submitted, received now."""
    replies: dict[str, str] = field(default_factory=dict)
    """Job id -> the refusal a datasite answered a job of this participant's with."""
    ignored: Mapping[str, int] = field(default_factory=dict)
    """Sender -> requests left unread: not accepted here."""
    automatic: list[tuple[str, str]] = field(default_factory=list)
    """(job id, reason) of jobs approved by an ``[auto_approve]`` rule."""
    complete: bool = True


def accepted_senders(who: Who, store: JobStore) -> tuple[str, ...]:
    """Who may send ``who`` jobs: its settings' ``accept_jobs_from``, then everyone it
    trusted with ``syftflwr jobs trust``."""
    return tuple(dict.fromkeys([*who.settings.accept_jobs_from, *store.trusted_submitters()]))


def collect(who: Who) -> Collected:
    """Connect ``who``'s jobs channel, keep what arrived, learn what was seen, delete the
    FABs no job needs any more (:meth:`JobStore.prune`); return what happened.

    :raises ConfigError: nobody to exchange jobs with (the fix says how to add someone).
    """
    result = Collected()
    with JobStore(who.state_root, who.email) as store:
        accepting = accepted_senders(who, store)
        peers = [*accepting, *(job.offer.datasite for job in store.submitted_jobs())]
        with who.connect(peers) as channel:
            _Receiver(who, store, channel, frozenset(accepting), result).run()
        for path in store.prune():  # FABs of rejected and replaced versions
            log.debug("deleted %s: no job needs it any more", path)
    return result


class _Receiver:
    def __init__(
        self,
        who: Who,
        store: JobStore,
        channel: JobsChannel,
        accepting: frozenset[str],
        result: Collected,
    ) -> None:
        keyring = channel.participant.keyring
        assert keyring is not None  # connect_jobs refuses plaintext
        self.who = who
        self.store = store
        self.channel = channel
        self.keyring = keyring
        self.signers = SignerTrust(who.state_root, who.email, who.settings.signing_keys)
        self.accepting = accepting
        self.result = result

    def run(self) -> None:
        drained = self.channel.collect(
            {JOBS_ENDPOINT: self.on_job, DECISIONS_ENDPOINT: self.on_decision}
        )
        self.result.ignored = dict(drained.ignored)
        self.result.complete = drained.complete
        for sender, count in sorted(drained.ignored.items()):
            log.info(
                "left %d request(s) from %s unread: %s is not in accept_jobs_from (run "
                "`syftflwr jobs trust %s` to accept jobs from them)",
                count,
                sender,
                sender,
                sender,
            )
        self.learn_seen()

    def on_job(self, request: Request) -> Response | bytes:
        if request.sender not in self.accepting:  # a datasite of mine, not a submitter
            log.info("dropped job %s from %s: not accepted", request.id, request.sender)
            return request.error_reply(f"not accepted: {self.who.email} takes no jobs from you")
        try:
            job = verify_job(request, me=self.who.email, keyring=self.keyring, signers=self.signers)
            stored, new = self.store.receive(
                job.offer,
                job.message.offer_signature,
                job.message.signer,
                job.message.fab,
                fab_record=job.message.fab_record,
            )
        except REFUSALS as exc:
            return self._refuse(request, str(exc))
        self.result.stored.append(request.id)
        if new and stored.decision is None and self.who.settings.auto_approve.any:
            self._apply_policies(stored, job)
        return STORED

    def _apply_policies(self, stored: ReceivedJob, job: VerifiedJob) -> None:
        """Approve ``stored`` now if one of the data owner's ``[auto_approve]`` rules
        says so: signed, recorded and sent back like a manual decision."""
        rules = self.who.settings.auto_approve
        reason = automatic_reason(rules, stored, job.info, job.message.fab, self.store)
        if reason is None:
            return
        identity = SigningIdentity.load_or_create(self.who.state_root, self.who.email)
        decision, _ = self.store.decide(
            stored.job_id, "approved", identity, reason=reason, automatic=True
        )
        log.info("approved job %s (%s %s from %s) %s", stored.job_id, stored.offer.app,
                 stored.offer.version, stored.offer.aggregator, reason)  # fmt: skip
        self.result.automatic.append((stored.job_id, reason))
        body = DecisionMessage(decision.decision.encode(), decision.signature).encode()
        self.channel.send(stored.offer.aggregator, DECISIONS_ENDPOINT, body)

    def _refuse(self, request: Request, reason: str) -> Response:
        log.warning("refused job %s from %s: %s", request.id, request.sender, reason)
        self.result.refused.append((request.id, request.sender, reason))
        return request.error_reply(f"refused: {reason}")

    def on_decision(self, request: Request) -> Response | bytes:
        source = f"decision {request.id} from {request.sender}"
        try:
            message = DecisionMessage.decode(bytes(request.body), source=source)
            claimed = Decision.decode(message.decision)
            sent = next(
                (j.offer for j in self.store.submitted_jobs(claimed.offer.job_id)
                 if j.offer.datasite == request.sender),
                None,
            )  # fmt: skip
            if sent is None:
                raise JobError(f"{source}: answers job {claimed.offer.job_id}, not sent to it")
            public, _ = self.signers.key_of(self.keyring, request.sender)
            decision = verify_decision(
                message.decision, message.signature, public, sender=request.sender, offer=sent
            )
            self.store.record_answer(decision, message.signature)
        except REFUSALS as exc:
            log.warning("refused %s: %s", source, exc)
            return request.error_reply(f"refused: {exc}")
        self.result.decisions.append(decision)
        return RECEIVED

    def learn_seen(self) -> None:
        """Replies to the jobs this participant sent: stored (seen: the request and its
        reply are removed), or refused (kept, so every listing shows the reason until
        the job expires)."""
        unseen = {j.job_id: j for j in self.store.submitted_jobs() if j.seen_at is None}
        handles = [sent_handle(j) for j in unseen.values()]
        for job_id, response in self.channel.replies(handles).items():
            if response.ok:
                self.store.mark_seen(job_id, unseen[job_id].offer.datasite)
                self.channel.forget(sent_handle(unseen[job_id]))
            else:
                self.result.replies[job_id] = response.error_text


def sent_handle(job: SubmittedJob) -> RequestHandle:
    """The handle of the request that carried ``job`` (its id is the job's)."""
    return RequestHandle(
        id=job.job_id,
        recipient=job.offer.datasite,
        app=JOBS_APP,
        endpoint=JOBS_ENDPOINT,
        sent_at=job.sent_at,
        expires_at=job.sent_at + JOB_TTL,
    )


# --------------------------------------------------------------------------- reviewing
@dataclass(frozen=True)
class Review:
    """What ``syftflwr jobs show`` prints of one received job."""

    job: ReceivedJob
    info: BundleInfo
    signer_status: TrustStatus | None
    """pinned / known / new, or None: not the key believed for the aggregator now."""
    previous: ReceivedJob | None
    """The highest version approved from the same aggregator and app (None: none)."""
    diff: str
    same_files: bool
    """Only the build differs from :attr:`previous` (flwr version, CONTENT formatting)."""


def review(who: Who, job_id: str) -> Review:
    """Everything review shows of ``job_id`` (a unique prefix is enough), read from the
    store: nothing is imported or executed, nothing is sent.

    :raises ConfigError: no such job. :raises JobError: its FAB was altered on disk.
    :raises BundleRefused: it no longer passes inspection.
    """
    with JobStore(who.state_root, who.email) as store:
        job = store.received_job(resolve_job_id(store, job_id))
        fab = store.fab(job.job_id)
        info = inspect_bundle(fab)
        status = SignerTrust(who.state_root, who.email, who.settings.signing_keys).status(
            job.offer.aggregator, job.signer_key
        )
        previous = store.last_approved(job.offer.aggregator, job.offer.app)
        if previous is not None and previous.job_id == job.job_id:
            previous = None
        diff, same = "", False
        if previous is not None:
            old = store.fab(previous.job_id)
            diff = diff_bundles(old, fab)
            same = same_files(inspect_bundle(old), info)
    return Review(job, info, status, previous, diff, same)


def resolve_job_id(store: JobStore, given: str) -> str:
    """The id of the one received job that ``given`` is, or starts.

    :raises ConfigError: none, or several.
    """
    given = given.strip().lower()
    known = [j.job_id for j in store.received_jobs()]
    if given in known:
        return given
    matches = [k for k in known if k.startswith(given)] if given else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(
            f"{given!r} starts {len(matches)} jobs: {', '.join(sorted(matches)[:5])}",
            fix="give more of the job id",
        )
    raise ConfigError(
        f"no job {given!r} was received here",
        fix="`syftflwr jobs` lists the jobs you received (and collects new ones)",
    )


# --------------------------------------------------------------------------- deciding
@dataclass(frozen=True)
class Decided:
    stored: StoredDecision
    new: bool
    """False: the job had this decision already (it is sent again, unchanged)."""
    delivery: Delivery


def decide(
    who: Who,
    job_id: str,
    verdict: Verdict,
    *,
    reason: str = "",
) -> Decided:
    """Sign ``verdict`` on ``job_id``, record it (append-only) and send it back to the
    aggregator (again, when the job had this decision already: a lost delivery is
    repaired by deciding again).

    :raises ConfigError: an unknown job id.
    :raises DecisionConflictError: the job was decided the other way (final).
    :raises JobError: approving an older version than one approved, without rollback.
    """
    identity = SigningIdentity.load_or_create(who.state_root, who.email)
    with JobStore(who.state_root, who.email) as store:
        job = store.received_job(resolve_job_id(store, job_id))
        stored, new = store.decide(job.job_id, verdict, identity, reason=reason)
    body = DecisionMessage(stored.decision.encode(), stored.signature).encode()
    aggregator = job.offer.aggregator
    with who.connect([aggregator]) as channel:
        delivery = channel.send(aggregator, DECISIONS_ENDPOINT, body)
    return Decided(stored, new, delivery)


def trust(who: Who, email: str) -> bool:
    """Accept jobs from ``email`` from now on; False if it was already accepted."""
    try:
        email = validate_email(email).lower()
    except ValueError as exc:
        raise ConfigError(str(exc), fix="give a plain email, e.g. ds@university.org") from None
    with JobStore(who.state_root, who.email) as store:
        if email in accepted_senders(who, store):
            return False
        return store.trust_submitter(email)
