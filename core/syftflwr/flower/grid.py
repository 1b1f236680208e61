"""``TransportGrid``: a Flower ``Grid`` whose messages travel over any syftflwr transport.

A ServerApp (message API or legacy ``ServerConfig``/``Strategy`` API) drives it exactly
like Flower's own grids. Each instruction becomes one request envelope to the
datasite's ``messages`` endpoint; its reply is the response. What Flower's grids do,
this one does too:

* ``push_messages`` stamps ``run_id``, ``src_node_id`` (the SuperLink's id) and a fresh
  ``message_id`` and refuses replies / non-positive TTLs;
* replies keep ``reply_to_message_id``, ``run_id`` and swapped src/dst — a reply that
  does not is turned into an error instead of being aggregated;
* an instruction whose TTL passes without a reply yields Flower's "message
  unavailable" error reply (``ErrorCode.MESSAGE_UNAVAILABLE``), an expired reply yields
  ``REPLY_MESSAGE_UNAVAILABLE``, both with a tolerated clock skew;
* ``send_and_receive`` returns what arrived by ``timeout``; every missing reply is
  logged and recorded (datasite, round, seconds waited) and the round goes on.

With a :class:`~syftflwr.flower.resume.RunTracker` every instruction and every reply
the ServerApp receives is journaled, and a resumed run answers the instructions its
stopped run already sent from that journal (docs/resume.md).

Waiting is the transport's ``RPCRole.wait`` (woken by arrival notifications, or polled
at the transport's declared interval), never a fixed sleep. Everything is thread-safe:
the legacy API calls ``send_and_receive`` from a thread pool.
"""

from __future__ import annotations

import copy
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from flwr.app import ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid

from syftflwr.deadline import Outcome, OverrunError, call_all_within, within
from syftflwr.envelope import Request, Response
from syftflwr.errors import (
    ConfigError,
    MalformedMessageError,
    StorageError,
    TransportClosedError,
    TransportError,
    UntrustedKeyError,
)
from syftflwr.flower.blobs import (
    BLOBS_HEADER,
    BLOBS_RECORD,
    BlobShelf,
    Named,
    Planned,
    PushPlan,
    Use,
    header_value,
    reserved_name_error,
    with_refs,
)
from syftflwr.flower.compat import (
    SYSTEM_MESSAGE_TYPE,
    make_message,
    make_metadata,
    make_run,
    run_id_of,
    set_message_id,
    set_task_identity,
    stamp_instruction,
)
from syftflwr.flower.liveness import Liveness, quiet_period
from syftflwr.flower.node_ids import node_ids_for
from syftflwr.flower.progress import (
    FailureEvent,
    FailureKind,
    FanOut,
    MessageInfo,
    ProgressReporter,
    ReplyEvent,
    RunRecorder,
)
from syftflwr.flower.resume import Match, Pending, RunTracker, in_reply_order, replayed_pending
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.names import new_message_id, validate_app_name, validate_email, validate_identifier
from syftflwr.roles import (
    ClientRole,
    ExposesClient,
    ReattachesRequests,
    RequestHandle,
    RPCRole,
    SeesPickups,
    offers,
)
from syftflwr.roles import check_identity as check_reported

log = logging.getLogger("syftflwr.flower")

MESSAGES_ENDPOINT = "messages"
"""The endpoint Flower traffic uses on every transport."""
STOP_ACTION = "stop"
"""``action`` of the system message that ends a datasite runner."""
APP_HASH_HEADER = "syftflwr.app-hash"
"""Request header: the hash of the approved FAB this run's app is (``syftflwr submit``).
Sealing authenticates headers, so a datasite that serves only approved apps can refuse
any request whose run is not the app it approved (:class:`DatasiteRunner`)."""

MESSAGE_UNAVAILABLE_REASON = (
    "Error: Message Unavailable - the instruction expired (TTL) before {datasite} replied"
)
TRANSPORT_GRACE = 3.0
"""Seconds a transport call may overrun the round's deadline before the Grid goes on
without it (the call may block forever: a broken plugin's storage)."""
FORGET_WAIT = 10.0
"""Seconds :meth:`TransportGrid.close` waits for the run's requests to be deleted."""
INTERRUPT_CHECK = 1.0
"""Seconds between two looks at :meth:`TransportGrid.interrupt` while waiting for replies."""
REPLY_UNAVAILABLE_REASON = "Error: Reply Message Unavailable - the reply from {datasite} expired"


class RunInterrupted(BaseException):
    """The run was stopped (a signal, see :meth:`TransportGrid.interrupt`): raised by the
    Grid's calls so the ServerApp ends wherever it waits. A BaseException, like
    KeyboardInterrupt, so a ServerApp's ``except Exception`` does not swallow it."""


