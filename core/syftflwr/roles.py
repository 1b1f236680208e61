"""The three transport roles as typed interfaces, plus small base classes that give
every transport the same waiting, validation and dispatch behaviour.

* :class:`ClientRole` — who am I, where do my and my peers' mailboxes live.
* :class:`RPCRole` — send a request, fetch / wait for its response, forget it.
* :class:`EventsRole` — register handlers per endpoint, serve until stopped.

A plugin may implement the protocols from scratch, but should subclass
:class:`BaseRPC` and :class:`BaseEvents` (as httpx transports subclass
``BaseTransport``): then a transport only moves bytes, and core owns the semantics —
sender checks, size limits, expiry, error replies, and event-driven waiting (a
notifying transport calls :meth:`BaseRPC.notify_arrival`; a polling one is polled at its
declared interval with idle back-off, never a fixed multi-second sleep).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer, Request, Response
from syftflwr.errors import (
    EncryptionError,
    ForbiddenSenderError,
    IdentityMismatchError,
    MalformedMessageError,
    MessageExpiredError,
    MessageRejectedError,
    MessageTooLargeError,
    TransportClosedError,
    UnsafeNameError,
)
from syftflwr.info import Capabilities, TransportContext
from syftflwr.names import validate_email, validate_identifier

log = logging.getLogger("syftflwr.transport")

Handler = Callable[[Request], "Response | Buffer"]
"""An endpoint handler: returns a response body (``ok``) or a full :class:`Response`;
raising turns into an ``error`` response carrying the exception summary."""


# --------------------------------------------------------------------------- refusals
REFUSAL_KINDS = (
    "unreadable",  # not an envelope, truncated, damaged chunks (MalformedMessageError)
    "oversized",  # above max_message_size (MessageTooLargeError)
    "unsafe",  # a symlink, FIFO or path-shaped name (UnsafeNameError)
    "misnamed",  # a file named like a request but not {id}.request: never read
    "forged",  # the envelope does not match its folder (sender, recipient, id, app)
    "not allowed",  # a sender, app or recipient this runner does not serve
    "expired",
    "unauthenticated",  # not sealed, tampered, an untrusted key (EncryptionError)
    "replayed",  # an id answered before and cleaned up since, published again
    "not approved",  # a run of an app (or FAB hash) this datasite did not approve
    "other",
)
"""The kinds of refusals a runner counts (its exit summary: ``25 refused (20 unreadable,
5 forged)``)."""


class HandleLater(Exception):  # noqa: N818 - a signal to the events role, not an error
    """Raised by a request's handler: it cannot be handled yet (a shared blob its sender
    named while it still uploads). An events role with ``defers_requests`` hands the
    same request to the handler again after ``delay`` seconds, without answering it and
    without holding up the requests behind it; if the request is gone from storage by
    then (its sender withdrew it), it is dropped. Any other events role answers it with
    an error reply (:meth:`BaseEvents.dispatch`)."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.delay = delay


def refusal_kind(exc: BaseException) -> str:
    """The :data:`REFUSAL_KINDS` entry of a refusal raised as ``exc``."""
    if isinstance(exc, EncryptionError):
        return "unauthenticated"
    if isinstance(exc, MessageTooLargeError):
        return "oversized"
    if isinstance(exc, UnsafeNameError):
        return "unsafe"
    if isinstance(exc, MessageExpiredError):
        return "expired"
    if isinstance(exc, ForbiddenSenderError):
        return "not allowed"
    if isinstance(exc, MalformedMessageError):
        return "unreadable"
    return "other"


def _reason_kind(reason: str) -> str:
    """The kind of one of :meth:`BaseEvents.reject_reason`'s reasons."""
    if reason == "expired":
        return "expired"
    if reason.startswith("body of"):
        return "oversized"
    if reason.startswith(("addressed", "for app", "sender")):
        return "not allowed"
    return "other"


