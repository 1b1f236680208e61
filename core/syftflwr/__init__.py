"""syftflwr: federated learning with Flower over pluggable, file-based transports.

``import syftflwr`` is cheap: it imports neither Flower nor any transport plugin, nor
even pluggy (``syftflwr run`` handles a Ctrl-C from its first milliseconds, so its entry
point must be reached fast). The Python API (:mod:`syftflwr.api`: ``connect``,
``simulate``, ``run_aggregator``, ``start_datasite``, ``run_datasite``,
``list_transports``, ``select_transport`` and their result types: exactly what
``syftflwr.api.__all__`` lists), ``hookimpl`` and ``PLUGIN_API_VERSION`` are re-exported
lazily, and so is ``syftflwr.jobs``, the package of apps with consent, which a notebook
calls for its table of jobs (``syftflwr.jobs(email=...)``).
"""

from __future__ import annotations

from syftflwr._version import __version__

TYPE_CHECKING = False  # not typing's: importing typing costs ~10 ms on the CLI's path
if TYPE_CHECKING:
    from typing import Any

    from syftflwr.api import (
        JobsTable,
        Participant,
        RunningDatasite,
        RunResult,
        SimulationResult,
        connect,
        list_transports,
        run_aggregator,
        run_datasite,
        select_transport,
        simulate,
        start_datasite,
    )
    from syftflwr.hookspecs import hookimpl
    from syftflwr.info import PLUGIN_API_VERSION

__all__ = [
    "PLUGIN_API_VERSION",
    "JobsTable",
    "Participant",
    "RunResult",
    "RunningDatasite",
    "SimulationResult",
    "__version__",
    "connect",
    "hookimpl",
    "list_transports",
    "run_aggregator",
    "run_datasite",
    "select_transport",
    "simulate",
    "start_datasite",
]

_API = frozenset(__all__) - {"PLUGIN_API_VERSION", "__version__", "hookimpl"}
"""``syftflwr.api.__all__``, imported on first use (tests/test_api.py keeps them equal)."""


def __getattr__(name: str) -> Any:
    if name in _API:
        from syftflwr import api

        return getattr(api, name)
    if name == "hookimpl":
        from syftflwr.hookspecs import hookimpl

        return hookimpl
    if name == "PLUGIN_API_VERSION":
        from syftflwr.info import PLUGIN_API_VERSION

        return PLUGIN_API_VERSION
    if name == "jobs":  # the package, callable: ``syftflwr.jobs()`` is the jobs table
        import syftflwr.jobs

        return syftflwr.jobs
    raise AttributeError(f"module 'syftflwr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
