"""Run one participant of a Flower app: the aggregator's ServerApp on a
:class:`TransportGrid`, or a datasite's ClientApp in a :class:`DatasiteRunner`.

``syftflwr run``, both simulation modes and the Python API all go through these two
functions, with a :class:`~syftflwr.session.Participant` from
:func:`syftflwr.session.connect`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from syftflwr.errors import ConfigError
from syftflwr.flower.apps import (
    FlowerApp,
    UserConfigValue,
    fused_run_config,
    load_client_app,
    load_server_app,
    read_app,
)
from syftflwr.flower.compat import SUPERLINK_NODE_ID, new_context
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.progress import (
    FailureEvent,
    FanOut,
    ProgressReporter,
    RoundInfo,
    listening,
)
from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, RunnerStats
from syftflwr.session import Participant

log = logging.getLogger("syftflwr.flower")

ROUNDS_KEY = "num-server-rounds"


@dataclass
class RunResult:
    """What an aggregator's run did, per round; ``ok`` is False if anything failed."""

    transport: str
    aggregator: str
    datasites: tuple[str, ...]
    rounds: list[RoundInfo]
    failures: list[FailureEvent]
    stop_acks: dict[str, bool]
    duration: float
    error: str | None = None
    """The ServerApp's traceback if it raised."""
    final_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        """The latest centralised ``accuracy`` the ServerApp reported, if any."""
        for info in reversed(self.rounds):
            if "accuracy" in info.metrics:
                return info.metrics["accuracy"]
        return None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    def describe_failures(self) -> list[str]:
        return [f.describe() for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_config_for(index: int, total: int) -> dict[str, UserConfigValue]:
    """Flower's node config for the ``index``-th of ``total`` datasites."""
    return {"partition-id": index, "num-partitions": total}


def app_of(participant: Participant) -> FlowerApp:
    root = participant.project.root
    if root is None:
        raise ConfigError(
            "this project was not loaded from a directory, so its Flower app cannot be found",
            fix="connect with the app's directory (the one holding pyproject.toml)",
        )
    return read_app(root)


def run_config_for(
    app: FlowerApp,
    *,
    rounds: int | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
) -> dict[str, UserConfigValue]:
    overrides = dict(run_config or {})
    if rounds is not None:
        overrides[ROUNDS_KEY] = rounds
    return fused_run_config(app, overrides)


def run_server_app(
    server_app: Any,
    grid: TransportGrid,
    *,
    run_config: Mapping[str, UserConfigValue],
    reporter: ProgressReporter | None = None,
) -> None:
    """Run ``server_app`` on ``grid``; metrics it publishes go to ``reporter`` and the
    grid's report. Raises what the ServerApp raises."""
    context = new_context(
        run_id=grid.run_id, node_id=SUPERLINK_NODE_ID, node_config={}, run_config=run_config
    )
    sinks: list[ProgressReporter] = [grid.report]
    if reporter is not None:
        sinks.append(reporter)
    with listening(FanOut(sinks)):
        server_app(grid, context)


def run_aggregator(
    participant: Participant,
    *,
    rounds: int | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    reporter: ProgressReporter | None = None,
    round_timeout: float | None = None,
    stop_datasites: bool = True,
) -> RunResult:
    """Run the project's ServerApp against its datasites; never raises for app errors
    (they are in ``RunResult.error``), so callers can always report what happened.

    :param round_timeout: longest wait for one round's replies (default: the project's
        ``round_timeout``); a datasite that has not answered is reported and skipped.
    :param stop_datasites: send the stop message to every datasite at the end.
    """
    started = time.monotonic()
    project = participant.project
    app = app_of(participant)
    config = run_config_for(app, rounds=rounds, run_config=run_config)
    server_app = load_server_app(app)
    grid = TransportGrid(
        participant.rpc(),
        email=participant.email,
        app_name=participant.context.app_name,
        datasites=project.datasites,
        clock_skew=participant.context.clock_skew,
        max_wait=round_timeout if round_timeout is not None else project.round_timeout,
        reporter=reporter,
    )
    log.info(
        "aggregator %s: %d datasites over %s",
        participant.email,
        len(project.datasites),
        participant.transport.name,
    )
    error: str | None = None
    acks: dict[str, bool] = {}
    try:
        run_server_app(server_app, grid, run_config=config, reporter=reporter)
    except Exception:
        error = traceback.format_exc()
        log.error("the ServerApp raised:\n%s", error)
    finally:
        if stop_datasites:
            acks = grid.stop_datasites(timeout=min(10.0, grid.max_wait or 10.0))
        grid.close()
    final: dict[str, float] = {}
    for info in grid.report.rounds:
        final.update(info.metrics)
    return RunResult(
        transport=participant.transport.name,
        aggregator=participant.email,
        datasites=project.datasites,
        rounds=grid.report.rounds,
        failures=grid.report.failures,
        stop_acks=acks,
        duration=time.monotonic() - started,
        error=error,
        final_metrics=final,
    )


def make_datasite_runner(
    participant: Participant,
    *,
    node_config: Mapping[str, UserConfigValue] | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    client_app: ClientAppLike | None = None,
) -> DatasiteRunner:
    """A runner serving the project's ClientApp for ``participant`` (a datasite).

    ``node_config`` defaults to ``partition-id`` = the datasite's position in the
    project's ``datasites`` and ``num-partitions`` = their number.
    """
    project = participant.project
    email = participant.email
    if participant.role != "datasite":
        raise ConfigError(
            f"{email} is the aggregator of this project, not a datasite",
            source=str(project.path) if project.path else None,
            fix="run the aggregator with `syftflwr run PROJECT --as` its email, without "
            "datasite options",
        )
    app = app_of(participant)
    if node_config is None:
        node_config = node_config_for(project.datasites.index(email), len(project.datasites))
    return DatasiteRunner(
        participant.events(),
        client_app if client_app is not None else load_client_app(app),
        email=email,
        node_id=node_id_for(email),
        node_config=node_config,
        run_config=run_config_for(app, run_config=run_config),
    )


def run_datasite(
    participant: Participant,
    *,
    node_config: Mapping[str, UserConfigValue] | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    client_app: ClientAppLike | None = None,
    on_start: Callable[[DatasiteRunner], None] | None = None,
) -> RunnerStats:
    """Serve the project's ClientApp until the aggregator's stop message (or ``stop()``
    on the runner handed to ``on_start``, e.g. from a signal handler)."""
    runner = make_datasite_runner(
        participant, node_config=node_config, run_config=run_config, client_app=client_app
    )
    if on_start is not None:
        on_start(runner)
    log.info("datasite %s serving over %s", participant.email, participant.transport.name)
    return runner.run()