def describe_refusals(refusals: Mapping[str, int]) -> str:
    """``"25 refused (20 unreadable, 5 forged)"``, or ``"0 refused"``."""
    total = sum(refusals.values())
    kinds = [f"{refusals[k]} {k}" for k in REFUSAL_KINDS if refusals.get(k)]
    return f"{total} refused" + (f" ({', '.join(kinds)})" if kinds else "")


# --------------------------------------------------------------------------- interfaces
@runtime_checkable
class ClientRole(Protocol):
    """Identity and mailbox locations of one participant.

    Optional, each declared below with what core does without it:
    :class:`PublishesKeys` (``key_directory()``), :class:`EncryptsMessages`
    (``encrypts_messages()``), :class:`DeclaresCapabilities` (``capabilities``).
    """

    @property
    def email(self) -> str:
        """The identity the transport itself reports (SyftBox config email, Drive token
        owner...). Core refuses to run when it differs from the configured participant."""
        ...

    def datasite_url(self, email: str) -> str:
        """Human-readable location (path or URL) of ``email``'s mailbox, for logs/doctor."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestHandle:
    """What :meth:`RPCRole.send` returns; enough to fetch, wait for and forget a response."""

    id: str
    recipient: str
    app: str
    endpoint: str
    sent_at: float
    expires_at: float | None


@runtime_checkable
class RPCRole(Protocol):
    """Client side of request/response (the aggregator's Grid uses it)."""

    def send(self, request: Request) -> RequestHandle:
        """Publish ``request`` atomically; returns once it is durably handed over."""
        ...

    def fetch(self, handle: RequestHandle) -> Response | None:
        """The response if it has arrived, else None. Never blocks on the network for long."""
        ...

    def wait(self, handles: Sequence[RequestHandle], timeout: float | None) -> list[Response]:
        """Block until at least one of ``handles`` has a response (or ``timeout`` seconds
        pass); return every response available by then (possibly empty)."""
        ...

    def forget(self, handle: RequestHandle) -> None:
        """Drop local state and, where the transport may, the stored request/response."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EventsRole(Protocol):
    """Server side: serve the requests that arrive for this participant's app."""

    def on_request(self, endpoint: str, handler: Handler) -> None:
        """Route requests for ``endpoint`` to ``handler`` (one handler per endpoint)."""
        ...

    def run_forever(self) -> None:
        """Serve until :meth:`stop` is called (from another thread or a signal handler)."""
        ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- helpers
def check_identity(
    expected: str,
    reported: object,
    transport: str | None,
    who: str = "this participant",
    *,
    source: str | None = None,
) -> None:
    """Refuse a transport that acts as someone else than ``expected``: requests would be
    refused (or answered) under the wrong name, far from the cause. Emails compare
    case-insensitively (providers differ in how they case them). ``source``: where the
    transport's identity comes from (its config file), named in the error.

    :raises IdentityMismatchError: another, or an invalid, identity.
    """
    name = f"the {transport!r} transport" if transport else "the transport"
    sign_in = (
        f"sign the {transport} transport in as {expected}"
        if transport
        else (f"configure the transport for {expected}")
    )
    try:
        reported = validate_email(reported)
    except ValueError:
        raise IdentityMismatchError(
            f"{name} reports an invalid identity {reported!r}, expected {expected}",
            source=source,
            fix=f"{sign_in} (see its docs page) and try again",
        ) from None
    if reported.casefold() != expected.casefold():
        raise IdentityMismatchError(
            f"{name} acts as {reported}, but {who} is {expected}",
            source=source,
            fix=f"{sign_in}, or run as {reported} (--as / SYFTFLWR_EMAIL / email in "
            "your settings file)",
        )


def check_size(size: int, context: TransportContext, what: str) -> None:
    if size > context.max_message_size:
        raise MessageTooLargeError(
            f"{what} is {size:,} bytes, above max_message_size {context.max_message_size:,}; "
            "raise [tool.syftflwr] max_message_size if this is expected"
        )


class _Closable:
    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"{type(self).__name__} is closed")