class _Forgetter:
    """Forgets requests on a thread of its own, in order: housekeeping must never hold
    the ServerApp (a transport whose delete blocks would hold it for good)."""

    def __init__(self, rpc: RPCRole) -> None:
        self._rpc = rpc
        self._queue: queue.SimpleQueue[tuple[Callable[[], None], Callable[[], None] | None]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._waiting = 0
        self._thread: threading.Thread | None = None

    def forget(self, handle: RequestHandle, then: Callable[[], None] | None = None) -> None:
        """Forget ``handle`` soon; ``then()`` once it is forgotten."""
        self.later(partial(self._rpc.forget, handle), then)

    def later(self, job: Callable[[], None], then: Callable[[], None] | None = None) -> None:
        """Run ``job`` (housekeeping: a forget, a blob's drop) soon; ``then()`` after it."""
        with self._lock:
            self._waiting += 1
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="syftflwr-forget",
                                                daemon=True)  # fmt: skip
                self._thread.start()
        self._queue.put((job, then))

    def _run(self) -> None:
        while True:
            job, then = self._queue.get()
            try:
                job()
                if then is not None:
                    then()
            except Exception:  # housekeeping: retention deletes what this could not
                log.debug("housekeeping failed (%s)", job, exc_info=True)
            finally:
                with self._lock:
                    self._waiting -= 1
                    if not self._waiting:
                        self._idle.set()

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued is forgotten (False: not within ``timeout``)."""
        return self._idle.wait(timeout)


@dataclass
class _Push:
    """An instruction on its way: prepared in order, then handed to the transport."""

    message: Message
    email: str
    message_id: str
    report: bool
    tracker: RunTracker | None
    match: Match | None
    pending: Pending | None = None
    """Set once known: replayed from the journal, sent, or failed."""
    request: Request | None = None
    info: MessageInfo | None = None
    expires_at: float = 0.0
    fingerprint: str = ""
    parts: dict[str, str] = field(default_factory=dict)
    server_round: int | None = None


def _request_of(push: _Push) -> Request:
    assert push.request is not None
    return push.request


def new_run_id() -> int:
    """A random run id (positive, fits sqlite's signed 64-bit integers)."""
    return secrets.randbelow(2**63 - 2) + 2


def check_identity(role: object, email: str, what: str) -> None:
    """Refuse a role whose transport reports another identity than ``email``: requests
    would be refused (or answered) under the wrong name much later, far from the cause."""
    client = cast(ExposesClient, role).client if offers(role, ExposesClient) else None
    reported = client.email if client is not None and offers(client, ClientRole) else None
    if isinstance(reported, str):
        check_reported(email, reported, None, who=f"the {what}")


def _round_of(message: Message) -> int | None:
    """The round: Flower's legacy API puts it in ``group_id``, the message API in the
    ``server-round`` entry of the content's ConfigRecord."""
    group_id = message.metadata.group_id
    if group_id.isdigit():
        return int(group_id)
    if message.has_content():
        for record in message.content.values():
            if isinstance(record, ConfigRecord):
                value = record.get("server-round")
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
    return None


def _reply_metrics(message: Message) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if not message.has_content():
        return metrics
    for key, record in message.content.items():
        # Legacy (ServerConfig/Strategy) replies carry metrics in "<res>.metrics" ConfigRecords.
        legacy = isinstance(record, ConfigRecord) and key.endswith(".metrics")
        if isinstance(record, MetricRecord) or legacy:
            for name, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"{key}.{name}"] = float(value)
    return metrics


