"""Helpers of the Flower integration tests: real memory-transport roles, names."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # before anything imports flwr

from syftflwr.info import TransportContext
from syftflwr.roles import EventsRole, RPCRole
from syftflwr.transports import memory

if TYPE_CHECKING:
    from syftflwr.flower.grid import TransportGrid

AGG = "aggregator@example.org"
DS1 = "ds1@example.org"
DS2 = "ds2@example.org"
DS3 = "ds3@example.org"
APP = "testapp"
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@dataclass
class MemoryFederation:
    """An aggregator RPC role plus datasite events roles on one memory namespace."""

    namespace: str
    datasites: tuple[str, ...]
    clock_skew: float = 0.0
    events: dict[str, EventsRole] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    grids: list[TransportGrid] = field(default_factory=list)
    _rpc: RPCRole | None = None

    def context(self, email: str) -> TransportContext:
        return TransportContext(
            transport="memory",
            app_name=APP,
            email=email,
            aggregator=AGG,
            datasites=self.datasites,
            options={"namespace": self.namespace},
            clock_skew=self.clock_skew,
        )

    @property
    def rpc(self) -> RPCRole:
        if self._rpc is None:
            ctx = self.context(AGG)
            self._rpc = memory.syftflwr_make_rpc(
                client=memory.syftflwr_make_client(context=ctx), context=ctx
            )
        return self._rpc

    def events_for(self, email: str) -> EventsRole:
        ctx = self.context(email)
        events = memory.syftflwr_make_events(
            client=memory.syftflwr_make_client(context=ctx), context=ctx
        )
        self.events[email] = events
        return events

    def start(self, target: Callable[[], object], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def keep(self, grid: TransportGrid) -> TransportGrid:
        """Close ``grid`` with the federation (an open grid's liveness timer would outlive
        the test: tests/conftest.py's ``no_grid_left_open``)."""
        self.grids.append(grid)
        return grid

    def close(self) -> None:
        for grid in self.grids:
            grid.close()
        for events in self.events.values():
            events.close()
        for thread in self.threads:
            thread.join(timeout=10)
        if self._rpc is not None:
            self._rpc.close()
        memory.reset(self.namespace)
