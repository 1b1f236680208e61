"""The local-root watcher now lives in core (:mod:`syftflwr.mailbox.watcher`), shared
with the syftbox transport; this module keeps the plugin's import path and test seams."""

from __future__ import annotations

from syftflwr.mailbox.watcher import (
    LIMIT_ERRNOS,
    BackendFactory,
    EventSink,
    LocalArrivals,
    WatchBackend,
    WatchHub,
    default_backend_factory,
    hub,
    reset_hub,
    set_backend_factory,
)

__all__ = [
    "LIMIT_ERRNOS",
    "BackendFactory",
    "EventSink",
    "LocalArrivals",
    "WatchBackend",
    "WatchHub",
    "default_backend_factory",
    "hub",
    "reset_hub",
    "set_backend_factory",
]
