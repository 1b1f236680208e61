"""``DatasiteRunner``: serve a Flower ClientApp on a datasite over any transport.

It registers the ``messages`` endpoint on the transport's events role, rebuilds each
Flower ``Message``, runs the ClientApp with a ``Context`` that persists across the
messages of one run (keyed by ``run_id``, as a SuperNode keeps it), and returns the
reply. Nothing a request can contain stops it from serving:

* a ClientApp exception becomes a Flower error reply (``CLIENT_APP_RAISED_EXCEPTION``,
  Flower's ``"<class ...>:<'...'>"`` reason plus the traceback's last frames);
* a body that is not a Flower message is logged and answered with an envelope error
  (the reply address is the envelope's sender), as is a message for another node;
* the aggregator's stop message (see :meth:`TransportGrid.stop_datasites`) is
  acknowledged and ends :meth:`run` cleanly — if this runner handled an instruction of
  the run it names and the stop was sent after the runner started: a stop left queued
  by an earlier run (its aggregator died right after sending it, nobody was serving) is
  acknowledged, logged once at INFO and ignored, so it cannot end the runner of a new
  run. Under the syft-flwr 0.5 profile every stop ends the runner,
  as upstream's datasites do. Expired requests and requests from anyone but the
  aggregator never get here: the events role drops them.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode

from syftflwr.envelope import Request, Response
from syftflwr.errors import MalformedMessageError
from syftflwr.flower.ast_lock import serialize_ast_parse
from syftflwr.flower.blobs import BLOBS_RECORD, resolve_blobs
from syftflwr.flower.compat import SYSTEM_MESSAGE_TYPE, new_context, set_message_id
from syftflwr.flower.grid import APP_HASH_HEADER, MESSAGES_ENDPOINT, STOP_ACTION, check_identity
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.names import new_message_id, validate_email
from syftflwr.roles import EventsRole, HandleLater, describe_refusals

log = logging.getLogger("syftflwr.flower")

ClientAppLike = Callable[[Message, Context], Message]
"""A ``flwr.clientapp.ClientApp`` or any callable with its ``(message, context)`` call."""


class NotApprovedError(Exception):
    """A request's app hash is not one this datasite approved; the text says why."""


class Approval(Protocol):
    """What ``syftflwr serve`` hands a runner: the approved ClientApp of an app hash."""

    def app_for(self, app_hash: str) -> ClientAppLike:
        """The ClientApp of ``app_hash``; :class:`NotApprovedError` if not approved."""
        ...


MAX_CONTEXTS = 16
"""Contexts of this many most recent runs are kept (each holds the ClientApp's state)."""


@dataclass(frozen=True)
class RunnerStats:
    handled: int
    """Messages answered with a reply from the ClientApp (errors included)."""
    errors: int
    """ClientApp exceptions turned into Flower error replies."""
    malformed: int
    """Requests that were not Flower messages for this node (answered with an error)."""
    stopped_by: str | None
    """Who stopped the runner (the aggregator's email), None if stopped locally."""
    refused: dict[str, int] = field(default_factory=dict)
    """Requests its events role refused before the ClientApp saw them, by kind
    (``syftflwr.roles.REFUSAL_KINDS``): hostile, damaged, replayed, unauthenticated..."""

    def describe(self) -> str:
        """``"1 messages handled, 0 errors, 0 malformed, 25 refused (20 unreadable, ...)"``."""
        return (
            f"{self.handled} messages handled, {self.errors} errors, {self.malformed} "
            f"malformed, {describe_refusals(self.refused)}"
        )


def error_reason(exc: BaseException, frames: int = 3) -> str:
    """Flower's reason format, then where it happened (the traceback's last frames)."""
    reason = f"{type(exc)}:<'{exc}'>"
    summary = traceback.extract_tb(exc.__traceback__)[-frames:]
    if summary:
        where = "".join(traceback.format_list(summary)).rstrip()
        reason += f"\nTraceback (most recent call last, last {len(summary)} frames):\n{where}"
    return reason