# --------------------------------------------------------------------------- optional capabilities
# What a role MAY offer beyond its protocol. Core asks through these protocols (and
# :func:`syftflwr.capabilities.offers`), never ad-hoc getattr probes, and each says what
# happens without it. ``syftflwr transports --check`` reports every one.


@runtime_checkable
class KeyDirectory(Protocol):
    """Publish this participant's public-key record; fetch a peer's (where records live is
    the transport's business: :class:`~syftflwr.crypto.directory.StorageKeyDirectory`).

    Optional: :class:`ScopesKeysByApp` (``for_app``) and :class:`ExplainsMissingKeys`
    (``explain_missing``)."""

    def publish(self, record: bytes, readers: Sequence[str]) -> None:
        """Make ``record`` readable by each of ``readers`` (idempotent, cheap if unchanged)."""
        ...

    def fetch(self, email: str) -> Buffer | None:
        """``email``'s published record as this participant sees it, or None."""
        ...


@runtime_checkable
class ScopesKeysByApp(Protocol):
    """Key directory: ``for_app(app)``, the same directory with one slot per app (see
    :mod:`syftflwr.crypto.directory`).

    Absent: one slot per owner and reader, shared by every app of the same participants."""

    def for_app(self, app: str) -> KeyDirectory: ...


@runtime_checkable
class ExplainsMissingKeys(Protocol):
    """Key directory: why a peer whose key never came has none, when the transport can
    tell (a peer on an older wire format); it replaces the generic text of the send's
    ``MissingKeyError``.

    Absent: that error says no key was found, and where keys come from."""

    def explain_missing(self, email: str) -> str | None: ...


@runtime_checkable
class PublishesKeys(Protocol):
    """Client role: the directory through which core encryption publishes this
    participant's public key and fetches its peers' (on a mailbox storage:
    ``StorageKeyDirectory(storage, email)``).

    Absent: core encryption, on by default, cannot run; connecting stops with exit 2
    naming the transport and this protocol. Only ``encryption = false``, or a transport
    that encrypts end to end itself (:class:`EncryptsMessages`), runs without it."""

    def key_directory(self) -> KeyDirectory: ...


@runtime_checkable
class EncryptsMessages(Protocol):
    """Client role: whether the transport itself encrypts every message end to end
    **with its current settings** (SyftBox: its ``encrypt`` option). When True core's
    own encryption stands aside (no keys published, nothing sealed twice) and the run
    summary says ``end-to-end encrypted by NAME``.

    Absent: the answer is the declared ``Capabilities.native_encryption``."""

    def encrypts_messages(self) -> bool: ...


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """Client role: the capabilities in effect with this participant's options (the
    poll interval, the object size limit it was configured with...).

    Absent: ``TransportInfo.capabilities``, the transport's defaults."""

    capabilities: Capabilities


@runtime_checkable
class ExposesClient(Protocol):
    """RPC or events role: the client role it was built on. The aggregator's Grid and
    a datasite runner check the identity it reports (``client.email``) against the
    participant they run as, before sending or serving anything.

    Absent: the identity is checked once, when the participant connects."""

    client: ClientRole


@runtime_checkable
class ReattachesRequests(Protocol):
    """RPC role: watch for the response to a request an earlier run of the aggregator
    sent (``syftflwr run --resume``), as if this role had sent it.

    Absent: such a response is found by the Grid's periodic re-check, a few seconds
    late."""

    def attach(self, handle: RequestHandle) -> None: ...


@dataclass(frozen=True, slots=True)
class Drained:
    """What :meth:`ServesPending.serve_pending` did with the requests it found."""

    complete: bool
    """Every request present when it started was handled (answered or refused)."""
    ignored: Mapping[str, int] = dataclasses.field(default_factory=dict)
    """Sender -> requests for this app left unread because the sender is not allowed
    here (listed, never opened)."""


