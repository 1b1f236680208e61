"""Transport registry: entry-point discovery, loading by name, auto-detection.

Discovery reads installed metadata only (group ``syftflwr.transports``; the entry-point
name is the transport name), so listing never imports a plugin. :meth:`Registry.load`
imports exactly the transport asked for and validates its hooks; selection is always a
lookup by name. Auto-detection asks every enabled transport and picks the usable one
with the highest declared preference, ties broken by name.

    registry = get_registry()
    transport = registry.load("fsspec-local")          # or registry.auto_select()[0]
    client = transport.make_client(context)
"""

from __future__ import annotations

import threading

from syftflwr.registry._entries import FIRST_PARTY_EXTRAS, TransportEntry
from syftflwr.registry._install import install_hint, source_folder
from syftflwr.registry._registry import ContextFor, PluginWarning, Registry, detection_context
from syftflwr.registry._reports import TransportStatus, pick
from syftflwr.registry._transport import Transport

__all__ = [
    "FIRST_PARTY_EXTRAS",
    "ContextFor",
    "PluginWarning",
    "Registry",
    "Transport",
    "TransportEntry",
    "TransportStatus",
    "detection_context",
    "get_registry",
    "install_hint",
    "pick",
    "reset_registry",
    "source_folder",
]

_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry (``SYFTFLWR_DISABLE_PLUGINS`` read on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def reset_registry() -> None:
    """Forget the process-wide registry, so the next call rediscovers (tests)."""
    global _default
    with _default_lock:
        _default = None
