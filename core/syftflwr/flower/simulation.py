"""Run a whole federation in ONE process: the ServerApp on a :class:`TransportGrid` in
the calling thread, one :class:`DatasiteRunner` thread per datasite, all over the
in-process ``memory`` transport — ``syftflwr simulate --threads``.

The building blocks are public so the process mode and ``syftflwr run`` reuse them:
:func:`resolve_participants` (who takes part), :func:`node_config_for` (Flower's
``partition-id`` / ``num-partitions``), :func:`run_server_app` (a ServerApp on a Grid,
with metrics routed to a reporter).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from syftflwr.flower.progress import (
    FailureEvent,
    FanOut,
    ProgressReporter,
    RoundInfo,
    listening,
)
from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, RunnerStats
from syftflwr.info import TransportContext
from syftflwr.names import validate_email, validate_identifier

log = logging.getLogger("syftflwr.flower")

DEFAULT_DATASITES = 2
ROUNDS_KEY = "num-server-rounds"


@dataclass(frozen=True)
class Participants:
    app_name: str
    aggregator: str
    datasites: tuple[str, ...]


@dataclass
class SimulationResult:
    """What happened, per round; ``ok`` is False if anything failed."""

    participants: Participants
    transport: str
    rounds: list[RoundInfo]
    failures: list[FailureEvent]
    runner_stats: dict[str, RunnerStats]
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


# --------------------------------------------------------------------------- building blocks
def node_config_for(index: int, total: int) -> dict[str, UserConfigValue]:
    """Flower's node config for the ``index``-th of ``total`` datasites."""
    return {"partition-id": index, "num-partitions": total}


def _default_app_name(app: FlowerApp) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", app.name).strip("-.") or "app"
    return validate_identifier(name[:64], "app name")


def resolve_participants(
    app: FlowerApp,
    *,
    datasites: int | Sequence[str] | None = None,
    aggregator: str | None = None,
    app_name: str | None = None,
) -> Participants:
    """Who takes part: explicit arguments, else ``[tool.syftflwr]``, else generated.

    ``datasites`` as an int takes the first N configured datasites and invents
    ``dsK@simulation.local`` addresses for any beyond them.
    """
    table = app.syftflwr
    configured = table.get("datasites") or []
    if not isinstance(configured, list) or not all(isinstance(e, str) for e in configured):
        raise ConfigError(
            "must be a list of emails",
            source=str(app.pyproject),
            key="tool.syftflwr.datasites",
        )
    if datasites is None:
        chosen = list(configured) or [f"ds{i}@simulation.local" for i in range(1, 3)]
    elif isinstance(datasites, int):
        if datasites < 1:
            raise ConfigError(f"need at least one datasite, got {datasites}", key="datasites")
        chosen = list(configured[:datasites])
        k = 1
        while len(chosen) < datasites:
            email = f"ds{k}@simulation.local"
            if email not in chosen:
                chosen.append(email)
            k += 1
    else:
        chosen = list(datasites)
    for email in chosen:
        validate_email(email)
    agg = aggregator or table.get("aggregator") or "aggregator@simulation.local"
    name = app_name or table.get("app_name") or _default_app_name(app)
    return Participants(
        app_name=validate_identifier(name, "app name"),
        aggregator=validate_email(agg),
        datasites=tuple(chosen),
    )


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


def _memory_context(
    parts: Participants, email: str, namespace: str, skew: float
) -> TransportContext:
    return TransportContext(
        transport="memory",
        app_name=parts.app_name,
        email=email,
        aggregator=parts.aggregator,
        datasites=parts.datasites,
        options={"namespace": namespace},
        clock_skew=skew,
    )


