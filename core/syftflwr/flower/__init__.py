"""Flower over any syftflwr transport.

* :mod:`~syftflwr.flower.grid` — ``TransportGrid``, a ``flwr`` Grid over the RPC role;
* :mod:`~syftflwr.flower.runner` — ``DatasiteRunner``, a ClientApp served over the
  events role;
* :mod:`~syftflwr.flower.serde` — Flower's protobuf encoding, without the copies;
* :mod:`~syftflwr.flower.apps` — load a Flower app and its run config from its directory;
* :mod:`~syftflwr.flower.simulation` — a whole federation in threads of one process;
* :mod:`~syftflwr.flower.progress` — progress events, per-round records, metrics;
* :mod:`~syftflwr.flower.compat` — the Flower versions bridged (by feature);
* :mod:`~syftflwr.flower.node_ids` — stable uint64 node ids from emails.

Importing this package imports Flower; ``import syftflwr`` alone does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.runner import DatasiteRunner
    from syftflwr.flower.simulation import SimulationResult, simulate_in_threads

__all__ = ["DatasiteRunner", "SimulationResult", "TransportGrid", "simulate_in_threads"]

_EXPORTS = {
    "TransportGrid": "syftflwr.flower.grid",
    "DatasiteRunner": "syftflwr.flower.runner",
    "SimulationResult": "syftflwr.flower.simulation",
    "simulate_in_threads": "syftflwr.flower.simulation",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
