"""Run a whole federation on this machine: ``syftflwr simulate``.

Two modes, one set of rules (participants connect through :func:`syftflwr.session.connect`
and run through :mod:`syftflwr.flower.launch`, exactly as ``syftflwr run`` does; the
federation and its workspace: :mod:`~syftflwr.flower.simulation_setup`):

* **processes** (default, :mod:`~syftflwr.flower.simulation_processes`): the aggregator
  and every datasite are separate OS processes, over a transport that crosses processes;
* **threads** (:mod:`~syftflwr.flower.simulation_threads`): everybody in this process,
  over the in-process ``memory`` transport by default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from syftflwr.config import ProjectConfig, selected_transport_name
from syftflwr.errors import SyftflwrError
from syftflwr.flower.results import Mode, SimulationResult
from syftflwr.flower.simulation_processes import simulate_in_processes
from syftflwr.flower.simulation_setup import apply_roster, simulation_project
from syftflwr.flower.simulation_threads import simulate_in_threads
from syftflwr.session import as_project, select_transport

__all__ = [
    "Mode",
    "SimulationResult",
    "apply_roster",
    "choose_mode",
    "simulate",
    "simulate_in_processes",
    "simulate_in_threads",
    "simulation_project",
]

log = logging.getLogger("syftflwr.flower")


def choose_mode(
    project: str | Path | ProjectConfig, mode: Mode | None = None, transport: str | None = None
) -> tuple[Mode, str | None]:
    """Processes by default; threads when asked, or — only when no transport is pinned
    (``[tool.syftflwr] transport``, ``SYFTFLWR_TRANSPORT``) — when no installed transport
    crosses processes: then over ``memory``, and the second value says why (the summary
    prints it). A pinned transport is used or this raises (exit 2 with the fix): it is
    never replaced by another."""
    if mode is not None or transport is not None:
        return mode or "processes", None
    loaded = as_project(project)
    pinned, _ = selected_transport_name(loaded)
    if pinned is not None:
        chosen, _ = select_transport(loaded, allow_in_process=True)  # raises if unusable
        return ("threads" if chosen.capabilities.in_process_only else "processes"), None
    try:
        select_transport(loaded)  # auto-detected
    except SyftflwrError as exc:
        why = f"no transport that crosses processes is usable ({str(exc).splitlines()[0]})"
        log.info("%s; simulating in threads over the memory transport", why)
        return "threads", why
    return "processes", None


def simulate(
    project: str | Path | ProjectConfig,
    *,
    mode: Mode | None = None,
    transport: str | None = None,
    **kwargs: Any,
) -> SimulationResult:
    """In processes or threads, as :func:`choose_mode` decides."""
    if choose_mode(project, mode, transport)[0] == "threads":
        kwargs.pop("output", None)  # in this process: its output is the caller's own
        return simulate_in_threads(project, transport=transport, **kwargs)
    return simulate_in_processes(project, transport=transport, **kwargs)
