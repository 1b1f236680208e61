"""The mailbox kit: a storage-backed transport is ONE :class:`~syftflwr.mailbox.storage.Storage`
(plus, optionally, an arrival source faster than polling), registered with one
:class:`StorageTransport` in a small hook module; core builds the client, RPC and events
roles from it: layout, key publication (``StorageKeyDirectory``), wire profiles, the
shared mailbox options (:func:`mailbox_options`) and their effective capabilities.

A hook module on the kit (the template's, in full, is ``examples/transport-template``)::

    from syftflwr.plugin import StorageTransport, mailbox_options, OptionSpec

    kit = StorageTransport(
        "foo",
        "Foo object storage",
        storage="syftflwr_foo.storage:FooStorage",   # imported only when a role is built
        options=(OptionSpec("bucket", "str", "Bucket every participant writes.", required=True),
                 *mailbox_options(poll_interval=0.5)),
    )
    syftflwr_transport_info, syftflwr_make_client, syftflwr_make_rpc, syftflwr_make_events = (
        kit.hooks()
    )

    @kit.detection
    def syftflwr_detect(context: TransportContext) -> Detection:
        ...

Light on purpose: listing and detecting a transport import its hook module, and with it
this one; the mailbox machinery (and the plugin's storage module, named as
``"module:attribute"``) is imported when a role is built. What a Storage must guarantee
is written down in :mod:`syftflwr.mailbox.storage` and docs/mailbox.md.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from syftflwr.hookspecs import hookimpl
from syftflwr.info import Capabilities, Detection, OptionSpec, TransportContext, TransportInfo
from syftflwr.names import validate_email

if TYPE_CHECKING:
    from syftflwr.crypto.directory import StorageKeyDirectory
    from syftflwr.mailbox.arrivals import ArrivalSource
    from syftflwr.mailbox.events import MailboxEvents
    from syftflwr.mailbox.rpc import MailboxRPC
    from syftflwr.mailbox.storage import Storage

DEFAULT_RETENTION_INTERVAL = 30.0
DEFAULT_WORKERS = 4

_HELP = {
    "poll_interval": "Seconds between checks for arrivals in the inbox folders when busy; "
    "backs off when idle.",
    "max_poll_interval": "Upper bound of the idle back-off (default: 8 x poll_interval).",
    "max_object_size": "Largest object written to the storage; bigger messages are chunked "
    "beneath it (default: no limit).",
    "retention_interval": "Seconds between cleanups of this participant's delivered and "
    "expired messages (0 disables them).",
    "workers": "Threads handling requests of concurrent endpoints in a datasite runner.",
    "fsync": "Flush each local object to disk before publishing it (durability across power "
    "loss; atomicity never depends on it).",
}


def mailbox_options(
    *,
    poll_interval: float,
    fsync: bool = False,
    help: Mapping[str, str] | None = None,
) -> tuple[OptionSpec, ...]:
    """The options every storage transport shares, read by :class:`MailboxSettings`:
    ``poll_interval`` (default ``poll_interval``), ``max_poll_interval``,
    ``max_object_size``, ``retention_interval``, ``workers`` and, with ``fsync=True`` (a
    storage writing local files), ``fsync``. ``help`` rewords any of them."""
    text = {**_HELP, **(help or {})}
    specs = [
        OptionSpec("poll_interval", "float", text["poll_interval"], default=poll_interval,
                   minimum=0, exclusive_minimum=True),
        OptionSpec("max_poll_interval", "float", text["max_poll_interval"], default=None,
                   minimum=0, exclusive_minimum=True),
        OptionSpec("max_object_size", "int", text["max_object_size"], default=None, minimum=1),
        OptionSpec("retention_interval", "float", text["retention_interval"],
                   default=DEFAULT_RETENTION_INTERVAL, minimum=0),
        OptionSpec("workers", "int", text["workers"], default=DEFAULT_WORKERS,
                   participant=True, minimum=1),
    ]  # fmt: skip
    if fsync:
        specs.append(OptionSpec("fsync", "bool", text["fsync"], default=True, participant=True))
    return tuple(specs)


def _number(value: object, default: float | None) -> float | None:
    return default if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MailboxSettings:
    """The shared mailbox options of one participant, defaults applied."""

    poll_interval: float
    max_poll_interval: float | None = None
    max_object_size: int | None = None
    retention_interval: float = DEFAULT_RETENTION_INTERVAL
    workers: int = DEFAULT_WORKERS
    fsync: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, poll_interval: float) -> MailboxSettings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        max_size = options.get("max_object_size")
        retention = _number(options.get("retention_interval"), DEFAULT_RETENTION_INTERVAL)
        return cls(
            poll_interval=_number(options.get("poll_interval"), None) or poll_interval,
            max_poll_interval=_number(options.get("max_poll_interval"), None),
            max_object_size=None if max_size is None else int(max_size),
            retention_interval=retention or 0.0,
            workers=int(options.get("workers") or DEFAULT_WORKERS),
            fsync=bool(options.get("fsync", True)),
        )


StorageFactory = Callable[[TransportContext, MailboxSettings], "Storage"]
"""``(context, settings) -> Storage``: opens the participant's storage (a class whose
constructor takes these works). Raise :class:`~syftflwr.errors.ConfigError` naming the
option and the fix when configuration is missing."""
ArrivalsFactory = Callable[["Storage", TransportContext, MailboxSettings], "ArrivalSource"]
"""``(storage, context, settings) -> ArrivalSource``: a change feed faster than polling
(default: core's adaptive :class:`~syftflwr.mailbox.arrivals.Poller` over ``storage``)."""
CapabilitiesFactory = Callable[[TransportContext, MailboxSettings], Capabilities]
ShareKey = Callable[[TransportContext, MailboxSettings], Hashable]


def _resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """``"package.module:attribute"`` imported now (so hook modules stay light)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    obj = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


@dataclass
class _Opened:
    storage: Storage
    arrivals: ArrivalSource


class StorageTransport:
    """One registration of a storage-backed transport: its info, and the three role
    factories built on its storage. Bind the ``syftflwr_*`` methods to the same names in
    the hook module (pluggy reads hooks from the module's attributes).

    :param storage: the :data:`StorageFactory`, or ``"module:attribute"`` naming it.
    :param arrivals: the :data:`ArrivalsFactory` (or its name); default: polling.
    :param options: the transport's own options followed by :func:`mailbox_options`
        (whose ``poll_interval`` default is the static capability).
    :param notifies_arrivals: the static capability: the arrival source notifies.
    :param shares_objects: the static capability: one stored blob can be read by several
        recipients (every participant reads every sender's folders, or the storage offers
        :class:`~syftflwr.mailbox.storage.SharesFolders`); the mailbox then stores a
        broadcast's model once.
    :param resumes_uploads: the static capability: an upload cut short by a crash
        continues after a restart (else it starts again).
    :param capabilities: the effective capabilities of a context when they depend on more
        than the shared options (fsspec-local: a local root notifies, a remote one polls).
    :param share: a key under which participants of this process share one opened storage
        and arrival source (one watcher, one feed); None opens one per client, closed
        with it. Shared ones stay open until :meth:`forget`.
    """

    def __init__(
        self,
        name: str,
        description: str,
        *,
        storage: str | StorageFactory,
        arrivals: str | ArrivalsFactory | None = None,
        options: Sequence[OptionSpec] = (),
        notifies_arrivals: bool = False,
        profiles: tuple[str, ...] = ("native",),
        shares_objects: bool = False,
        resumes_uploads: bool = False,
        capabilities: CapabilitiesFactory | None = None,
        share: ShareKey | None = None,
        docs_url: str | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.options = tuple(options)
        defaults = {spec.name: spec.default for spec in self.options}
        if "poll_interval" not in defaults:
            raise TypeError(f"{name}: add *mailbox_options(poll_interval=...) to its options")
        self.poll_interval = float(defaults["poll_interval"])
        poll_interval = self.poll_interval
        self.static_capabilities = Capabilities(
            notifies_arrivals=notifies_arrivals,
            poll_interval=poll_interval,
            profiles=profiles,
            shares_objects=shares_objects,
            resumes_uploads=resumes_uploads,
        )
        self.docs_url = docs_url
        self._storage = storage
        self._arrivals = arrivals
        self._capabilities = capabilities
        self._share = share
        self._shared: dict[Hashable, _Opened] = {}
        self._lock = threading.Lock()

    # -- what a client is made of ------------------------------------------------------------
    def settings(self, context: TransportContext) -> MailboxSettings:
        return MailboxSettings.from_options(context.options, poll_interval=self.poll_interval)

    def capabilities(self, context: TransportContext, settings: MailboxSettings) -> Capabilities:
        """The effective capabilities of a participant's roles (the one source of truth
        core reads from the client)."""
        if self._capabilities is not None:
            return self._capabilities(context, settings)
        static = self.static_capabilities
        return Capabilities(
            notifies_arrivals=static.notifies_arrivals,
            poll_interval=settings.poll_interval,
            max_poll_interval=settings.max_poll_interval,  # None: 8 x poll_interval
            max_object_size=settings.max_object_size,
            profiles=static.profiles,
            shares_objects=static.shares_objects,
            resumes_uploads=static.resumes_uploads,
        )

    def open(self, context: TransportContext, settings: MailboxSettings) -> tuple[_Opened, bool]:
        """The participant's storage and arrival source, and whether it owns them."""
        if self._share is None:
            return self._open(context, settings), True
        key = self._share(context, settings)
        with self._lock:
            opened = self._shared.get(key)
            if opened is None:
                opened = self._shared[key] = self._open(context, settings)
        return opened, False

    def _open(self, context: TransportContext, settings: MailboxSettings) -> _Opened:
        from syftflwr.mailbox.arrivals import Poller
        from syftflwr.mailbox.layout import ensure_layout

        storage = _resolve(self._storage)(context, settings)
        ensure_layout(storage)
        if self._arrivals is not None:
            arrivals = _resolve(self._arrivals)(storage, context, settings)
        else:
            arrivals = Poller(
                storage,
                interval=settings.poll_interval,
                max_interval=settings.max_poll_interval,
                name=f"{self.name}-poller-{context.email}",
            )
        return _Opened(storage, arrivals)

    def forget(self) -> None:
        """Close every shared storage's arrival source (tests; a notebook switching roots)."""
        with self._lock:
            opened = list(self._shared.values())
            self._shared.clear()
        for item in opened:
            _close(item.arrivals)

    # -- the hooks -------------------------------------------------------------------------------
    def hooks(
        self,
    ) -> tuple[
        Callable[[], TransportInfo],
        Callable[[TransportContext], MailboxClient],
        Callable[[MailboxClient, TransportContext], MailboxRPC],
        Callable[[MailboxClient, TransportContext], MailboxEvents],
    ]:
        """The four required hooks, to bind to their names in the hook module (pluggy
        reads a module's attributes)."""
        return (
            self.syftflwr_transport_info,
            self.syftflwr_make_client,
            self.syftflwr_make_rpc,
            self.syftflwr_make_events,
        )

    def detection(
        self, function: Callable[[TransportContext], Detection]
    ) -> Callable[[TransportContext], Detection]:
        """Decorates the hook module's ``syftflwr_detect``: a hook, which answers options it
        cannot read (a ValueError or TypeError) with "not usable: invalid options ..." —
        detection never raises."""

        @functools.wraps(function)
        def syftflwr_detect(context: TransportContext) -> Detection:
            try:
                return function(context)
            except (ValueError, TypeError) as exc:
                return Detection(False, f"invalid {self.name} options: {exc}")

        return hookimpl(syftflwr_detect)

    @hookimpl
    def syftflwr_transport_info(self) -> TransportInfo:
        return TransportInfo(
            name=self.name,
            description=self.description,
            capabilities=self.static_capabilities,
            options=self.options,
            docs_url=self.docs_url,
        )

    @hookimpl
    def syftflwr_make_client(self, context: TransportContext) -> MailboxClient:
        return MailboxClient(self, context)

    @hookimpl
    def syftflwr_make_rpc(self, client: MailboxClient, context: TransportContext) -> MailboxRPC:
        from syftflwr.mailbox.rpc import MailboxRPC

        return MailboxRPC(client, context, client.capabilities, **_mailbox(client, context))

    @hookimpl
    def syftflwr_make_events(
        self, client: MailboxClient, context: TransportContext
    ) -> MailboxEvents:
        from syftflwr.mailbox.events import MailboxEvents

        return MailboxEvents(
            client,
            context,
            client.capabilities,
            workers=client.settings.workers,
            **_mailbox(client, context),
        )


def _mailbox(client: MailboxClient, context: TransportContext) -> dict[str, Any]:
    """What both mailbox roles are built on: the client's storage and arrival source,
    its retention interval, the context's wire profile."""
    from syftflwr.profiles import mailbox_profile

    return {
        "storage": client.storage,
        "arrivals": client.arrivals,
        "retention_interval": client.settings.retention_interval,
        "profile": mailbox_profile(context.profile),
    }


def _close(arrivals: object) -> None:
    close = getattr(arrivals, "close", None)
    if callable(close):
        close()


class MailboxClient:
    """The client role of a kit transport: who I am (the storage's own identity when it
    has one, :class:`StorageIdentity`; else the configured email), where mailboxes live,
    where public keys are published. ``storage``, ``arrivals``, ``settings`` and the
    effective ``capabilities`` are what the RPC and events roles are built from."""

    def __init__(self, transport: StorageTransport, context: TransportContext) -> None:
        configured = validate_email(context.require_email())
        self.transport = transport
        self.settings = transport.settings(context)
        self.capabilities: Capabilities = transport.capabilities(context, self.settings)
        opened, self._owns = transport.open(context, self.settings)
        self.storage: Storage = opened.storage
        self.arrivals: ArrivalSource = opened.arrivals
        from syftflwr.roles import StorageIdentity, offers

        identity = cast(StorageIdentity, self.storage)
        own = identity.email if offers(self.storage, StorageIdentity) else None
        self._email = validate_email(own) if own else configured

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        """Where ``email``'s outboxes start (for logs and ``syftflwr doctor``)."""
        from syftflwr.mailbox.layout import OUTBOX_PREFIX
        from syftflwr.roles import HasLocation, offers

        url = cast(HasLocation, self.storage).url if offers(self.storage, HasLocation) else ""
        base = url or f"{self.transport.name}:"
        return f"{base.rstrip('/')}/{OUTBOX_PREFIX}{validate_email(email)}_to_"

    def key_directory(self) -> StorageKeyDirectory:
        """Public keys for core encryption (on by default), in this participant's outboxes."""
        from syftflwr.crypto.directory import StorageKeyDirectory

        return StorageKeyDirectory(self.storage, self._email)

    def close(self) -> None:
        """Closes the arrival source it opened; a shared one stays (see
        :meth:`StorageTransport.forget`)."""
        if self._owns:
            _close(self.arrivals)