class TransportGrid(Grid):
    """A Flower Grid over an :class:`~syftflwr.roles.RPCRole`.

    :param rpc: the aggregator's RPC role (its sender identity must be ``email``).
    :param email: the aggregator's email, the sender of every request.
    :param app_name: ``[tool.syftflwr] app_name``; datasites serve requests for it.
    :param datasites: datasite emails; node ids derive from them (see ``node_ids``).
    :param clock_skew: seconds of clock difference tolerated in TTL checks.
    :param max_wait: upper bound (seconds) of every ``send_and_receive`` wait, also
        when the caller passes ``timeout=None`` (Flower's legacy API does); ``None``
        waits until every reply arrives or its instruction's TTL passes.
    :param run_id: the run id (random if omitted); ``set_run`` may change it.
    :param reporter: receives progress events; ``grid.report`` always records them.
    :param tracker: journals the run (and replays a stopped one); see docs/resume.md.
    :param profile: the wire profile; it decides the node ids (syft-flwr 0.5: CRC-32)
        and whether datasites can be stopped.
    :param transport: the transport's name, for messages about it.
    :param datasite_command: how a datasite is started, ``{email}`` for its email: the
        hint logged when one shows no sign of life (:mod:`syftflwr.flower.liveness`).
    :param blob_threshold: ArrayRecords at least this large (serialized bytes) are
        stored once per push as shared blobs (:mod:`syftflwr.flower.blobs`); None: never
        (the transport cannot share objects, or the profile is not native).

    Constructing (or ``set_run``) sets Flower's process-global task identity where the
    installed Flower has one, so a ServerApp can build ``Message`` objects.
    """

    def __init__(
        self,
        rpc: RPCRole,
        *,
        email: str,
        app_name: str,
        datasites: Sequence[str],
        clock_skew: float = 30.0,
        max_wait: float | None = None,
        run_id: int | None = None,
        reporter: ProgressReporter | None = None,
        endpoint: str = MESSAGES_ENDPOINT,
        tracker: RunTracker | None = None,
        profile: str = "native",
        datasite_command: str | None = None,
        transport: str = "",
        blob_threshold: int | None = None,
        app_hash: str | None = None,
    ) -> None:
        if app_hash is not None and profile != "native":
            raise ConfigError(
                f"the {profile!r} wire profile cannot carry the hash of an approved app, so "
                "its datasites cannot check what they run",
                key="tool.syftflwr.profile",
                fix="use the native profile for apps sent with `syftflwr submit`, or run "
                "this app as a local app (without submitting it)",
            )
        self.rpc = rpc
        self.app_hash = app_hash
        """The approved FAB's hash every request names (None: a local app, no jobs)."""
        self.transport = transport
        """The transport's name, for messages about it."""
        self.profile = profile
        self._refusals: dict[str, str] = {}
        self._forgetter = _Forgetter(rpc)
        self._stuck_waits = 0
        self.tracker = tracker
        self.email = validate_email(email)
        check_identity(rpc, email, "aggregator")
        self.app_name = validate_app_name(app_name, profile=profile)
        self.endpoint = validate_identifier(endpoint, "endpoint")
        self.clock_skew = clock_skew
        self.max_wait = max_wait
        self.node_ids: dict[str, int] = node_ids_for(datasites, profile)
        self._email_by_node = {node_id: e for e, node_id in self.node_ids.items()}
        self.report = RunRecorder()
        self._reporter: ProgressReporter = FanOut(
            [self.report, reporter] if reporter is not None else [self.report]
        )
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self.liveness: Liveness | None = None
        if offers(rpc, SeesPickups):  # the transport can tell (docs/reference/hooks.md)
            self.liveness = Liveness(
                self._reporter, quiet=quiet_period(max_wait), command=datasite_command
            )
            cast(SeesPickups, rpc).on_picked_up(self.liveness.picked_up)
        self.blobs: BlobShelf | None = None
        if blob_threshold is not None:
            self.blobs = BlobShelf(rpc, app=self.app_name, threshold=blob_threshold,
                                   later=self._forgetter.later, journal=tracker,
                                   transport=self._transport_name)  # fmt: skip
            if tracker is not None:  # a resumed run keeps what its re-attached requests name
                self.blobs.resumed(tracker.journal.blobs(tracker.run_id))
        self._interrupted: str | None = None
        self._run: Any = None
        if run_id is None:
            run_id = tracker.run_id if tracker is not None else new_run_id()
        self.set_run(run_id)

    # ------------------------------------------------------------------ run
    def set_run(self, run: Any) -> None:
        """Accept a run id (Flower 1.26 style) or a ``Run`` (newer Flower)."""
        run_id = run_id_of(run)
        self._run = run if not isinstance(run, int) else make_run(run_id)
        set_task_identity(run_id, SUPERLINK_NODE_ID)

    @property
    def run(self) -> Any:
        return copy.copy(self._run)

    @property
    def run_id(self) -> int:
        return run_id_of(self._run)

    # ------------------------------------------------------------------ nodes / messages
    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids.values())

    def email_of(self, node_id: int) -> str:
        try:
            return self._email_by_node[node_id]
        except KeyError:
            known = ", ".join(f"{e} ({n})" for e, n in self.node_ids.items())
            raise ValueError(
                f"no datasite has node id {node_id}; this run's datasites are: {known}. "
                "Use grid.get_node_ids() to address messages."
            ) from None

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._check_interrupted()
        return self._push_all(list(messages), report=True, limit=self._limit(None))

    def _limit(self, timeout: float | None) -> float | None:
        """The longest a call may take: ``timeout`` and ``max_wait``, the smaller."""
        return min((t for t in (timeout, self.max_wait) if t is not None), default=None)

    # ------------------------------------------------------------------ interruption
    def interrupt(self, reason: str) -> None:
        """End the run from any thread (a signal handler's helper): every wait returns
        within :data:`INTERRUPT_CHECK` seconds and every later call raises
        :class:`RunInterrupted`. Instructions still
        pending stay journaled as sent, so ``--resume`` re-attaches to their replies."""
        self._interrupted = reason

    @property
    def interrupted(self) -> str | None:
        """Why the run was interrupted (None: it was not)."""
        return self._interrupted

    def _check_interrupted(self) -> None:
        if self._interrupted is not None:
            raise RunInterrupted(self._interrupted)

    def _push_all(
        self, messages: Sequence[Message], *, report: bool, limit: float | None
    ) -> list[str]:
        """Push ``messages``: prepared one after the other (ids, fingerprints and the
        journal follow the ServerApp's order), then handed to the transport in parallel
        within ``limit`` seconds — a datasite whose key is missing, or a transport that
        blocks, delays nobody else, and costs at most the round's budget."""
        prepared = [self._prepare(message, report=report) for message in messages]
        sending = [p for p in prepared if p.pending is None]
        blobs = self._plan_blobs(sending, limit)
        for push, plan in zip(sending, blobs.planned, strict=True):
            self._finish(push, plan)
        sending = [p for p in sending if p.pending is None]
        try:
            if sending:
                self._transmit(sending, limit)
        finally:
            self._settle_blobs(sending, blobs)
        return [self._register(p) for p in prepared]

    def _prepare(self, message: Message, *, report: bool) -> _Push:
        metadata = message.metadata
        if metadata.reply_to_message_id:
            raise ValueError(
                "push_messages sends instructions; this Message is a reply "
                f"(reply_to_message_id={metadata.reply_to_message_id!r})"
            )
        email = self.email_of(metadata.dst_node_id)
        if not metadata.ttl > 0:
            raise ValueError(f"Message TTL must be positive, got {metadata.ttl}")
        if message.has_content() and BLOBS_RECORD in message.content:
            raise reserved_name_error()
        server_round = _round_of(message)
        tracker = self.tracker if report else None  # stop messages are not the run's
        fingerprint: str = ""
        parts: dict[str, str] = {}
        match = None
        if tracker is not None:
            fingerprint, parts, match = tracker.match(message, server_round, email)
        message_id = match.entry.message_id if match is not None else new_message_id()
        stamp_instruction(message, run_id=self.run_id, src_node_id=SUPERLINK_NODE_ID)
        set_message_id(message, message_id)
        if tracker is not None:
            tracker.observe(server_round, message)
        push = _Push(message, email, message_id, report, tracker, match)
        if match is not None and not match.resend:  # the stopped run sent it: no send
            handle = self._attach(email, message_id, match.entry.expires_at)
            info = self._info(message, email)
            push.pending = replayed_pending(match, handle, info, metadata.group_id)
            return push
        expires_at = metadata.created_at + metadata.ttl
        if match is not None:  # half-pushed by the stopped run: same id, same expiry
            expires_at = match.entry.expires_at
        push.expires_at = expires_at
        push.fingerprint, push.parts, push.server_round = fingerprint, parts, server_round
        return push

    def _plan_blobs(self, pushes: Sequence[_Push], limit: float | None) -> PushPlan:
        """Store the shared blobs of these pushes (when this Grid uses blobs)."""
        uses = [Use(p.message_id, p.email, p.message.content, p.expires_at)
                for p in pushes if p.message.has_content()]  # fmt: skip
        if self.blobs is None or not uses:
            return PushPlan([Planned() for _ in pushes])
        with within(limit):
            plan = self.blobs.plan(uses, limit)
        planned = iter(plan.planned)
        return PushPlan([next(planned) if p.message.has_content() else Planned()
                         for p in pushes], plan.uploads)  # fmt: skip

    def _settle_blobs(self, pushes: Sequence[_Push], plan: PushPlan) -> None:
        """Wait for the blobs this push's messages named while they uploaded; withdraw
        the messages whose blob failed after all (their readers stop waiting once the
        ref's ``ready_by`` passed) and report them as unsent."""
        if self.blobs is None:
            return
        failed = self.blobs.settle(plan)
        for push in pushes:
            reason = failed.get(push.message_id)
            pending = push.pending
            if reason is None or pending is None or pending.unsent is not None:
                continue
            try:
                self.rpc.forget(pending.handle)
            except Exception:
                log.debug("could not withdraw request %s", push.message_id, exc_info=True)
            assert push.info is not None
            push.pending = self._unsent(push.message, push.info, reason, push.tracker)

    def _finish(self, push: _Push, plan: Planned) -> None:
        """Encode ``push`` (its blobs' refs in place of their arrays) and journal it."""
        message, email, tracker, match = push.message, push.email, push.tracker, push.match
        metadata, message_id, expires_at = message.metadata, push.message_id, push.expires_at
        push.request = self._request(message, email, expires_at, plan.refs)
        if tracker is not None and match is None:
            tracker.journal.pushing(
                self.run_id,
                message_id,
                fingerprint=push.fingerprint,
                parts=push.parts,
                datasite=email,
                message_type=metadata.message_type,
                server_round=push.server_round,
                expires_at=expires_at,
            )
        push.info = self._info(message, email)
        if push.report and self.liveness is not None:  # a key wait in the send counts too
            self.liveness.sending(push.info)
        if plan.error is not None:  # its blob could not be stored: as if the send failed
            push.pending = self._sent(push, Outcome(error=plan.error))

    def _request(
        self,
        message: Message,
        email: str,
        expires_at: float,
        refs: Mapping[str, Named] | None = None,
    ) -> Request:
        metadata = message.metadata
        headers: dict[str, str] = {}
        if self.app_hash is not None:
            headers[APP_HASH_HEADER] = self.app_hash
        if refs:  # the arrays travel in shared blobs; the sealed body carries their refs
            message = make_message(metadata, content=with_refs(message.content, refs))
            headers[BLOBS_HEADER] = header_value({k: n.ref for k, n in refs.items()})
        return Request(
            id=metadata.message_id,
            sender=self.email,
            recipient=email,
            app=self.app_name,
            endpoint=self.endpoint,
            body=encode_message(message),
            created_at=metadata.created_at,
            expires_at=expires_at,
            headers=headers,
        )

    def _transmit(self, pushes: Sequence[_Push], limit: float | None) -> None:
        """Hand ``pushes`` to the transport in parallel, each within ``limit`` (key waits
        included); fills each one's ``pending`` (an unsent failure if it failed or did
        not return in time: a send that returns later is undone)."""

        def undo(index: int, handle: RequestHandle) -> None:
            try:  # nobody will wait for its reply: take the request back
                self.rpc.forget(handle)
            except Exception:
                log.debug("could not take back request %s", handle.id, exc_info=True)

        calls = [partial(self.rpc.send, _request_of(p)) for p in pushes]
        bound = None if limit is None else limit + TRANSPORT_GRACE
        with within(limit):  # key waits end at the limit; a hung transport at the bound
            outcomes = call_all_within(calls, bound, name="send", late=undo)
        fatal: BaseException | None = None
        for push, outcome in zip(pushes, outcomes, strict=True):
            try:
                push.pending = self._sent(push, outcome)
            except BaseException as exc:  # the transport closed, an interrupt: re-raised
                fatal = fatal or exc
        if fatal is not None:
            raise fatal

    def _sent(self, push: _Push, outcome: Outcome[RequestHandle]) -> Pending:
        """The pending entry of a push the transport accepted (or the failure)."""
        tracker, match, info = push.tracker, push.match, push.info
        assert info is not None
        exc = outcome.error
        if exc is None:
            assert outcome.value is not None
            handle = outcome.value
        elif isinstance(exc, OverrunError):
            return self._unsent(push.message, info, TransportError(
                f"{self._transport_name} did not return from sending in time ({exc})"
            ), tracker)  # fmt: skip
        elif isinstance(exc, TransportError) and not isinstance(exc, TransportClosedError):
            if match is not None and isinstance(exc, StorageError) and "already exists" in str(exc):
                handle = self._attach(push.email, push.message_id, push.expires_at)
            else:
                if isinstance(exc, UntrustedKeyError):
                    self._refused(push.email, exc)
                return self._unsent(push.message, info, exc, tracker)
        else:
            if tracker is not None and match is None:
                tracker.send_failed(push.message_id)
            raise exc
        if tracker is not None:
            tracker.sent(push.message_id)
        return Pending(handle, info, push.message.metadata.group_id, push.expires_at)

    def _refused(self, email: str, exc: UntrustedKeyError) -> None:
        """This run will not talk to ``email`` (its key changed): tell it, once, so it
        does not serve a run that never comes (see :meth:`_tell_refused`)."""
        with self._lock:
            first = email not in self._refusals
            self._refusals[email] = str(exc)
        if first:
            threading.Thread(target=self._tell_refused, args=(email, str(exc)),
                             name="syftflwr-refusal", daemon=True).start()  # fmt: skip

    def _tell_refused(self, email: str, reason: str) -> None:
        """Send ``email`` a stop flagged ``refused``, sealed to the key it publishes now
        (the one this run refuses to trust): a stop is no secret, and the datasite still
        authenticates this aggregator. A transport that cannot send such a notice (no
        ``send_notice``) leaves the datasite serving; it logs why."""
        notice = getattr(self.rpc, "send_notice", None)
        if not callable(notice):
            log.info("cannot tell %s that this run refuses it (%s)", email, reason)
            return
        why = f"the aggregator {self.email} refuses this datasite: {reason}"
        message = self._stop_message(self.node_ids[email], ttl=600.0, reason=why, refused=True)
        stamp_instruction(message, run_id=self.run_id, src_node_id=SUPERLINK_NODE_ID)
        set_message_id(message, new_message_id())
        metadata = message.metadata
        request = self._request(message, email, metadata.created_at + metadata.ttl)
        try:
            with within(self.max_wait):
                notice(request)
        except Exception as exc:
            log.warning("could not tell %s that this run refuses it: %s", email, exc)
            return
        log.info("told %s that this run refuses it", email)

    def _stop_message(
        self, node_id: int, *, ttl: float, reason: str, refused: bool = False
    ) -> Message:
        metadata = make_metadata(
            run_id=self.run_id,
            message_id="",
            src_node_id=SUPERLINK_NODE_ID,
            dst_node_id=node_id,
            reply_to_message_id="",
            group_id="",
            created_at=time.time(),
            ttl=ttl,
            message_type=SYSTEM_MESSAGE_TYPE,
        )
        config: dict[str, Any] = {"action": STOP_ACTION, "reason": reason, "run-id": self.run_id}
        if refused:
            config["refused"] = True
        return make_message(metadata, content=RecordDict({"config": ConfigRecord(config)}))

    def _register(self, push: _Push) -> str:
        pending = push.pending
        assert pending is not None
        message_id = push.message_id
        if pending.unsent is not None and push.report and self.liveness is not None:
            self.liveness.done(message_id, answered=False)
        pending.report = push.report
        with self._lock:
            self._reap_expired()
            self._pending[message_id] = pending
        info = pending.info
        if push.report:
            self._reporter.on_sent(info)
            if pending.unsent is not None:
                self._reporter.on_failure(pending.unsent)
            elif self.liveness is not None:
                self.liveness.announced(message_id)
        return message_id

    def _info(self, message: Message, email: str) -> MessageInfo:
        md = message.metadata
        return MessageInfo(
            datasite=email,
            node_id=md.dst_node_id,
            message_id=md.message_id,
            message_type=md.message_type,
            round=_round_of(message),
            sent_at=time.time(),
        )

    def _unsent(
        self,
        message: Message,
        info: MessageInfo,
        exc: Exception,
        tracker: RunTracker | None,
    ) -> Pending:
        """One datasite's send failed (its key is missing or untrusted, the message is
        too large, its storage failed): that instruction fails, the round goes on with
        the others. The error reply is journaled like any reply, so a resumed run
        replays the same failure instead of diverging."""
        waited = time.time() - info.sent_at
        reason = f"could not send to {info.datasite}: {exc}"
        log.warning("%s message %s of round %s: %s", info.message_type, info.message_id,
                    info.round, reason)  # fmt: skip
        handle = self._handle(info.datasite, info.message_id, 0.0)
        pending = Pending(handle, info, message.metadata.group_id, float("inf"), report=False)
        pending.stored = self._failed(pending, "unsent", reason, ErrorCode.UNKNOWN, waited)
        pending.unsent = FailureEvent(info, "unsent", reason, waited, ErrorCode.UNKNOWN)
        if tracker is not None:  # handed over by the next call, before any later reply
            pending.order = tracker.returned(info.message_id, pending.stored, None)
        return pending

    def _handle(self, email: str, message_id: str, expires_at: float) -> RequestHandle:
        return RequestHandle(
            id=message_id,
            recipient=email,
            app=self.app_name,
            endpoint=self.endpoint,
            sent_at=time.time(),
            expires_at=expires_at,
        )

    def _attach(self, email: str, message_id: str, expires_at: float) -> RequestHandle:
        """A handle on a request the stopped run sent: ``fetch``/``wait`` read its
        response from storage like any other. A transport that tracks its own sends
        offers ``attach`` to watch for it too (else it is found on the periodic
        re-check, a few seconds late)."""
        handle = self._handle(email, message_id, expires_at)
        if offers(self.rpc, ReattachesRequests):
            cast(ReattachesRequests, self.rpc).attach(handle)
        return handle

    # ------------------------------------------------------------------ replies
    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Replies available now; an unknown or expired id yields Flower's
        message-unavailable error reply (as a SuperLink answers). Replayed replies come
        in the batches the stopped run's pulls got them in, one batch per call."""
        self._check_interrupted()
        ids = list(message_ids)
        batch = self._new_batch()
        with self._lock:
            pending = {i: self._pending.get(i) for i in ids}
        first = min(
            (p.batch for p in pending.values() if p is not None and p.batch is not None),
            default=None,
        )
        slots: list[Message | str] = []  # a reply, or the id of a stored one to place
        for message_id in ids:
            entry = pending[message_id]
            if entry is None:
                reason = (f"Error: Message Unavailable - {message_id} is not a pending message "
                          "of this grid (never pushed, already pulled, or expired)")  # fmt: skip
                error = Error(code=ErrorCode.MESSAGE_UNAVAILABLE, reason=reason)
                slots.append(self._error_reply(SUPERLINK_NODE_ID, message_id, "",
                                               SYSTEM_MESSAGE_TYPE, error))  # fmt: skip
            elif entry.gave_up:
                continue
            elif entry.stored is not None:
                if entry.batch is None or entry.batch == first:
                    slots.append(message_id)
            elif first is None:  # live replies come after every replayed batch
                reply = self._resolve(message_id, self.rpc.fetch(entry.handle), batch)
                if reply is not None:
                    slots.append(reply)
        ordered = iter(in_reply_order([s for s in slots if isinstance(s, str)], pending))
        out: list[Message] = []
        for slot in slots:
            reply = self._resolve_stored(next(ordered)) if isinstance(slot, str) else slot
            if reply is not None:
                out.append(reply)
        return out

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        self._check_interrupted()
        limit = self._limit(timeout)  # one budget: sending (key waits too) and collecting
        started = time.monotonic()
        ids = self._push_all(list(messages), report=True, limit=limit)
        return self._collect(ids, limit, started=started)

    def _new_batch(self) -> int | None:
        return self.tracker.new_batch() if self.tracker is not None else None

    def _collect(
        self, ids: Sequence[str], timeout: float | None, *, started: float | None = None
    ) -> list[Message]:
        """Replies to ``ids`` until ``timeout`` seconds after ``started`` (monotonic;
        default: now) — a call that spent part of its budget sending passes its start."""
        limit = self._limit(timeout)
        started = time.monotonic() if started is None else started
        deadline = None if limit is None else started + limit
        remaining = set(ids)
        replies: list[Message] = []
        batch = self._new_batch()
        with self._lock:
            known = {i: self._pending[i] for i in ids if i in self._pending}
        stored = [i for i in ids if i in known and known[i].stored is not None]
        given_up = {i for i in ids if i in known and known[i].gave_up}
        for message_id in in_reply_order(stored, known):
            reply = self._resolve_stored(message_id)
            remaining.discard(message_id)
            if reply is not None:
                replies.append(reply)
        remaining -= given_up  # the stopped run went on without them: so does the replay
        if given_up:
            self._report_missing(given_up, 0.0, record=False)
        while remaining:
            self._check_interrupted()
            with self._lock:
                pending = {i: self._pending[i] for i in remaining if i in self._pending}
            remaining &= pending.keys()  # pulled elsewhere: not ours to report
            if not remaining:
                break
            now = time.time()
            next_expiry = min(p.expires_at for p in pending.values()) + self.clock_skew - now
            step = max(0.0, next_expiry)
            if deadline is not None:
                step = min(step, max(0.0, deadline - time.monotonic()))
            step = min(step, INTERRUPT_CHECK)  # a wait ends on a reply or its timeout only
            responses = self._wait([p.handle for p in pending.values()], step)
            for response in responses:
                if response.id in remaining:
                    remaining.discard(response.id)
                    reply = self._resolve(response.id, response, batch)
                    if reply is not None:
                        replies.append(reply)
            for message_id in list(remaining):
                reply = self._resolve(message_id, None, batch)
                if reply is not None:
                    remaining.discard(message_id)
                    replies.append(reply)
            if deadline is not None and time.monotonic() >= deadline:
                break
        if remaining:
            self._report_missing(remaining, time.monotonic() - started)
        return replies

    @property
    def _transport_name(self) -> str:
        return f"the {self.transport} transport" if self.transport else "the transport"

    def _wait(self, handles: list[RequestHandle], step: float) -> list[Response]:
        """``rpc.wait``, but back within ``step`` + :data:`TRANSPORT_GRACE` even if the
        transport blocks; while a wait is stuck no other is started (they would block
        too), and one WARNING says so."""
        with self._lock:
            stuck = self._stuck_waits
        if stuck:
            time.sleep(min(step, INTERRUPT_CHECK))
            return []

        def returned(_index: int, _value: list[Response]) -> None:
            with self._lock:
                self._stuck_waits -= 1

        bound = step + TRANSPORT_GRACE
        wait = partial(self.rpc.wait, handles, step)
        (outcome,) = call_all_within([wait], bound, name="wait", late=returned)
        if isinstance(outcome.error, OverrunError):
            with self._lock:
                self._stuck_waits += 1
            log.warning("%s did not return from waiting for replies within %.0fs; the round "
                        "goes on without it", self._transport_name, bound)  # fmt: skip
            return []
        if outcome.error is not None:
            raise outcome.error
        return outcome.value or []

    def _report_missing(self, ids: Iterable[str], waited: float, *, record: bool = True) -> None:
        for message_id in ids:
            with self._lock:
                pending = self._pending.get(message_id)
            if pending is None or not pending.report:
                continue
            if record and self.tracker is not None:
                self.tracker.gave_up(message_id)
            info = pending.info
            log.warning("no reply from %s (node %d) to %s message %s of round %s after %.1fs; "
                        "going on without it", info.datasite, info.node_id, info.message_type,
                        message_id, info.round, waited)  # fmt: skip
            self._reporter.on_failure(
                FailureEvent(info, "timeout", "no reply before the wait ended", waited)
            )

    def _resolve_stored(self, message_id: str) -> Message | None:
        """A replayed instruction's reply, as the stopped run's ServerApp got it."""
        with self._lock:
            pending = self._pending.pop(message_id, None)
        if self.blobs is not None:
            self.blobs.done(message_id)
        if pending is None or pending.stored is None:
            return None
        if pending.report and pending.unsent is None:
            self._report_reply(pending.info, pending.stored, 0.0)
        return pending.stored

    def _report_reply(self, info: MessageInfo, reply: Message, waited: float) -> None:
        if reply.has_error():
            error = reply.error
            self._reporter.on_failure(
                FailureEvent(info, "error", error.reason or "", waited, error.code)
            )
        else:
            self._reporter.on_reply(ReplyEvent(info, waited, _reply_metrics(reply)))

    def _resolve(
        self, message_id: str, response: Response | None, batch: int | None
    ) -> Message | None:
        """The Flower reply for ``message_id`` given its response (or its absence);
        journaled (with a tracker) as handed over by call ``batch``, before the transport
        may delete anything. Callers hand replies over in the order they resolve them."""
        now = time.time()
        with self._lock:
            pending = self._pending.get(message_id)
            if pending is None:
                if response is not None:  # pulled already (another thread, or a re-delivery)
                    log.debug("dropped a second reply to %s: its first was delivered", message_id)
                return None
            if response is None and now <= pending.expires_at + self.clock_skew:
                return None
            del self._pending[message_id]
        self._settled(message_id, answered=response is not None)
        reply = self._reply_for(pending, response, now)
        if self.tracker is not None and pending.report:
            self.tracker.returned(message_id, reply, batch)
        self._forgetter.forget(pending.handle)  # housekeeping: never lose the reply over it
        return reply

    def _reply_for(self, pending: Pending, response: Response | None, now: float) -> Message:
        info = pending.info
        waited = now - info.sent_at
        if response is None:
            reason = MESSAGE_UNAVAILABLE_REASON.format(datasite=info.datasite)
            return self._failed(
                pending, "expired", reason, ErrorCode.MESSAGE_UNAVAILABLE, waited, system=True
            )
        if not response.ok:
            reason = f"datasite {info.datasite} could not process the message: "
            return self._failed(
                pending, "rejected", reason + response.error_text, ErrorCode.UNKNOWN, waited
            )
        try:
            reply = decode_message(response.body)
        except MalformedMessageError as exc:
            reason = f"datasite {info.datasite} sent an unreadable reply: {exc}"
            return self._failed(pending, "invalid", reason, ErrorCode.UNKNOWN, waited)
        problem = self._check_reply(reply, pending)
        if problem:
            reason = f"reply from {info.datasite} rejected: {problem}"
            return self._failed(pending, "invalid", reason, ErrorCode.UNKNOWN, waited)
        md = reply.metadata
        if md.created_at + md.ttl + self.clock_skew < now:
            reason = REPLY_UNAVAILABLE_REASON.format(datasite=info.datasite)
            return self._failed(
                pending, "expired", reason, ErrorCode.REPLY_MESSAGE_UNAVAILABLE, waited
            )
        if not md.message_id:
            set_message_id(reply, new_message_id())
        if pending.report:
            self._report_reply(info, reply, waited)
        return reply

    def _check_reply(self, reply: Message, pending: Pending) -> str | None:
        md = reply.metadata
        if md.reply_to_message_id != pending.info.message_id:
            return f"reply_to_message_id {md.reply_to_message_id!r} is not the instruction's id"
        if md.run_id != self.run_id:
            return f"run_id {md.run_id} is not this run's ({self.run_id})"
        if md.src_node_id != pending.info.node_id or md.dst_node_id != SUPERLINK_NODE_ID:
            return (
                f"src/dst node ids {md.src_node_id}/{md.dst_node_id} are not the swapped "
                f"instruction's ({pending.info.node_id}/{SUPERLINK_NODE_ID})"
            )
        if not reply.has_content() and not reply.has_error():
            return "it carries neither content nor an error"
        return None

    def _failed(
        self,
        pending: Pending,
        kind: FailureKind,
        reason: str,
        code: int,
        waited: float,
        *,
        system: bool = False,
    ) -> Message:
        info = pending.info
        if pending.report:
            log.warning("%s: %s", kind, reason)
            self._reporter.on_failure(FailureEvent(info, kind, reason, waited, code))
        message_type = SYSTEM_MESSAGE_TYPE if system else info.message_type
        return self._error_reply(info.node_id, info.message_id, pending.group_id, message_type,
                                 Error(code=code, reason=reason))  # fmt: skip

    def _error_reply(
        self, src_node_id: int, reply_to: str, group_id: str, message_type: str, error: Error
    ) -> Message:
        """An error reply to ``reply_to``, as a SuperLink makes one for a datasite."""
        metadata = make_metadata(
            run_id=self.run_id,
            message_id=new_message_id(),
            src_node_id=src_node_id,
            dst_node_id=SUPERLINK_NODE_ID,
            reply_to_message_id=reply_to,
            group_id=group_id,
            created_at=time.time(),
            ttl=0.0,
            message_type=message_type,
        )
        return make_message(metadata, error=error)

    def _reap_expired(self) -> None:
        """Drop replies nobody pulled once their TTL passed (caller holds the lock)."""
        now = time.time()
        for message_id, pending in list(self._pending.items()):
            if now > pending.expires_at + self.clock_skew:
                del self._pending[message_id]
                self._settled(message_id, answered=False)
                self._forgetter.forget(pending.handle)

    def _settled(self, message_id: str, *, answered: bool) -> None:
        """``message_id`` is no longer awaited: its liveness timer and the shared blobs it
        names let go of it."""
        if self.liveness is not None:
            self.liveness.done(message_id, answered=answered)
        if self.blobs is not None:
            self.blobs.done(message_id)

    # ------------------------------------------------------------------ lifecycle
    def remove_leftovers(self) -> int:
        """Delete the requests earlier runs of this aggregator left for nobody — stop
        messages nobody read (the run was killed right after sending them), an abandoned
        run's unanswered instructions — so datasites serving this run do not find them
        first. Returns how many were removed."""
        if self.tracker is None:
            return 0
        journal, removed = self.tracker.journal, 0
        for leftover in journal.leftovers(self.run_id):
            handle = self._handle(leftover.datasite, leftover.message_id, leftover.expires_at)
            self._forgetter.forget(handle, then=partial(journal.removed, leftover))
            removed += 1  # (what fails stays listed: the next run tries again)
        if removed:
            log.info("removed %d requests earlier runs left unread", removed)
        return removed

    def stop_datasites(
        self,
        *,
        reason: str = "the aggregator finished the run",
        timeout: float | None = 10.0,
        ttl: float = 600.0,
    ) -> dict[str, bool]:
        """Ask every datasite runner to stop; returns ``{email: acknowledged}``.

        The stop is a Flower system message (``message_type`` ``"system"``, content
        ``{"config": {"action": "stop", "reason": ..., "run-id": ...}}``, the run's id in
        its metadata too) that runners handle themselves; the ClientApp never sees it. A
        runner obeys only the stop of a run it handled instructions of (native profile).
        Acknowledgements are awaited up to ``timeout``; the stops still unread then are
        deleted when the Grid closes. syft-flwr 0.5 datasites stop on any stop without
        answering: in that wire profile it is sent, nothing is awaited, ``{}`` is
        returned, and the stop waits in storage (until ``ttl``, or the aggregator's next
        run: :meth:`remove_leftovers`).
        """
        limit = self._limit(timeout)  # one bounded wait for all: sent in parallel, then
        started = time.monotonic()  # the acknowledgements within what is left
        with self._lock:
            told = set(self._refusals)  # they were told when refused; sealing would fail
        stops = [self._stop_message(node_id, ttl=ttl, reason=reason)
                 for email, node_id in self.node_ids.items() if email not in told]  # fmt: skip
        try:
            pushed = self._push_all(stops, report=False, limit=limit)
        except Exception as exc:  # e.g. the transport closed: nothing more to do
            log.warning("could not send the stop messages: %s", exc)
            return dict.fromkeys(self.node_ids, False)
        ids: dict[str, str] = {}
        expiry = time.time() + ttl
        with self._lock:
            for message_id, message in zip(pushed, stops, strict=True):
                pending = self._pending.get(message_id)
                if pending is not None and pending.unsent is None:
                    ids[message_id] = self.email_of(message.metadata.dst_node_id)
        if self.tracker is not None and ids:  # a resumed run need not send them again
            self.tracker.stops_sent({i: (e, expiry) for i, e in ids.items()})
        if self.profile != "native":  # never acknowledged: do not wait for it, and do
            with self._lock:  # not let close() delete it before the datasites read it
                for message_id in ids:
                    self._pending.pop(message_id, None)
            return {}
        replies = self._collect(pushed, limit, started=started)
        acked = dict.fromkeys(self.node_ids, False)
        for reply in replies:
            sender = ids.get(reply.metadata.reply_to_message_id)
            if sender is not None and not reply.has_error():
                acked[sender] = True
        missing = [e for e, ok in acked.items() if not ok]
        if missing:
            log.warning("no stop acknowledgement from: %s", ", ".join(missing))
        return acked

    def pending(self) -> list[MessageInfo]:
        """Instructions sent whose reply has not been pulled yet."""
        with self._lock:
            return [p.info for p in self._pending.values()]

    def close(self, *, forget: bool = True) -> None:
        """Forget every pending request (the RPC role stays open: the caller owns it).
        ``forget=False`` (an interrupted run) leaves them in storage: a resumed run
        re-attaches to their replies."""
        if self.liveness is not None:
            self.liveness.close()
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        if forget:
            for p in pending:
                self._forgetter.forget(p.handle)
            if self.blobs is not None:  # (interrupted: a resumed run still needs them)
                self.blobs.close()
        if not self._forgetter.drain(FORGET_WAIT):
            log.warning("%s did not finish deleting this run's requests within %.0fs; "
                        "retention deletes what is left", self._transport_name,
                        FORGET_WAIT)  # fmt: skip
