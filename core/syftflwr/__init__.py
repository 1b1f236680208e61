"""syftflwr: federated learning with Flower over pluggable, file-based transports.

``import syftflwr`` is cheap: it imports neither Flower nor any transport plugin. The
notebook-friendly API (select a transport, run an aggregator or a datasite, simulate)
lives in :mod:`syftflwr.api` and is re-exported here lazily.
"""

from __future__ import annotations

from syftflwr._version import __version__
from syftflwr.hookspecs import hookimpl
from syftflwr.info import PLUGIN_API_VERSION

__all__ = ["PLUGIN_API_VERSION", "__version__", "hookimpl"]