class DatasiteRunner:
    """Serve ``client_app`` for one datasite over ``events``.

    :param events: the datasite's events role (it validates sender, app and expiry).
    :param client_app: the ClientApp (or any callable taking ``(message, context)``).
    :param email: this datasite's email (for logs and stop bookkeeping).
    :param node_id: this datasite's Flower node id (``node_ids.node_id_for(email)``).
    :param node_config: Flower node config (e.g. ``partition-id``/``num-partitions``).
    :param run_config: the app's run config (``[tool.flwr.app.config]`` + overrides).
    :param scoped_stops: obey only the stops of runs this runner handled instructions
        of (native); False: every stop (the syft-flwr 0.5 profile's semantics).
    :param approval: set when this datasite serves only approved apps (``syftflwr
        serve``; ``client_app`` is then None): the ClientApp of each request is
        ``approval.app_for(hash)``, the hash being the request's authenticated
        :data:`APP_HASH_HEADER` (``""`` if none). A request it refuses
        (:class:`NotApprovedError`) never reaches any ClientApp and is answered with an
        error reply saying ``not approved``.
    :param clock_skew: seconds of clock difference tolerated when waiting for a shared
        blob its sender named while it still uploaded (``TransportContext.clock_skew``;
        the events role hands such a request back: :class:`~syftflwr.roles.HandleLater`).
    """

    def __init__(
        self,
        events: EventsRole,
        client_app: ClientAppLike | None,
        *,
        email: str,
        node_id: int,
        node_config: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        endpoint: str = MESSAGES_ENDPOINT,
        scoped_stops: bool = True,
        approval: Approval | None = None,
        clock_skew: float = 30.0,
    ) -> None:
        if (client_app is None) == (approval is None):
            raise TypeError("give DatasiteRunner a client_app or an approval, not both")
        self.events = events
        self.approval = approval
        self.client_app = client_app
        self.email = validate_email(email)
        check_identity(events, email, "datasite")
        self.node_id = node_id
        self.node_config = dict(node_config or {})
        self.run_config = dict(run_config or {})
        self.endpoint = endpoint
        self.scoped_stops = scoped_stops
        self._lock = threading.Lock()
        self._runs_served: set[int] = set()
        self._serving_since = time.time()
        self._contexts: OrderedDict[int, tuple[Context, threading.Lock]] = OrderedDict()
        self._handled = 0
        self._errors = 0
        self._malformed = 0
        self._not_approved = 0
        self._stopped_by: str | None = None
        self.stopped = threading.Event()
        self.clock_skew = clock_skew
        serialize_ast_parse()  # ClientApps of one process read arrays at once
        events.on_request(endpoint, self.handle)

    # ------------------------------------------------------------------ counters
    @property
    def stats(self) -> RunnerStats:
        counts = getattr(self.events, "refusal_counts", None)  # BaseEvents has it
        refused: dict[str, int] = dict(counts()) if callable(counts) else {}
        with self._lock:
            if self._not_approved:
                refused["not approved"] = self._not_approved
            return RunnerStats(
                self._handled, self._errors, self._malformed, self._stopped_by, refused
            )

    @property
    def handled(self) -> int:
        return self.stats.handled

    @property
    def errors(self) -> int:
        return self.stats.errors

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # ------------------------------------------------------------------ serving
    def run(self) -> RunnerStats:
        """Serve until the aggregator's stop message or :meth:`stop`; return the counters."""
        self.stopped.clear()
        self._serving_since = time.time()
        log.info("datasite %s (node %d) serving %s", self.email, self.node_id, self.endpoint)
        try:
            self.events.run_forever()
        finally:
            self.stopped.set()
        stats = self.stats
        log.info(
            "datasite %s stopped (%s): %s",
            self.email,
            f"by {stats.stopped_by}" if stats.stopped_by else "locally",
            stats.describe(),
        )
        return stats

    def stop(self) -> None:
        self.events.stop()

    def context_for(self, run_id: int) -> Context:
        """The Context the ClientApp sees for ``run_id`` (created on first use)."""
        return self._context(run_id)[0]

    def _context(self, run_id: int) -> tuple[Context, threading.Lock]:
        with self._lock:
            entry = self._contexts.get(run_id)
            if entry is None:
                context = new_context(
                    run_id=run_id,
                    node_id=self.node_id,
                    node_config=self.node_config,
                    run_config=self.run_config,
                )
                entry = (context, threading.Lock())
                self._contexts[run_id] = entry
                while len(self._contexts) > MAX_CONTEXTS:
                    self._contexts.popitem(last=False)
            else:
                self._contexts.move_to_end(run_id)
            return entry

    def handle(self, request: Request) -> Response | bytes:
        """The ``messages`` endpoint handler (also callable directly, e.g. in tests)."""
        client_app = self._approved_app(request)
        if isinstance(client_app, str):
            return request.error_reply(client_app)
        try:
            message = decode_message(request.body)
        except MalformedMessageError as exc:
            self._count("_malformed")
            log.warning(
                "datasite %s: malformed request %s from %s: %s",
                self.email,
                request.id,
                request.sender,
                exc,
            )
            return request.error_reply(f"malformed Flower message: {exc}")
        metadata = message.metadata
        if metadata.dst_node_id != self.node_id:
            self._count("_malformed")
            text = (
                f"message for node {metadata.dst_node_id} reached datasite {self.email} "
                f"(node {self.node_id}); check both sides use the same [tool.syftflwr] datasites"
            )
            log.warning("datasite %s: %s", self.email, text)
            return request.error_reply(text)
        if metadata.message_type == SYSTEM_MESSAGE_TYPE and self._is_stop(message):
            return self._stop_from(request, message)
        reply = self._blobs_refused(request, message) or self._call_app(message, client_app)
        set_message_id(reply, new_message_id())
        return encode_message(reply)

    def _approved_app(self, request: Request) -> ClientAppLike | str:
        """The ClientApp ``request`` runs on, or why it may not run here."""
        if self.approval is None:
            assert self.client_app is not None  # one of the two, checked at __init__
            return self.client_app
        app_hash = request.headers.get(APP_HASH_HEADER, "")
        try:
            return self.approval.app_for(app_hash)
        except NotApprovedError as exc:
            why = str(exc)
        self._count("_not_approved")
        named = f"hash {app_hash[:16]}" if app_hash else "no app hash"
        reason = f"not approved: {named} of app {request.app} at {self.email}: {why}"
        log.warning("datasite %s: request %s from %s refused: %s",
                    self.email, request.id, request.sender, reason)  # fmt: skip
        return reason

    def _blobs_refused(self, request: Request, message: Message) -> Message | None:
        """Put the arrays of the shared blobs ``message`` names back in its content; the
        error reply when one cannot be used (gone, altered, sealed on a plain role)."""
        if not message.has_content() or BLOBS_RECORD not in message.content:
            return None
        try:
            message.content = resolve_blobs(message.content, request, self.events,
                                            clock_skew=self.clock_skew)  # fmt: skip
        except HandleLater:  # not stored yet: the events role hands it back later
            raise
        except Exception as exc:
            self._count("_malformed")
            metadata = message.metadata
            log.warning("datasite %s: %s message %s from %s: its shared model blob: %s",
                        self.email, metadata.message_type, metadata.message_id,
                        request.sender, exc)  # fmt: skip
            reason = f"datasite {self.email} could not use the shared model blob: {exc}"
            return Message(Error(code=ErrorCode.UNKNOWN, reason=reason), reply_to=message)
        return None

    def _call_app(self, message: Message, client_app: ClientAppLike) -> Message:
        with self._lock:
            self._runs_served.add(message.metadata.run_id)
        context, run_lock = self._context(message.metadata.run_id)
        try:
            with run_lock:  # Flower Contexts are not thread-safe; one message per run at a time
                reply = client_app(message, context)
            if not isinstance(reply, Message):
                raise TypeError(f"the ClientApp returned {type(reply).__name__}, not a Message")
            if reply.metadata.reply_to_message_id != message.metadata.message_id:
                raise ValueError(
                    "the ClientApp returned a Message that is not a reply to the one it got; "
                    "build replies with Message(content, reply_to=message)"
                )
        except Exception as exc:
            self._count("_errors")
            self._count("_handled")
            log.exception(
                "datasite %s: ClientApp raised on %s message %s",
                self.email,
                message.metadata.message_type,
                message.metadata.message_id,
            )
            # An app run in its own process (syftflwr.jobs.isolated) raised there: its
            # reason already has Flower's format and the frames of that process.
            reason = getattr(exc, "flower_reason", None) or error_reason(exc)
            error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
            return Message(error, reply_to=message)
        self._count("_handled")
        return reply

    @staticmethod
    def _is_stop(message: Message) -> bool:
        if not message.has_content():
            return False
        record = message.content.get("config")
        return isinstance(record, ConfigRecord) and record.get("action") == STOP_ACTION

    def _stop_from(self, request: Request, message: Message) -> bytes:
        reason = message.content["config"]
        run_id = message.metadata.run_id
        with self._lock:
            served = run_id in self._runs_served
        stale = message.metadata.created_at < self._serving_since
        refused = isinstance(reason, ConfigRecord) and reason.get("refused") is True
        if refused and not stale:  # this run will never send it anything: stop, and say why
            log.error("datasite %s: %s; stopping (fix: `syftflwr keys` on both sides, then "
                      "restart)", self.email, reason.get("reason", "refused"))  # fmt: skip
            served = True
        if self.scoped_stops and (stale or not served):
            why = "it was sent before this runner started" if stale else (
                "this runner handled no instruction of that run")  # fmt: skip
            log.info("datasite %s: ignoring the stop of run %d from %s: %s (a stop left "
                     "from an earlier run)", self.email, run_id, request.sender, why)  # fmt: skip
            return self._ack(message, ignored=True)
        log.info(
            "datasite %s: stop requested by %s (%s)",
            self.email,
            request.sender,
            reason.get("reason", "") if isinstance(reason, ConfigRecord) else "",
        )
        with self._lock:
            self._stopped_by = request.sender
        body = self._ack(message, ignored=False)
        # The events role stores this reply before its serve loop sees the stop.
        self.events.stop()
        return body

    @staticmethod
    def _ack(message: Message, *, ignored: bool) -> bytes:
        config = ConfigRecord({"action": STOP_ACTION, "ack": True, "ignored": ignored})
        ack = Message(RecordDict({"config": config}), reply_to=message)
        set_message_id(ack, new_message_id())
        return encode_message(ack)
