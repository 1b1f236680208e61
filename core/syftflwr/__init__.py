"""syftflwr: federated learning with Flower over pluggable, file-based transports.

``import syftflwr`` is cheap: it imports neither Flower nor any transport plugin. The
Python API (:mod:`syftflwr.api`: ``connect``, ``simulate``,
``run_aggregator``, ``start_datasite``, ``run_datasite``, ``list_transports``) is
re-exported here lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from syftflwr._version import __version__
from syftflwr.hookspecs import hookimpl
from syftflwr.info import PLUGIN_API_VERSION

if TYPE_CHECKING:
    from syftflwr.api import (
        connect,
        list_transports,
        run_aggregator,
        run_datasite,
        simulate,
        start_datasite,
    )

_API = (
    "connect",
    "list_transports",
    "run_aggregator",
    "run_datasite",
    "simulate",
    "start_datasite",
)

__all__ = [
    "PLUGIN_API_VERSION",
    "__version__",
    "connect",
    "hookimpl",
    "list_transports",
    "run_aggregator",
    "run_datasite",
    "simulate",
    "start_datasite",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        from syftflwr import api

        return getattr(api, name)
    raise AttributeError(f"module 'syftflwr' has no attribute {name!r}")
