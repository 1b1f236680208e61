"""The local-root watcher lives in core (shared with the syftbox transport); this module
keeps the plugin's import path and test seams, through the plugin API."""

from __future__ import annotations

from syftflwr.plugin import (
    LIMIT_ERRNOS,
    BackendFactory,
    EventSink,
    LocalArrivals,
    WatchBackend,
    WatchHub,
    default_backend_factory,
    reset_hub,
    set_backend_factory,
)
from syftflwr.plugin import watch_hub as hub

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
