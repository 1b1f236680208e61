"""The federation ``syftflwr simulate`` runs, in either mode: who takes part (generated
emails where the project names too few), their keys made and pinned, the roster the
participant processes read, and the private workspace every participant gets as
``SYFTFLWR_HOME`` (per-email state directories inside it, and the local transport's
default mailbox root), so a simulation never sees another run's files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from syftflwr.config import HOME_ENV, ProjectConfig
from syftflwr.errors import ConfigError
from syftflwr.names import validate_email
from syftflwr.session import connect

DEFAULT_DATASITES = 2
SIMULATED_DOMAIN = "simulation.local"
ROSTER_FILE = "roster.json"


def simulation_project(
    project: ProjectConfig, datasites: int | Sequence[str] | None = None
) -> ProjectConfig:
    """``project`` with the simulated federation: explicit emails, or the first N
    configured datasites plus generated ``dsK@simulation.local`` beyond them (N
    defaults to the configured ones, else 2). A missing aggregator is generated too.
    Pinned keys are dropped: they belong to the real participants, and every simulated
    one makes fresh keys in the simulation's workspace."""
    configured = list(project.datasites)
    if datasites is None:
        datasites = len(configured) or DEFAULT_DATASITES
    if isinstance(datasites, int):
        if datasites < 1:
            raise ConfigError(
                f"need at least one datasite, got {datasites}", key="--datasites", fix="use >= 1"
            )
        chosen = configured[:datasites]
        k = 1
        while len(chosen) < datasites:
            email = f"ds{k}@{SIMULATED_DOMAIN}"
            if email not in chosen:
                chosen.append(email)
            k += 1
    else:
        chosen = [validate_email(e) for e in datasites]
    aggregator = project.aggregator or f"aggregator@{SIMULATED_DOMAIN}"
    if aggregator in chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(
            "datasites must be distinct and differ from the aggregator",
            key="datasites",
            fix="list each datasite once",
        )
    return replace(project, aggregator=aggregator, datasites=tuple(chosen), keys={})


def pin_keys(
    fed: ProjectConfig,
    *,
    transport: str | None,
    env: Mapping[str, str],
    allow_in_process: bool = False,
    offline: Collection[str] = (),
) -> tuple[ProjectConfig, str]:
    """Connect each simulated participant once, which makes (and publishes) its key in
    the workspace, and pin every key in the federation: the participants then trust
    each other as a real federation does after ``syftflwr keys pin``, with no
    trust-on-first-use warnings. Fails fast, in this process, on an unknown transport, a
    bad config or a plugin that cannot build a participant's role (the error names the
    plugin and the hook, instead of a child process dying far from the cause).
    ``offline`` participants never run, so never publish a key. Returns the pinned
    federation and the transport's name."""
    pins: dict[str, str] = {}
    chosen = transport or ""
    for email in (fed.aggregator or "", *fed.datasites):
        if email in offline:
            continue
        with connect(
            fed, email=email, transport=transport, env=env, allow_in_process=allow_in_process
        ) as participant:
            chosen = participant.transport.name
            if participant.keyring is not None:
                pins[email] = participant.keyring.own.fingerprint
            if participant.role == "aggregator":
                participant.rpc()
            else:
                participant.events()
    return replace(fed, keys=pins), chosen


def write_roster(project: ProjectConfig, path: Path) -> None:
    """The simulated federation, for ``syftflwr run --roster`` in child processes."""
    roster = {
        "app_name": project.app_name,
        "aggregator": project.aggregator,
        "datasites": list(project.datasites),
        "keys": dict(project.keys),
    }
    path.write_text(json.dumps(roster), encoding="utf-8")


def apply_roster(project: ProjectConfig, path: Path) -> ProjectConfig:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return replace(
        project,
        app_name=data["app_name"],
        aggregator=validate_email(data["aggregator"]),
        datasites=tuple(validate_email(e) for e in data["datasites"]),
        configured=True,
        # the simulated participants' own keys (pin_keys), not the real federation's pins
        keys={str(k): str(v) for k, v in data.get("keys", {}).items()},
    )


@contextmanager
def workspace_dir(keep: Path | None) -> Iterator[Path]:
    """A fresh workspace (deleted afterwards), or ``keep`` (created, kept)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    path = Path(tempfile.mkdtemp(prefix="syftflwr-sim-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def simulation_env(workspace: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env[HOME_ENV] = str(workspace / "home")
    # a private broker when the memory transport is used in threads
    env["SYFTFLWR_MEMORY_NAMESPACE"] = f"simulate-{uuid.uuid4().hex}"
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    return env
