"""Run a whole federation on this machine: ``syftflwr simulate``.

Two modes, one set of rules (participants connect through :func:`syftflwr.session.connect`
and run through :mod:`syftflwr.flower.launch`, exactly as ``syftflwr run`` does):

* **processes** (default): the aggregator and every datasite are separate OS processes
  (``python -m syftflwr run ...``), over a transport that crosses processes
  (``fsspec-local`` when installed). The aggregator streams progress as JSON lines that
  this process replays into the caller's reporter.
* **threads**: everybody in this process, over the in-process ``memory`` transport by
  default (any transport may be named).

Every participant gets the same private workspace as ``SYFTFLWR_HOME`` (per-email state
directories inside it, and the local transport's default mailbox root), so a
simulation never sees another run's files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from syftflwr.config import HOME_ENV, ProjectConfig, selected_transport_name
from syftflwr.errors import ConfigError, SyftflwrError
from syftflwr.flower import results
from syftflwr.flower.apps import UserConfigValue, node_config_for
from syftflwr.flower.forkserver import START_ENV, ForkServer, StartMethod, start_method
from syftflwr.flower.progress import ProgressReporter, replay_line
from syftflwr.flower.relay import ProcessLike, Relay, Role, Sink
from syftflwr.flower.results import RunResult
from syftflwr.names import validate_email
from syftflwr.session import Participant, as_project, connect, select_transport
from syftflwr.signals import PARENT_ENV, PARENT_GRACE, spawn_blocked

if TYPE_CHECKING:  # Flower: imported where it runs (this module starts processes too)
    from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, RunnerStats

log = logging.getLogger("syftflwr.flower")

DEFAULT_DATASITES = 2
SIMULATED_DOMAIN = "simulation.local"
ROSTER_FILE = "roster.json"
Mode = Literal["threads", "processes"]


@dataclass(repr=False)  # RunResult's one-line repr
class SimulationResult(RunResult):
    """A :class:`RunResult` plus how the simulation ran."""

    mode: Mode = "threads"
    runner_stats: dict[str, RunnerStats] = field(default_factory=dict)
    """Per-datasite counters (threads mode)."""
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    """Per-participant process exit codes (processes mode)."""
    workspace: Path | None = None
    """Kept only when asked (``keep_workspace``); holds logs and mailboxes."""


# --------------------------------------------------------------------------- participants
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
        chosen = configured or [f"ds{i}@{SIMULATED_DOMAIN}" for i in range(1, 3)]
    elif isinstance(datasites, int):
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


# --------------------------------------------------------------------------- thread mode
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


# --------------------------------------------------------------------------- process mode
def _run_command(
    project_dir: Path, email: str, roster: Path, extra: Sequence[str] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "syftflwr",
        "run",
        str(project_dir),
        "--as",
        email,
        "--roster",
        str(roster),
        *extra,
    ]


def _terminate(procs: Mapping[str, ProcessLike], grace: float) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, offset: int, reporter: ProgressReporter | None) -> int:
    """Replay complete new lines of ``path`` from ``offset``; return the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    end = chunk.rfind(b"\n") + 1
    if reporter is not None:
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            replay_line(line, reporter)
    return offset + end


