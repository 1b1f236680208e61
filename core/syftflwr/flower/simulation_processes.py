"""``syftflwr simulate`` in processes (the default): the aggregator and every datasite
are separate OS processes (``python -m syftflwr run ...``, forked from one pre-imported
process where that is safe: :mod:`syftflwr.flower.forkserver`), over a transport that
crosses processes (``fsspec-local`` when installed). The aggregator streams progress as
JSON lines that this process replays into the caller's reporter; every line the
participants write goes through :mod:`syftflwr.flower.relay`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from syftflwr.config import ProjectConfig
from syftflwr.errors import ConfigError
from syftflwr.flower import results
from syftflwr.flower.apps import UserConfigValue, node_config_for
from syftflwr.flower.forkserver import START_ENV, ForkServer, StartMethod, start_method
from syftflwr.flower.progress import ProgressReporter, replay_line
from syftflwr.flower.relay import ProcessLike, Relay, Role, Sink
from syftflwr.flower.results import SimulationResult
from syftflwr.flower.simulation_setup import (
    ROSTER_FILE,
    pin_keys,
    simulation_env,
    simulation_project,
    workspace_dir,
    write_roster,
)
from syftflwr.session import as_project
from syftflwr.signals import PARENT_ENV, PARENT_GRACE, spawn_blocked

log = logging.getLogger("syftflwr.flower")


def _run_command(
    project_dir: Path, email: str, roster: Path, extra: Sequence[str] = ()
) -> list[str]:
    return [sys.executable, "-m", "syftflwr", "run", str(project_dir), "--as", email,
            "--roster", str(roster), *extra]  # fmt: skip


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
    document = json.loads(path.read_text(encoding="utf-8"))  # the aggregator's: no mode
    result = results.from_document(document, mode="processes")
    assert isinstance(result, SimulationResult)
    result.duration = duration  # the simulation's, start to end
    return result
