"""The client role and the role factories: a participant's identity, its root's storage
and arrival source (shared by every participant of the process using the same root),
and the core mailbox roles built on them."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from syftflwr.crypto.directory import StorageKeyDirectory
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox.arrivals import ArrivalSource, Poller
from syftflwr.mailbox.events import MailboxEvents
from syftflwr.mailbox.layout import OUTBOX_PREFIX, ensure_layout
from syftflwr.mailbox.localdir import LocalDirStorage
from syftflwr.mailbox.rpc import MailboxRPC
from syftflwr.mailbox.storage import Storage
from syftflwr.names import validate_email
from syftflwr.profiles import mailbox_profile

from syftflwr_fsspec_local.options import (
    LOCAL_FALLBACK_POLL,
    Settings,
    effective_capabilities,
)


@dataclass(frozen=True)
class Root:
    """One opened mailbox root: its storage and its arrival source."""

    url: str
    storage: Storage
    arrivals: ArrivalSource
    local: bool


_ROOTS: dict[tuple[Any, ...], Root] = {}
_ROOTS_LOCK = threading.Lock()


def _key(settings: Settings) -> tuple[Any, ...]:
    options = tuple(sorted((k, repr(v)) for k, v in settings.storage_options.items()))
    return (settings.root, options, settings.watch, settings.fsync, settings.poll_interval,
            settings.max_poll_interval)  # fmt: skip


def open_root(settings: Settings) -> Root:
    """The process-wide :class:`Root` for these settings (opened on first use), so many
    participants in one process share one storage, one watcher and one poller."""
    key = _key(settings)
    with _ROOTS_LOCK:
        root = _ROOTS.get(key)
        if root is not None:
            return root
        storage: Storage
        arrivals: ArrivalSource
        if settings.is_local:
            from syftflwr_fsspec_local.watcher import LocalArrivals

            storage = LocalDirStorage(settings.root, fsync=settings.fsync)
            arrivals = LocalArrivals(
                storage,
                mode=settings.watch,
                poll_interval=LOCAL_FALLBACK_POLL,
                max_poll_interval=max(settings.poll_interval, LOCAL_FALLBACK_POLL),
            )
        else:
            from syftflwr_fsspec_local.fsspec_storage import FsspecStorage

            storage = FsspecStorage(settings.root, settings.storage_options)
            arrivals = Poller(
                storage,
                interval=settings.poll_interval,
                max_interval=settings.max_poll_interval,
                name="syftflwr-fsspec-poller",
            )
        ensure_layout(storage)
        root = _ROOTS[key] = Root(settings.root, storage, arrivals, settings.is_local)
        return root


def forget_roots() -> None:
    """Drop every opened root (tests; a notebook switching roots)."""
    with _ROOTS_LOCK:
        roots = list(_ROOTS.values())
        _ROOTS.clear()
    for root in roots:
        close = getattr(root.arrivals, "close", None)
        if close is not None:
            close()


class FsspecLocalClient:
    """Client role: the participant's email (from the context — this storage has no
    identity of its own) and where mailboxes live under the root."""

    def __init__(self, context: TransportContext) -> None:
        self._email = validate_email(context.require_email())
        self.settings = Settings.from_context(context)
        self.capabilities: Capabilities = effective_capabilities(self.settings)
        self.root = open_root(self.settings)

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        """The root path/URL prefix of ``email``'s outboxes."""
        return f"{self.settings.root}/{OUTBOX_PREFIX}{validate_email(email)}_to_"

    def key_directory(self) -> StorageKeyDirectory:
        """Public keys for core encryption, in this participant's outboxes."""
        return StorageKeyDirectory(self.root.storage, self._email)

    def close(self) -> None:
        """Nothing to release: the root is shared by the process (see :func:`forget_roots`)."""


def make_rpc(client: FsspecLocalClient, context: TransportContext) -> MailboxRPC:
    return MailboxRPC(
        client,
        context,
        client.capabilities,
        storage=client.root.storage,
        arrivals=client.root.arrivals,
        retention_interval=client.settings.retention_interval,
        profile=mailbox_profile(context.profile),
    )


def make_events(client: FsspecLocalClient, context: TransportContext) -> MailboxEvents:
    return MailboxEvents(
        client,
        context,
        client.capabilities,
        storage=client.root.storage,
        arrivals=client.root.arrivals,
        workers=client.settings.workers,
        retention_interval=client.settings.retention_interval,
        profile=mailbox_profile(context.profile),
    )