def simulate_in_processes(
    project: str | Path | ProjectConfig,
    *,
    datasites: int | Sequence[str] | None = None,
    rounds: int | None = None,
    transport: str | None = None,
    timeout: float | None = None,
    reporter: ProgressReporter | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    workspace: Path | None = None,
    env: Mapping[str, str] | None = None,
    output: Sink | None = None,
) -> SimulationResult:
    """Train the project's Flower app with the aggregator and each datasite in its own
    OS process (``syftflwr run``), as a real deployment would.

    ``transport`` must cross processes (default: configured or auto-detected). Logs of
    every participant land in ``<workspace>/logs/<email>.log``; a failing participant's
    log tail is included in the result's ``error``. ``output`` receives every line the
    participants write, as it is written (:mod:`syftflwr.flower.relay`).
    """
    fed = simulation_project(as_project(project), datasites)
    if fed.root is None:
        raise ConfigError("simulate needs the Flower app's directory", key="project")
    method = start_method(os.environ if env is None else env)
    started = time.monotonic()
    with workspace_dir(workspace) as space:
        child_env = simulation_env(space, env)
        logs = space / "logs"
        logs.mkdir(exist_ok=True)
        # the fork server imports while this process checks the config and makes keys
        server = (
            ForkServer.start(fed.root, child_env, space / "forkserver.log")
            if method != "spawn"
            else None
        )
        if transport:
            child_env["SYFTFLWR_TRANSPORT"] = transport
        try:
            fed, chosen = pin_keys(fed, transport=transport, env=child_env)
        except BaseException:
            if server is not None:
                server.close()
            raise
        child_env["SYFTFLWR_TRANSPORT"] = chosen
        roster = space / ROSTER_FILE
        write_roster(fed, roster)
        progress = space / "progress.jsonl"
        result_file = space / "result.json"
        procs: dict[str, ProcessLike] = {}
        relay = Relay(logs, output)
        child_env["PYTHONUNBUFFERED"] = "1"  # prints reach the relay as they happen
        child_env[PARENT_ENV] = str(os.getpid())  # none outlives this process, even kill -9

        def spawn(email: str, extra: Sequence[str]) -> None:
            nonlocal server
            command = _run_command(fed.root, email, roster, extra)  # type: ignore[arg-type]
            proc: ProcessLike | None = None
            if server is not None:
                proc = _fork(server, method, command[3:], child_env, space, chosen)
                if proc is None:  # said why; the others are spawned too
                    server.close()
                    server = None
            if proc is None:
                with spawn_blocked():  # a stop at any moment of its start-up is handled
                    proc = subprocess.Popen(
                        command,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        env=child_env,
                        cwd=str(space),
                    )
            procs[email] = proc
            role: Role = "aggregator" if email == fed.aggregator else "datasite"
            relay.attach(email, role, proc)

        try:
            total = len(fed.datasites)
            for index, email in enumerate(fed.datasites):
                node = node_config_for(index, total)
                spawn(
                    email, [arg for k, v in node.items() for arg in ("--node-config", f"{k}={v}")]
                )
            agg_args = [
                "--progress-file", str(progress), "--result-file", str(result_file), "--relayed"
            ]  # fmt: skip
            if rounds is not None:
                agg_args += ["--rounds", str(rounds)]
            if timeout is not None:
                agg_args += ["--round-timeout", str(timeout)]
            for key, value in (run_config or {}).items():
                agg_args += ["--run-config", f"{key}={json.dumps(value)}"]
            aggregator = fed.aggregator or ""
            spawn(aggregator, agg_args)
            offset = 0
            agg = procs[aggregator]
            while agg.poll() is None:
                offset = _tail(progress, offset, reporter)
                early = [
                    e for e, p in procs.items() if e != aggregator and p.poll() not in (None, 0)
                ]
                if early:
                    log.error("datasite process(es) exited early: %s", ", ".join(early))
                    break
                with suppress(subprocess.TimeoutExpired):  # back at once when it ends
                    agg.wait(timeout=0.1)
            _tail(progress, offset, reporter)
            # datasites stop on the aggregator's stop message; give them a moment
            deadline = time.monotonic() + 15
            for email, proc in procs.items():
                if email != aggregator:
                    with suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            _terminate(procs, grace=PARENT_GRACE)
            if server is not None:
                server.close()
            relay.close()
        codes = {email: proc.returncode for email, proc in procs.items()}
        result = _read_result(result_file, fed, chosen, time.monotonic() - started)
        problems = [  # read now: the workspace and its logs go when this block ends
            f"{email} exited with {code}:\n{_log_tail(logs / f'{email}.log')}"
            for email, code in codes.items()
            if code not in (0, None)
        ]
        if problems and (result.error is None or not result_file.exists()):
            result.error = "\n\n".join([*([result.error] if result.error else []), *problems])
    result.app_name = fed.app_name
    result.mode = "processes"
    result.exit_codes = codes
    result.workspace = workspace
    return result


def _fork(
    server: ForkServer,
    method: StartMethod,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    transport: str,
) -> ProcessLike | None:
    """A participant forked by ``server``; None (logged) when it cannot fork and the
    method allows spawning instead.

    :raises ConfigError: ``SYFTFLWR_SIMULATE_START=fork`` and the server cannot fork.
    """
    ok, reason = server.ready(timeout=120.0)
    if ok:
        try:
            return server.launch(argv, env=env, cwd=cwd, transport=transport)
        except OSError as exc:
            reason = str(exc)
    if method == "fork":
        raise ConfigError(
            f"the participants cannot be forked from a pre-imported process: {reason}",
            key=START_ENV,
            fix=f"unset {START_ENV} (or set it to spawn) to start each participant anew",
        )
    log.info("starting the participants anew (no fork server: %s)", reason)
    return None


def _log_tail(path: Path, lines: int = 15) -> str:
    """The lines of a participant's log that explain a failure: its errors and warnings
    (with their indented continuation lines), then its last ``lines`` lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    all_lines = text.splitlines()
    tail_start = max(0, len(all_lines) - lines)
    picked: list[str] = []
    keep = False
    for line in all_lines[:tail_start]:
        if line.startswith(("ERROR", "WARNING", "CRITICAL", "error:", "Traceback")):
            keep = True
        elif not line.startswith((" ", "\t")):
            keep = False
        if keep:
            picked.append(line)
    if picked:
        picked.append("...")
    return "\n".join("    " + line for line in [*picked, *all_lines[tail_start:]])


def _read_result(
    path: Path, fed: ProjectConfig, transport: str, duration: float
) -> SimulationResult:
    if not path.exists():
        return SimulationResult(
            transport=transport,
            aggregator=fed.aggregator or "",
            datasites=fed.datasites,
            rounds=[],
            failures=[],
            stop_acks={},
            duration=duration,
            error="the aggregator process ended without a result (see its log)",
        )
    result = results.from_document(json.loads(path.read_text(encoding="utf-8")))
    result.duration = duration  # the simulation's, start to end
    return result


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
