"""The Python API: everything the CLI does, callable from a script or a notebook (Colab
is where many Drive users live).

    import syftflwr

    syftflwr.list_transports()                              # what is installed, what works
    result = syftflwr.simulate("examples/quickstart")       # whole federation, this machine
    result = syftflwr.run_aggregator("my-app", email="me@lab.org")
    site = syftflwr.start_datasite("my-app", email="ds@hospital.org")   # background thread
    site.stop(); site.join()
    syftflwr.jobs(email="ds@hospital.org").approve("69e496af")   # apps with consent

Every function takes the Flower app's directory (or a loaded
:class:`~syftflwr.config.ProjectConfig`) and follows the same precedence as the CLI.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.config import ProjectConfig, detection_context_for
from syftflwr.flower.apps import UserConfigValue
from syftflwr.flower.launch import make_datasite_runner
from syftflwr.flower.launch import run_aggregator as _run_aggregator
from syftflwr.flower.progress import FanOut, ProgressReporter, RoundLines
from syftflwr.flower.results import RunResult
from syftflwr.flower.runner import DatasiteRunner, RunnerStats
from syftflwr.flower.simulation import Mode, SimulationResult, simulation_project
from syftflwr.flower.simulation import simulate as _simulate
from syftflwr.jobs.table import JobsTable
from syftflwr.registry import TransportStatus, get_registry
from syftflwr.session import Participant, as_project, connect, select_transport

ProjectLike = str | Path | ProjectConfig

__all__ = [
    "JobsTable",
    "Participant",
    "RunResult",
    "RunningDatasite",
    "SimulationResult",
    "connect",
    "list_transports",
    "run_aggregator",
    "run_datasite",
    "select_transport",
    "simulate",
    "start_datasite",
]


def simulate(
    project: ProjectLike,
    *,
    mode: Mode | None = None,
    transport: str | None = None,
    progress: bool = True,
    reporter: ProgressReporter | None = None,
    **kwargs: Any,
) -> SimulationResult:
    """Train the project's Flower app with its aggregator and datasites on this machine:
    separate processes by default, ``mode="threads"`` for all in this process (see
    :func:`syftflwr.flower.simulation.simulate` for the other arguments).

    With ``progress`` (default) it prints one line per round on stderr, what the
    ServerApp prints, and the participants' warnings and errors, prefixed by
    participant; Flower's own INFO log is not shown. The result's repr is one line, a
    notebook shows it as a table, and ``result.plot()`` draws accuracy and loss.
    """
    from rich.console import Console

    from syftflwr.flower.relay import Role, printer, prints_and_problems
    from syftflwr.logs import flower_quiet

    reporters: list[ProgressReporter] = [reporter] if reporter is not None else []
    lines = RoundLines(lambda line: print(line, file=sys.stderr, flush=True)) if progress else None
    if lines is not None:
        reporters.append(lines)
    if progress:
        fed = simulation_project(as_project(project), kwargs.get("datasites"))
        roles: dict[str, Role] = {fed.aggregator or "": "aggregator"}
        roles.update(dict.fromkeys(fed.datasites, "datasite"))
        kwargs["output"] = printer(Console(stderr=True), roles, prints_and_problems)
    try:
        with flower_quiet(logging.WARNING):
            return _simulate(
                project, mode=mode, transport=transport, reporter=FanOut(reporters), **kwargs
            )
    finally:
        if lines is not None:
            lines.close()


def list_transports(project: str | Path | None = None) -> list[TransportStatus]:
    """Every installed transport with status, capabilities and detection verdict."""
    return get_registry().statuses(detection_context_for(project or None))


def run_aggregator(
    project: ProjectLike,
    *,
    email: str | None = None,
    transport: str | None = None,
    rounds: int | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    round_timeout: float | None = None,
    reporter: ProgressReporter | None = None,
    resume: bool = False,
) -> RunResult:
    """Run the project's ServerApp as its aggregator; returns what happened per round.
    ``resume`` continues this aggregator's stopped run (docs/resume.md)."""
    with connect(project, email=email, transport=transport) as participant:
        return _run_aggregator(
            participant,
            rounds=rounds,
            run_config=run_config,
            round_timeout=round_timeout,
            reporter=reporter,
            resume=resume,
        )


@dataclass
class RunningDatasite:
    """A datasite serving in a background thread (see :func:`start_datasite`)."""

    participant: Participant
    runner: DatasiteRunner
    thread: threading.Thread

    @property
    def stats(self) -> RunnerStats:
        return self.runner.stats

    def stop(self) -> None:
        self.runner.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the runner to end (stop message or :meth:`stop`); True if it did."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            return False
        self.participant.close()
        return True


def start_datasite(
    project: ProjectLike,
    *,
    email: str | None = None,
    transport: str | None = None,
    node_config: Mapping[str, UserConfigValue] | None = None,
    **connect_kwargs: Any,
) -> RunningDatasite:
    """Serve the project's ClientApp in a background thread; returns at once."""
    participant = connect(project, email=email, transport=transport, **connect_kwargs)
    try:
        runner = make_datasite_runner(participant, node_config=node_config)
    except BaseException:
        participant.close()
        raise
    thread = threading.Thread(
        target=runner.run, name=f"syftflwr-datasite-{participant.email}", daemon=True
    )
    thread.start()
    return RunningDatasite(participant, runner, thread)


def run_datasite(
    project: ProjectLike,
    *,
    email: str | None = None,
    transport: str | None = None,
    node_config: Mapping[str, UserConfigValue] | None = None,
) -> RunnerStats:
    """Serve the project's ClientApp until the aggregator's stop message (blocking;
    KeyboardInterrupt stops it cleanly)."""
    site = start_datasite(project, email=email, transport=transport, node_config=node_config)
    try:
        while not site.join(timeout=0.5):
            pass
    except KeyboardInterrupt:
        site.stop()
        site.join()
    return site.stats
