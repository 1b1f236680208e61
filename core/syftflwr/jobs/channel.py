"""The participant-level jobs endpoint: requests of the reserved app :data:`JOBS_APP`
over a participant's own transport, sealed like every other app's messages.

Two endpoints:

* ``jobs`` (aggregator -> datasite): a signed job; the datasite's reply, sent as soon as
  the job is stored (or refused), is what "seen" means to the aggregator;
* ``decisions`` (datasite -> aggregator): a signed approval or rejection.

Both live for :data:`JOB_TTL`, so an offline datasite still finds its jobs weeks later.

A datasite holds no project for an app it has not approved yet, so the channel is its
own small federation, built in code and connected through :func:`syftflwr.session.connect`
like any app: this participant in the aggregator's seat (its events role then accepts
exactly its peers, and its key is published to each of them) and its peers as the
datasites — the senders it accepts jobs from, the datasites it sends jobs to. Whoever is
not a peer is never read: :meth:`JobsChannel.collect` reports only how many requests such
senders left (``Drained.ignored``).

Encryption is always on here, whatever an app's ``encryption`` says: jobs and decisions
never travel in plaintext, and this participant's jobs key is published on connect (a
datasite that has never run ``syftflwr jobs`` has none yet, so a job cannot be sealed to
it: :attr:`Delivery.problem` says so).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import cast

from syftflwr.config import ParticipantSettings, ProjectConfig
from syftflwr.envelope import Buffer, Request, Response
from syftflwr.errors import ConfigError, EncryptionError, MissingKeyError, TransportUnavailableError
from syftflwr.jobs import JOB_TTL, JOBS_APP
from syftflwr.names import new_message_id
from syftflwr.registry import Registry
from syftflwr.roles import (
    Drained,
    Handler,
    ReattachesRequests,
    RequestHandle,
    RPCRole,
    ServesPending,
    offers,
)
from syftflwr.session import Participant, connect

log = logging.getLogger("syftflwr.jobs")

JOBS_ENDPOINT = "jobs"
DECISIONS_ENDPOINT = "decisions"
KEY_WAIT = 2.0
"""Seconds a send waits for a recipient's jobs key: it is there or the recipient has not
run ``syftflwr jobs`` yet (a job is never sealed to a guess, nor sent in plaintext)."""
COLLECT_TIMEOUT = 120.0
"""Seconds :meth:`JobsChannel.collect` may spend on what has arrived."""


def no_key_yet(email: str) -> str:
    """Why a job or decision could not be sent to ``email`` yet."""
    return (
        f"no key published by {email} yet; they run `syftflwr jobs` (with you in their "
        "accept_jobs_from) and you submit again"
    )


def jobs_project(
    me: str, peers: Iterable[str], *, base: ProjectConfig | None = None
) -> ProjectConfig:
    """The jobs channel of ``me`` as a project: ``me`` in the aggregator's seat and
    ``peers`` as the datasites. ``base`` (the submitter's app) lends its transport, its
    transport options and its limits; without it (a datasite, which has no project yet)
    the transport comes from ``--transport``, the environment or auto-detection, with
    the options of the participant's settings file.

    :raises ConfigError: no peers, or a ``base`` whose wire profile cannot carry jobs.
    """
    if base is not None and base.profile != "native":
        raise ConfigError(
            f"jobs travel only with the native wire profile; this project uses "
            f"{base.profile!r}, which cannot carry a job's FAB hash",
            source=base.source_of("profile"),
            key="tool.syftflwr.profile",
            fix="submit from a project with the native profile (the default); with "
            "syft-flwr 0.5 participants, hand the app over out of band",
        )
    me = me.lower()
    others = tuple(dict.fromkeys(p.lower() for p in peers if p.lower() != me))
    if not others:
        raise ConfigError(
            f"{me} has nobody to exchange jobs with",
            fix='a datasite writes accept_jobs_from = ["aggregator@org.org"] in its settings '
            "file (or runs `syftflwr jobs trust EMAIL`); an aggregator submits to the "
            "datasites of its project",
        )
    sources = {k: v for k, v in (base.sources if base else {}).items() if k == "transport"}
    return ProjectConfig(
        app_name=JOBS_APP,
        aggregator=me,
        datasites=others,
        transport=base.transport if base else None,
        transport_options=base.transport_options if base else {},
        encryption=True,
        max_message_size=base.max_message_size if base else ProjectConfig.max_message_size,
        clock_skew=base.clock_skew if base else ProjectConfig.clock_skew,
        round_timeout=KEY_WAIT,
        message_ttl=JOB_TTL,
        path=base.path if base else None,
        project_name=JOBS_APP,
        configured=True,
        sources=sources,
    )


@dataclass(frozen=True)
class Delivery:
    """One job or decision handed to the transport, or why it was not."""

    recipient: str
    handle: RequestHandle | None
    """Kept by the sender to learn later that it was seen (:meth:`JobsChannel.replies`)."""
    problem: str | None = None
    """Why nothing was sent (no key yet, a changed key): nothing left this machine."""

    @property
    def sent(self) -> bool:
        return self.handle is not None


class JobsChannel:
    """A participant connected for :data:`JOBS_APP` (use it as a context manager)."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self._rpc: RPCRole | None = None

    @property
    def email(self) -> str:
        return self.participant.email

    @property
    def transport(self) -> str:
        return self.participant.transport.name

    @property
    def peers(self) -> tuple[str, ...]:
        return self.participant.project.datasites

    def _sender(self) -> RPCRole:
        if self._rpc is None:
            self._rpc = self.participant.rpc()
        return self._rpc

    def send(
        self, recipient: str, endpoint: str, body: Buffer, *, request_id: str | None = None
    ) -> Delivery:
        """Seal ``body`` to ``recipient``'s jobs key and publish it (TTL :data:`JOB_TTL`)
        as request ``request_id`` (default: a fresh id; a job's id is its request's, so
        a signed offer cannot be replayed under another). A recipient without a key
        yet, or whose key changed, gets nothing: the :class:`Delivery` says why."""
        now = time.time()
        request = Request(
            id=request_id or new_message_id(),
            sender=self.email,
            recipient=recipient,
            app=JOBS_APP,
            endpoint=endpoint,
            body=body,
            created_at=now,
            expires_at=now + JOB_TTL,
        )
        request.validate()
        try:
            handle = self._sender().send(request)
        except MissingKeyError:
            return Delivery(recipient, None, no_key_yet(recipient))
        except EncryptionError as exc:  # a changed or refused key: never a guess
            return Delivery(recipient, None, str(exc))
        return Delivery(recipient, handle)

    def unreachable(self, recipient: str) -> str | None:
        """Why nothing can be sealed to ``recipient`` now (no key published yet, a
        changed key), or None: a send would go out. Lets a sender record a job before
        it sends it, so a kill in between never leaves a sent job unrecorded."""
        keyring = self.participant.keyring
        assert keyring is not None  # connect_jobs refuses plaintext
        try:
            keyring.recipient_key(recipient)
        except MissingKeyError:
            return no_key_yet(recipient)
        except EncryptionError as exc:
            return str(exc)
        return None

    def replies(self, handles: Sequence[RequestHandle]) -> dict[str, Response]:
        """The replies (opened and authenticated) that have arrived to requests this
        participant sent, in this process or an earlier one, by request id."""
        rpc = self._sender()
        found: dict[str, Response] = {}
        for handle in handles:
            if offers(rpc, ReattachesRequests):
                cast(ReattachesRequests, rpc).attach(handle)
            response = rpc.fetch(handle)
            if response is not None:
                found[handle.id] = response
        return found

    def forget(self, handle: RequestHandle) -> None:
        """The reply was read: remove the request and what is kept for it."""
        self._sender().forget(handle)

    def collect(self, handlers: Mapping[str, Handler], timeout: float = COLLECT_TIMEOUT) -> Drained:
        """Hand every request that has arrived to ``handlers`` (endpoint -> handler, which
        sees it opened and authenticated; its return value is the sealed reply), then
        return. Requests of senders that are not peers are never read."""
        events = self.participant.events()
        if not offers(events, ServesPending):
            inner = getattr(events, "inner", events)
            raise TransportUnavailableError(
                f"the {self.transport!r} transport's events role {type(inner).__name__} "
                "cannot serve what has arrived and return (it does not implement "
                "syftflwr.plugin.ServesPending), so `syftflwr jobs` cannot collect over it\n"
                "  fix: use a transport that offers it (every mailbox-kit transport does; "
                "docs/reference/hooks.md#optional-capabilities)"
            )
        for endpoint, handler in handlers.items():
            events.on_request(endpoint, handler)
        drained = cast(ServesPending, events).serve_pending(timeout)
        if not drained.complete:
            log.warning(
                "not everything that arrived for %s could be handled within %.0f s; "
                "the rest is handled the next time `syftflwr jobs` runs",
                self.email,
                timeout,
            )
        return drained

    def close(self) -> None:
        self._rpc = None
        self.participant.close()

    def __enter__(self) -> JobsChannel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect_jobs(
    me: str,
    peers: Iterable[str],
    *,
    project: ProjectConfig | None = None,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    participant: ParticipantSettings | None = None,
    allow_in_process: bool = False,
    registry: Registry | None = None,
) -> JobsChannel:
    """``me``'s jobs channel with ``peers`` (see :func:`jobs_project`), connected and
    with ``me``'s jobs key published to every peer.

    :raises ConfigError: no peers, a profile that cannot carry jobs, or encryption
        turned off (by ``SYFTFLWR_ENCRYPTION`` / ``--no-encryption``): jobs are never
        sent in plaintext.
    :raises PluginError: the transport cannot be found or used.
    """
    config = jobs_project(me, peers, base=project)
    joined = connect(
        config,
        email=me,
        transport=transport,
        env=env,
        participant=participant,
        allow_in_process=allow_in_process,
        registry=registry,
    )
    if not joined.encryption:
        source = joined.project.source_of("encryption")
        joined.close()
        raise ConfigError(
            "jobs and decisions are never sent in plaintext, and encryption is turned off",
            source=source,
            fix="unset SYFTFLWR_ENCRYPTION (or drop --no-encryption) for `syftflwr submit` "
            "and `syftflwr jobs`",
        )
    return JobsChannel(joined)
