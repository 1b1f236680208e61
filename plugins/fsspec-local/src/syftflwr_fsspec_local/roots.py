"""Opening a root: its storage (core's ``LocalDirStorage`` for a local directory, an
:class:`~syftflwr_fsspec_local.fsspec_storage.FsspecStorage` for a URL) and its arrival
source (core's shared inotify watcher, or adaptive polling). The kit shares both between
the participants of a process that use the same root (``options.share_key``)."""

from __future__ import annotations

from syftflwr.plugin import (
    ArrivalSource,
    LocalArrivals,
    LocalDirStorage,
    MailboxSettings,
    Poller,
    Storage,
    TransportContext,
)

from syftflwr_fsspec_local.options import LOCAL_FALLBACK_POLL, Settings


def open_storage(context: TransportContext, mailbox: MailboxSettings) -> Storage:
    settings = Settings.from_context(context)
    if settings.is_local:
        return LocalDirStorage(settings.root, fsync=mailbox.fsync)
    from syftflwr_fsspec_local.fsspec_storage import FsspecStorage

    return FsspecStorage(settings.root, settings.storage_options)


def open_arrivals(
    storage: Storage, context: TransportContext, mailbox: MailboxSettings
) -> ArrivalSource:
    settings = Settings.from_context(context)
    if settings.is_local:
        return LocalArrivals(
            storage,
            mode=settings.watch,
            poll_interval=LOCAL_FALLBACK_POLL,
            max_poll_interval=max(mailbox.poll_interval, LOCAL_FALLBACK_POLL),
        )
    return Poller(
        storage,
        interval=mailbox.poll_interval,
        max_interval=mailbox.max_poll_interval,
        name="syftflwr-fsspec-poller",
    )