@runtime_checkable
class ServesPending(Protocol):
    """Events role: serve the requests that have arrived, then return — a one-shot look
    at an inbox (``syftflwr jobs`` lists the jobs that arrived since it last ran).

    Absent: ``syftflwr jobs`` cannot collect what has arrived over the transport; it
    stops with exit 2 naming the transport and this protocol."""

    def serve_pending(self, timeout: float) -> Drained:
        """Dispatch every request already in this participant's inboxes to its handler
        (as :meth:`EventsRole.run_forever` would), then return; give up on what is
        still unhandled after ``timeout`` seconds (``Drained.complete`` False)."""
        ...


@runtime_checkable
class SeesPickups(Protocol):
    """RPC role: report when the recipient of a request is seen picking it up
    (:class:`ReportsPickups` implements it).

    Absent: the live view shows no pick-ups and the aggregator never prints its
    "no sign of life" hint (it cannot tell a datasite that is down from one still
    training). Never offer it without really reporting: every datasite would look down."""

    def on_picked_up(self, callback: PickupCallback) -> None: ...


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Bytes a sender stored ONCE for several recipients (a model every datasite of a
    broadcast gets), as each recipient's own message names them.

    Authenticity comes only from the message that carries the ref (sealed per recipient
    when encryption is on): a reader checks ``size`` and ``sha256`` of what it read
    before using it, and a sealed blob is opened with ``key`` and checked against
    ``digest``. ``key`` and ``digest`` are secret: they travel only inside the sealed
    message body, never in headers or storage names."""

    name: str
    """The blob's storage name: a random id (never a hash of the plaintext, which would
    let a storage provider confirm a guess such as "the initial zero model")."""
    sha256: str
    """Hex SHA-256 of the stored bytes (the ciphertext when sealed)."""
    size: int
    """Stored bytes."""
    key: bytes | None = None
    """The content key of a sealed blob (:mod:`syftflwr.crypto.blob`); None: plain."""
    digest: str | None = None
    """Hex SHA-256 of the plaintext of a sealed blob, checked after opening: every
    recipient of one push provably got the same model (AES-GCM alone does not commit to
    its key)."""

    def verify(self, data: Buffer, where: str) -> None:
        """Raise :class:`~syftflwr.errors.MalformedMessageError` unless ``data`` is exactly
        the stored bytes this ref names (size, then SHA-256): checked before any use."""
        size = memoryview(data).nbytes
        if size != self.size:
            raise MalformedMessageError(
                f"{where} is {size:,} bytes, its message says {self.size:,}: refused"
            )
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise MalformedMessageError(
                f"{where} is not the blob its message names (SHA-256 differs): it was "
                "altered or replaced in storage; refused"
            )


@dataclass(frozen=True, slots=True)
class BlobContent:
    """A blob's bytes made while the transport readies their place: their ``size`` now,
    the parts from ``make()`` (called once, on the thread that stores the blob). The
    sealing layer hands :meth:`SharesBlobs.put_blob` its encryption this way, so that
    sealing a model overlaps the round trips that open the blob's folder."""

    size: int
    make: Callable[[], Sequence[Buffer]]

    def produce(self) -> Sequence[Buffer]:
        """The parts, checked to be the ``size`` announced (a transport may have sized the
        blob's folder, parts and journal entry by it)."""
        parts = self.make()
        made = sum(memoryview(part).nbytes for part in parts)
        if made != self.size:
            raise ValueError(f"a blob's content made {made:,} bytes, {self.size:,} announced")
        return parts


def blob_parts(data: Sequence[Buffer] | BlobContent) -> Sequence[Buffer]:
    """The parts of ``data`` as :meth:`SharesBlobs.put_blob` receives it (made now when
    it is a :class:`BlobContent`)."""
    return data.produce() if isinstance(data, BlobContent) else data


