"""``syftflwr simulate --threads``: the aggregator and every datasite in threads of this
process, over the in-process ``memory`` transport by default (any transport may be
named), each connected through :func:`syftflwr.session.connect` and run through
:mod:`syftflwr.flower.launch`, exactly as ``syftflwr run`` does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from syftflwr.config import ProjectConfig
from syftflwr.errors import ConfigError
from syftflwr.flower.apps import UserConfigValue
from syftflwr.flower.progress import ProgressReporter
from syftflwr.flower.results import SimulationResult
from syftflwr.flower.simulation_setup import (
    pin_keys,
    simulation_env,
    simulation_project,
    workspace_dir,
)
from syftflwr.session import Participant, as_project, connect

if TYPE_CHECKING:  # Flower: imported where it runs
    from syftflwr.flower.runner import ClientAppLike, DatasiteRunner

log = logging.getLogger("syftflwr.flower")


def simulate_in_threads(
    project: str | Path | ProjectConfig,
    *,
    datasites: int | Sequence[str] | None = None,
    rounds: int | None = None,
    transport: str | None = None,
    timeout: float | None = None,
    reporter: ProgressReporter | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    client_apps: Mapping[str, ClientAppLike] | None = None,
    offline: Collection[str] = (),
    workspace: Path | None = None,
) -> SimulationResult:
    """Train the project's Flower app with every participant in this process.

    :param datasites: how many (int) or which (emails) datasites.
    :param rounds: overrides ``num-server-rounds`` of the run config.
    :param transport: default ``memory``; any transport usable from threads.
    :param timeout: longest wait for one round's replies (default: the project's
        ``round_timeout``); a datasite that has not answered is reported and skipped.
    :param client_apps: per-datasite ClientApp replacing the project's (fault drills).
    :param offline: datasites that get no runner (simulates datasites that are down).
    :param workspace: keep state and mailboxes there instead of a temporary directory.
    """
    from syftflwr.flower.launch import make_datasite_runner, run_aggregator

    fed = simulation_project(as_project(project), datasites)
    unknown = (set(offline) | set(client_apps or {})) - set(fed.datasites)
    if unknown:
        raise ConfigError(
            f"{', '.join(sorted(unknown))} are not datasites of this simulation",
            key="offline/client_apps",
            fix=f"use some of: {', '.join(fed.datasites)}",
        )
    name = transport or "memory"
    participants: list[Participant] = []
    runners: dict[str, DatasiteRunner] = {}
    threads: list[threading.Thread] = []
    with workspace_dir(workspace) as space:
        env = simulation_env(space)

        def join(email: str) -> Participant:
            p = connect(fed, email=email, transport=name, env=env, allow_in_process=True)
            participants.append(p)
            return p

        try:
            fed, _ = pin_keys(fed, transport=name, env=env, allow_in_process=True, offline=offline)
            aggregator = join(fed.aggregator or "")
            for email in fed.datasites:
                if email in offline:
                    continue
                runner = make_datasite_runner(
                    join(email), client_app=(client_apps or {}).get(email)
                )
                runners[email] = runner
                thread = threading.Thread(target=runner.run, name=f"syftflwr-{email}", daemon=True)
                threads.append(thread)
                thread.start()
            log.info(
                "simulating %s: %d datasites in threads over %s",
                fed.app_name,
                len(fed.datasites),
                name,
            )
            result = run_aggregator(
                aggregator,
                rounds=rounds,
                run_config=run_config,
                reporter=reporter,
                round_timeout=timeout,
            )
        finally:
            for runner in runners.values():
                runner.stop()
            for thread in threads:
                thread.join(timeout=10.0)
            for p in participants:
                p.close()
            if name == "memory":
                from syftflwr.transports import memory

                memory.reset(env["SYFTFLWR_MEMORY_NAMESPACE"])
    return SimulationResult(
        **vars(result),
        mode="threads",
        runner_stats={email: r.stats for email, r in runners.items()},
        workspace=workspace,
    )