# --------------------------------------------------------------------------- thread mode
def simulate_in_threads(
    project_dir: str | Path,
    *,
    datasites: int | Sequence[str] | None = None,
    rounds: int | None = None,
    timeout: float = 120.0,
    reporter: ProgressReporter | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    aggregator: str | None = None,
    app_name: str | None = None,
    client_apps: Mapping[str, ClientAppLike] | None = None,
    offline: Collection[str] = (),
    clock_skew: float = 30.0,
) -> SimulationResult:
    """Train the project's Flower app with every participant in this process.

    :param datasites: how many (int) or which (emails) datasites; default: the
        project's ``[tool.syftflwr] datasites``.
    :param rounds: overrides ``num-server-rounds`` of the run config.
    :param timeout: longest wait for the replies of one ``send_and_receive`` (a round
        step); a datasite that has not answered by then is reported and skipped.
    :param reporter: live progress (sent / replies / failures / metrics).
    :param run_config: overrides of ``[tool.flwr.app.config]`` keys.
    :param client_apps: per-datasite ClientApp replacing the project's (fault drills).
    :param offline: datasites that get no runner (simulates datasites that are down).
    """
    started = time.monotonic()
    app = read_app(project_dir)
    parts = resolve_participants(app, datasites=datasites, aggregator=aggregator, app_name=app_name)
    overrides = dict(run_config or {})
    if rounds is not None:
        overrides[ROUNDS_KEY] = rounds
    config = fused_run_config(app, overrides)
    server_app = load_server_app(app)
    default_client_app = (
        load_client_app(app) if set(parts.datasites) - set(client_apps or {}) else None
    )
    unknown = (set(offline) | set(client_apps or {})) - set(parts.datasites)
    if unknown:
        raise ConfigError(
            f"{', '.join(sorted(unknown))} are not datasites of this simulation",
            key="offline/client_apps",
            fix=f"use some of: {', '.join(parts.datasites)}",
        )

    from syftflwr.transports import memory

    namespace = f"simulate-{uuid.uuid4().hex}"
    agg_ctx = _memory_context(parts, parts.aggregator, namespace, clock_skew)
    agg_client = memory.syftflwr_make_client(context=agg_ctx)
    rpc = memory.syftflwr_make_rpc(client=agg_client, context=agg_ctx)
    grid = TransportGrid(
        rpc,
        email=parts.aggregator,
        app_name=parts.app_name,
        datasites=parts.datasites,
        clock_skew=clock_skew,
        max_wait=timeout,
        reporter=reporter,
    )

    runners: dict[str, DatasiteRunner] = {}
    threads: list[threading.Thread] = []
    events_roles = []
    for index, email in enumerate(parts.datasites):
        if email in offline:
            continue
        ctx = _memory_context(parts, email, namespace, clock_skew)
        events = memory.syftflwr_make_events(
            client=memory.syftflwr_make_client(context=ctx), context=ctx
        )
        events_roles.append(events)
        client_app = (client_apps or {}).get(email) or default_client_app
        assert client_app is not None
        runner = DatasiteRunner(
            events,
            client_app,
            email=email,
            node_id=grid.node_ids[email],
            node_config=node_config_for(index, len(parts.datasites)),
            run_config=config,
        )
        runners[email] = runner
        thread = threading.Thread(target=runner.run, name=f"syftflwr-{email}", daemon=True)
        threads.append(thread)
        thread.start()

    error: str | None = None
    acks: dict[str, bool] = {}
    try:
        log.info(
            "simulating %s: aggregator %s, %d datasites in threads over the memory transport",
            parts.app_name,
            parts.aggregator,
            len(parts.datasites),
        )
        run_server_app(server_app, grid, run_config=config, reporter=reporter)
    except Exception:
        error = traceback.format_exc()
        log.error("the ServerApp raised:\n%s", error)
    finally:
        acks = grid.stop_datasites(timeout=min(10.0, timeout))
        for runner in runners.values():
            runner.stop()
        for thread in threads:
            thread.join(timeout=10.0)
        grid.close()
        rpc.close()
        for events in events_roles:
            events.close()
        memory.reset(namespace)

    recorded = grid.report.rounds
    final: dict[str, float] = {}
    for info in recorded:
        final.update(info.metrics)
    return SimulationResult(
        participants=parts,
        transport="memory",
        rounds=recorded,
        failures=grid.report.failures,
        runner_stats={email: r.stats for email, r in runners.items()},
        stop_acks=acks,
        duration=time.monotonic() - started,
        error=error,
        final_metrics=final,
    )