@runtime_checkable
class SharesBlobs(Protocol):
    """RPC role: store bytes once for several recipients (docs/reference/hooks.md,
    "Shared blobs"). Core uses it for the arrays a broadcast sends to every datasite,
    only when the transport declares ``Capabilities.shares_objects``.

    Absent: every recipient's message carries its own copy (one upload per datasite)."""

    def put_blob(
        self,
        data: Sequence[Buffer] | BlobContent,
        *,
        app: str,
        recipients: Sequence[str],
        expires_at: float | None,
        on_named: Callable[[BlobRef], None] | None = None,
    ) -> BlobRef:
        """Store the concatenation of ``data`` readable by exactly ``recipients`` (and
        this participant) until :meth:`drop_blob` or, after a crash, until retention
        finds it past ``expires_at``. ``data`` may be a :class:`BlobContent`, made while
        the blob's place is readied (:func:`blob_parts` makes it at once).

        ``on_named``: a transport may call it once, with the final ref, while the bytes
        still upload; core then sends the messages naming the blob at once (their
        readers wait for it: :class:`~syftflwr.errors.BlobGoneError`), and withdraws
        them if this raises after all. A transport that never calls it gets the
        messages sent once it returns. It must return the ref it named."""
        ...

    def drop_blob(self, ref: BlobRef, *, app: str) -> None:
        """The sender no longer needs ``ref`` (every message naming it was answered or
        given up): delete it. Idempotent."""
        ...


@runtime_checkable
class ReadsBlobs(Protocol):
    """Events role: read a blob a sender's message names (:class:`SharesBlobs`).

    Absent: a request naming a blob is refused with an error reply saying so."""

    def get_blob(self, ref: BlobRef, *, sender: str, app: str) -> bytes:
        """The blob's bytes, checked against ``ref.size`` and ``ref.sha256`` (raises
        :class:`~syftflwr.errors.MalformedMessageError` when they differ or the blob is
        gone). A sealed role opens a sealed blob with ``ref.key`` and checks
        ``ref.digest``; a role without encryption refuses a sealed ref."""
        ...


@runtime_checkable
class HasLocation(Protocol):
    """Storage: ``url``, where the storage is, for humans (``gs://bucket/root``).

    Absent: wrappers around the storage report ``""`` and messages name the storage by
    its ``repr``."""

    url: str


@runtime_checkable
class StorageIdentity(Protocol):
    """Optional on a Storage: who the storage itself says the user is (a token's owner).
    The client role reports it, and core refuses to run when it differs from the
    configured email. Without it the client reports the configured email."""

    @property
    def email(self) -> str: ...


_MEMBERS: dict[type, frozenset[str]] = {}


def protocol_members(protocol: type) -> frozenset[str]:
    """The members a protocol declares (methods, properties, annotated attributes)."""
    members = _MEMBERS.get(protocol)
    if members is None:
        names = set(getattr(protocol, "__annotations__", {}))
        names |= {n for n in vars(protocol) if not n.startswith("_")}
        members = _MEMBERS[protocol] = frozenset(names)
    return members


def offers(role: object, protocol: type) -> bool:
    """Whether ``role`` offers the optional capability ``protocol`` — how core asks.

    Members are looked up as attribute access finds them, so a wrapper forwarding through
    ``__getattr__`` (core's sealed roles) offers exactly what it wraps: ``isinstance()``
    on a runtime protocol no longer sees such members from Python 3.12 on."""
    return all(hasattr(role, name) for name in protocol_members(protocol))


def encrypts_messages(client: object, declared: bool = False) -> bool:
    """Whether ``client``'s transport encrypts every message end to end itself
    (:class:`EncryptsMessages`), else ``declared`` (``Capabilities.native_encryption``)."""
    if offers(client, EncryptsMessages):
        return bool(cast(EncryptsMessages, client).encrypts_messages())
    return declared


