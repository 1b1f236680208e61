"""Flower over any syftflwr transport.

* :mod:`~syftflwr.flower.grid` — ``TransportGrid``, a ``flwr`` Grid over the RPC role;
* :mod:`~syftflwr.flower.runner` — ``DatasiteRunner``, a ClientApp served over the
  events role;
* :mod:`~syftflwr.flower.launch` — one participant's run (``syftflwr run``, simulations,
  the Python API);
* :mod:`~syftflwr.flower.resume` — the run journal's replay (``--resume``), with
  :mod:`~syftflwr.flower.run_journal`, :mod:`~syftflwr.flower.fingerprint` and
  :mod:`~syftflwr.flower.checkpoint`;
* :mod:`~syftflwr.flower.simulation` — a whole federation on this machine, in threads or
  in processes (:mod:`~syftflwr.flower.forkserver`, :mod:`~syftflwr.flower.relay`);
* :mod:`~syftflwr.flower.serde` — Flower's protobuf encoding, without the copies;
* :mod:`~syftflwr.flower.apps` — load a Flower app and its run config from its directory;
* :mod:`~syftflwr.flower.progress`, :mod:`~syftflwr.flower.liveness`,
  :mod:`~syftflwr.flower.results` — progress events, "no sign of" hints, the result;
* :mod:`~syftflwr.flower.compat` — the Flower versions bridged (by feature);
* :mod:`~syftflwr.flower.node_ids` — stable node ids from emails, per wire profile.

Importing this package does not import Flower; its Flower modules do (``TransportGrid``
and the others load on first use).
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