def effective_capabilities(client: object, default: Capabilities) -> Capabilities:
    """The capabilities in effect for ``client``: the one source of truth for what core
    adapts to (the session, the run summary, ``simulate``). ``default`` is the
    transport's ``TransportInfo.capabilities``; a client role that declares its own
    (:class:`DeclaresCapabilities`) replaces it, and ``native_encryption`` is what the
    client says it applies (:class:`EncryptsMessages`)."""
    caps = default
    own = (
        cast(DeclaresCapabilities, client).capabilities
        if offers(client, DeclaresCapabilities)
        else None
    )
    if isinstance(own, Capabilities):
        caps = own
    native = encrypts_messages(client, caps.native_encryption)
    if native != caps.native_encryption:
        caps = dataclasses.replace(caps, native_encryption=native)
    return caps


# --------------------------------------------------------------------------- RPC extras
PickupCallback = Callable[[str], None]
"""``callback(request_id)``: the recipient was seen to pick up that request."""


class ReportsPickups:
    """The optional RPC method ``on_picked_up`` (docs/reference/hooks.md): a transport
    that can see a recipient take a request (the mailbox sees its ``{id}.claim``) tells
    the Grid, so the aggregator can show which datasites are alive and hint at the ones
    that are not. Mix it in and call :meth:`_report_pickup`; a transport that cannot
    tell must not offer the method (the live view then shows no pick-ups and never
    hints)."""

    def on_picked_up(self, callback: PickupCallback) -> None:
        """Call ``callback(request_id)`` (from any thread; it must be quick) whenever
        the recipient of a request sent by this role is seen picking it up, at least
        once per request."""
        listeners: list[PickupCallback] = self.__dict__.setdefault("_pickup_listeners", [])
        listeners.append(callback)

    def _report_pickup(self, request_id: str) -> None:
        for callback in list(self.__dict__.get("_pickup_listeners", ())):
            try:
                callback(request_id)
            except Exception:
                log.exception("pick-up listener failed for request %s", request_id)


# --------------------------------------------------------------------------- RPC base
class BaseRPC(_Closable, ABC):
    """RPC role skeleton: subclasses implement :meth:`_send`, :meth:`_fetch`, :meth:`_forget`.

    Thread-safe: Flower's legacy strategy API calls the Grid from a thread pool.
    """

    client: ClientRole  # declared on the class: ExposesClient, read by transports --check
    capabilities: Capabilities

    def __init__(self, client: ClientRole, context: TransportContext, capabilities: Capabilities):
        self.client = client
        self.context = context
        self.capabilities = capabilities
        self._cond = threading.Condition()
        self._generation = 0  # bumped on each arrival notification; avoids lost wake-ups
        self._warned: dict[str, str] = {}  # handle id -> the refusal already logged

    # -- to implement ----------------------------------------------------------
    @abstractmethod
    def _send(self, request: Request) -> None:
        """Publish the (validated) request atomically."""

    @abstractmethod
    def _fetch(self, handle: RequestHandle) -> Response | None:
        """Return the stored response for ``handle`` if present (decoded), else None."""

    def _forget(self, handle: RequestHandle) -> None:
        """Remove what the transport keeps for ``handle`` (default: nothing)."""

    def _ignored(self, handle: RequestHandle) -> None:
        """The stored response for ``handle`` was refused (wrong sender, id, size...):
        a transport that can tell should not read it again until something new arrives
        (else every poll re-reads and re-warns). Default: nothing."""

    def _close(self) -> None:
        """Release transport resources (watchers, sessions)."""

    # -- notification ------------------------------------------------------------
    def notify_arrival(self) -> None:
        """Called by the transport (any thread) when something may have arrived."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    # -- public API ----------------------------------------------------------------
    def send(self, request: Request) -> RequestHandle:
        self._check_open()
        request.validate()
        if request.sender != self.client.email:
            raise ForbiddenSenderError(
                f"request sender {request.sender} is not this participant ({self.client.email})"
            )
        check_size(request.body_size, self.context, f"request {request.id}")
        self._send(request)
        return RequestHandle(
            id=request.id,
            recipient=request.recipient,
            app=request.app,
            endpoint=request.endpoint,
            sent_at=time.time(),
            expires_at=request.expires_at,
        )

    def fetch(self, handle: RequestHandle) -> Response | None:
        self._check_open()
        try:
            response = self._fetch(handle)
        except MessageRejectedError as exc:
            self._refuse(
                handle, f"rejected response for {handle.id} from {handle.recipient}: {exc}"
            )
            return None
        if response is None:
            return None
        problem = None
        if response.id != handle.id:
            problem = f"its id {response.id} does not match the request"
        elif response.sender != handle.recipient:
            problem = (
                f"it claims to be from {response.sender}, the request went to {handle.recipient}"
            )
        elif response.recipient != self.client.email:
            problem = f"it is addressed to {response.recipient}, not {self.client.email}"
        elif response.body_size > self.context.max_message_size:
            problem = f"its body ({response.body_size:,} bytes) exceeds max_message_size"
        if problem:
            self._refuse(handle, f"ignored response to request {handle.id}: {problem}")
            return None
        return response

    def _refuse(self, handle: RequestHandle, line: str) -> None:
        """One WARNING per refused reply, however often a poll re-reads the same file."""
        with self._cond:
            repeated = self._warned.get(handle.id) == line
            self._warned[handle.id] = line
        log.log(logging.DEBUG if repeated else logging.WARNING, "%s", line)
        self._ignored(handle)

    def wait(self, handles: Sequence[RequestHandle], timeout: float | None) -> list[Response]:
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        caps = self.capabilities
        interval = caps.poll_interval or 0.0
        max_interval = caps.max_poll_interval or interval * 8
        while True:
            with self._cond:
                generation = self._generation
            found = [r for r in (self.fetch(h) for h in handles) if r is not None]
            if found or not handles:
                return found
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            if caps.notifies_arrivals:
                # A safety net re-check every few seconds covers a missed notification.
                step = 5.0 if remaining is None else min(remaining, 5.0)
            else:
                step = interval if remaining is None else min(remaining, interval)
                interval = min(interval * 1.5, max_interval)  # idle back-off
            with self._cond:
                if self._generation == generation:
                    self._cond.wait(step)

    def forget(self, handle: RequestHandle) -> None:
        self._check_open()
        with self._cond:
            self._warned.pop(handle.id, None)
        self._forget(handle)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()
            self.notify_arrival()


# --------------------------------------------------------------------------- events base
class BaseEvents(_Closable, ABC):
    """Events role skeleton: subclasses deliver requests to :meth:`dispatch` and store the
    response it returns; :meth:`_serve` blocks until ``self.stopped`` is set."""

    client: ClientRole  # declared on the class: ExposesClient, read by transports --check
    capabilities: Capabilities
    defers_requests = False
    """True when the subclass catches :class:`HandleLater` from :meth:`dispatch` and
    hands the request to it again later; otherwise dispatch answers it with an error."""

    def __init__(self, client: ClientRole, context: TransportContext, capabilities: Capabilities):
        self.client = client
        self.context = context
        self.capabilities = capabilities
        self.handlers: dict[str, Handler] = {}
        self.stopped = threading.Event()
        self.refusals: Counter[str] = Counter()
        """Requests refused before a handler ran, by kind (:func:`refusal_kind`): what a
        runner's exit summary reports."""
        self._refusals_lock = threading.Lock()
        self.serves_self = False
        """Also listen for requests this participant sends itself (``syftflwr doctor``'s
        loopback check sets it). Off for runners: a storage-based transport then makes
        no folder from a participant to itself."""

    def count_refusal(self, kind: str) -> None:
        """Count one refused request of ``kind`` (one of :data:`REFUSAL_KINDS`)."""
        with self._refusals_lock:
            self.refusals[kind] += 1

    def refusal_counts(self) -> dict[str, int]:
        """A copy of :attr:`refusals` (the counters keep changing while serving)."""
        with self._refusals_lock:
            return dict(self.refusals)

    @abstractmethod
    def _serve(self) -> None:
        """Deliver arriving requests to :meth:`dispatch` until ``self.stopped`` is set."""

    def _close(self) -> None:
        """Release transport resources."""

    def on_request(self, endpoint: str, handler: Handler) -> None:
        self.handlers[validate_identifier(endpoint, "endpoint")] = handler

    def allowed_senders(self) -> frozenset[str] | None:
        """Who may send requests here: a datasite's aggregator; for the aggregator, the
        project's participants; None (anyone) only without a configured federation.
        A participant may always address itself (``syftflwr doctor``'s loopback check):
        only it can write into its own outboxes."""
        me = self.client.email
        if self.context.aggregator and self.context.aggregator != me:
            return frozenset({self.context.aggregator, me})
        participants = self.context.participants
        return frozenset({*participants, me}) if participants else None

    def reject_reason(self, request: Request) -> str | None:
        """Why ``request`` must not reach a handler (None if it may)."""
        if request.recipient != self.client.email:
            return f"addressed to {request.recipient}, not {self.client.email}"
        if request.app != self.context.app_name:
            return f"for app {request.app!r}, this runner serves {self.context.app_name!r}"
        allowed = self.allowed_senders()
        if allowed is not None and request.sender not in allowed:
            return f"sender {request.sender} is not allowed (allowed: {', '.join(sorted(allowed))})"
        if request.body_size > self.context.max_message_size:
            return f"body of {request.body_size:,} bytes exceeds max_message_size"
        if request.is_expired(skew=self.context.clock_skew):
            return "expired"
        if request.endpoint not in self.handlers:
            return f"no handler for endpoint {request.endpoint!r}"
        return None

    def dispatch(self, request: Request) -> Response | None:
        """Validate ``request`` and run its handler.

        Returns the response to store, or None when nothing must be answered (a request
        that is expired, or whose sender may not be answered). Handler exceptions become
        ``error`` responses, so a faulty app never kills the runner.
        """
        reason = self.reject_reason(request)
        if reason is not None:
            self.count_refusal(_reason_kind(reason))
            log.warning(
                "rejected request %s from %s to %s/%s: %s",
                request.id,
                request.sender,
                request.app,
                request.endpoint,
                reason,
            )
            if reason.startswith(("expired", "sender", "addressed")):
                return None
            return request.error_reply(f"rejected: {reason}")
        handler = self.handlers[request.endpoint]
        try:
            result = handler(request)
        except HandleLater as exc:
            if self.defers_requests:
                raise
            log.warning("refused request %s from %s: %s", request.id, request.sender, exc)
            return request.error_reply(f"refused: {exc} (this transport cannot wait for it)")
        except (EncryptionError, MessageRejectedError) as exc:
            # a wrapping role (sealing) refused the request before the app saw it
            self.count_refusal(refusal_kind(exc))
            log.warning("refused request %s from %s: %s", request.id, request.sender, exc)
            return request.error_reply(f"refused: {exc}")
        except Exception as exc:
            summary = "".join(traceback.format_exception_only(exc)).strip()
            log.exception("handler for %s failed on request %s", request.endpoint, request.id)
            return request.error_reply(f"handler failed: {summary}")
        if isinstance(result, Response):
            return result
        return request.reply(result)

    def run_forever(self) -> None:
        """Serve until :meth:`stop`. A stop that arrives before serving begins (a signal
        during start-up, a thread started and stopped at once) is not lost: this then
        returns at once. The role may be run again afterwards."""
        self._check_open()
        try:
            self._serve()
        finally:
            self.stopped.clear()

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        if not self._closed:
            self.stop()
            self._closed = True
            self._close()


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
