"""Run one participant of a Flower app: the aggregator's ServerApp on a
:class:`TransportGrid`, or a datasite's ClientApp in a :class:`DatasiteRunner`.

``syftflwr run``, both simulation modes and the Python API all go through these two
functions, with a :class:`~syftflwr.session.Participant` from
:func:`syftflwr.session.connect`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import secrets
import shlex
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from flwr.common.constant import SUPERLINK_NODE_ID

from syftflwr.errors import ConfigError
from syftflwr.flower.apps import (
    FlowerApp,
    UserConfigValue,
    fused_run_config,
    load_client_app,
    load_server_app,
    node_config_for,
    read_app,
)
from syftflwr.flower.checkpoint import RoundCheckpoints, checkpoint_dir
from syftflwr.flower.compat import new_context
from syftflwr.flower.grid import RunInterrupted, TransportGrid, new_run_id
from syftflwr.flower.node_ids import node_ids_for
from syftflwr.flower.progress import FanOut, MessageInfo, ProgressReporter, listening
from syftflwr.flower.results import RunResult
from syftflwr.flower.resume import RunTracker
from syftflwr.flower.run_journal import RunJournal, RunRecord, RunStatus, pid_alive
from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, RunnerStats
from syftflwr.session import Participant

log = logging.getLogger("syftflwr.flower")

ROUNDS_KEY = "num-server-rounds"


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


def run_config_hash(participant: Participant, config: Mapping[str, UserConfigValue]) -> str:
    """What a resumed run must share with its stopped one: the same federation and run
    config (a changed config would replay replies to other instructions)."""
    project = participant.project
    what = {
        "app": participant.context.app_name,
        "aggregator": participant.email,
        "datasites": list(project.datasites),
        "run_config": {k: config[k] for k in sorted(config)},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def seed_generators(seed: int) -> None:
    """Seed Python's and numpy's global generators: a resumed ServerApp must send the
    same instructions as its stopped run (e.g. FedAvg samples nodes with ``random``)."""
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with flwr
        return
    np.random.seed(seed % 2**32)


def open_run(
    participant: Participant, config: Mapping[str, UserConfigValue], *, resume: bool
) -> tuple[RunJournal, RunTracker]:
    """The run journal of this aggregator (in its state dir) and a tracker of a new run,
    or of the stopped run it resumes; seeds the generators with the run's seed.

    :raises ConfigError: ``resume`` with no stopped run, a run still running, or a
        changed config.
    """
    state_dir = participant.context.state_dir
    if state_dir is None:  # pragma: no cover - build_context always sets it
        raise ConfigError("the aggregator has no state directory", key="state_dir")
    journal = RunJournal.in_state_dir(state_dir)
    try:
        digest = run_config_hash(participant, config)
        latest = journal.latest()
        if resume:
            record = _resumable(journal, latest, digest)
            record = journal.reopen(record.run_id)
            log.info("resuming %s (resume #%d)", record.describe(), record.resumes)
        else:
            if latest is not None and latest.resumable and not pid_alive(latest.pid):
                log.warning(
                    "%s and is not resumed: starting a new run (to resume it instead, "
                    "stop this one and run again with --resume)",
                    latest.describe(),
                )
                journal.end(latest.run_id, RunStatus.ABANDONED)
            record = journal.start(new_run_id(), seed=secrets.randbits(63), config_hash=digest)
    except BaseException:
        journal.close()
        raise
    checkpoints = RoundCheckpoints(
        checkpoint_dir(state_dir, record.run_id),
        run_id=record.run_id,
        summary=lambda r: {},
        on_written=lambda r: journal.set_checkpoint(record.run_id, r),
    )
    tracker = RunTracker(journal, record, replay=resume, checkpoints=checkpoints)
    seed_generators(record.seed)
    return journal, tracker


def _resumable(journal: RunJournal, latest: RunRecord | None, digest: str) -> RunRecord:
    where = journal.path
    if latest is None:
        raise ConfigError(
            f"there is no run to resume: the run journal {where} is empty",
            key="--resume",
            fix="start the run without --resume (check SYFTFLWR_STATE_DIR / --as if you "
            "expected one: runs are kept per aggregator state directory)",
        )
    if not latest.resumable:
        raise ConfigError(
            f"there is no stopped run to resume: the latest run ({latest.run_id}) is "
            f"{latest.status}",
            key="--resume",
            fix="start a new run without --resume",
        )
    if latest.status is RunStatus.RUNNING and pid_alive(latest.pid):
        raise ConfigError(
            f"run {latest.run_id} is still running (process {latest.pid})",
            key="--resume",
            fix=f"stop process {latest.pid} first, or wait for it to finish",
        )
    unordered = journal.unordered_replies(latest.run_id)
    if unordered:
        raise ConfigError(
            f"cannot resume {latest.describe()}: it was journaled by an older syftflwr that "
            f"did not record the order its {unordered} replies reached the ServerApp, and "
            "replaying them in another order would aggregate them into another model (and "
            "make the datasites train again)",
            key="--resume",
            fix="finish it with the syftflwr version that started it, or start a new run "
            "without --resume",
        )
    if latest.config_hash != digest:
        raise ConfigError(
            f"cannot resume {latest.describe()}: the project's federation or run config "
            "changed since it started, so its journaled replies would answer other "
            "instructions",
            key="--resume",
            fix="restore the config (and --rounds/--run-config values) the run started "
            "with, or start a new run without --resume",
        )
    return latest


def run_aggregator(
    participant: Participant,
    *,
    rounds: int | None = None,
    run_config: Mapping[str, UserConfigValue] | None = None,
    reporter: ProgressReporter | None = None,
    round_timeout: float | None = None,
    stop_datasites: bool = True,
    resume: bool = False,
    on_start: Callable[[TransportGrid], None] | None = None,
    app_hash: str | None = None,
) -> RunResult:
    """Run the project's ServerApp against its datasites; never raises for app errors
    (they are in ``RunResult.error``), so callers can always report what happened.

    Every run is journaled in the aggregator's state dir with per-round checkpoints
    (docs/resume.md).

    :param round_timeout: longest wait for one round's replies (default: the project's
        ``round_timeout``); a datasite that has not answered is reported and skipped.
    :param stop_datasites: send the stop message to every datasite at the end.
    :param resume: continue the stopped run of this aggregator instead of starting one.
    :param on_start: called with the Grid before the ServerApp starts (e.g. to
        :meth:`~TransportGrid.interrupt` it on a signal: the run then ends at once,
        resumable, its datasites still serving; ``RunResult.interrupted`` says why).
    :param app_hash: the FAB hash of the submitted app this run is, named in every
        request (``syftflwr.jobs.running.submitted_hash``; None: a local app).
    :raises ConfigError: ``resume`` with nothing (matching) to resume.
    """
    started = time.monotonic()
    project = participant.project
    app = app_of(participant)
    config = run_config_for(app, rounds=rounds, run_config=run_config)
    server_app = load_server_app(app)
    max_wait = round_timeout if round_timeout is not None else project.round_timeout
    if participant.keyring is not None:  # a missing key fails one send, not one round each
        participant.keyring.key_wait = min(participant.keyring.key_wait, max_wait)
    journal, tracker = open_run(participant, config, resume=resume)
    threshold, broadcast = broadcast_mode(participant)
    stops_sent = tracker.run.stops_sent  # by the stopped run, after its ServerApp finished
    grid = TransportGrid(
        participant.rpc(),
        email=participant.email,
        app_name=participant.context.app_name,
        datasites=project.datasites,
        clock_skew=participant.context.clock_skew,
        max_wait=max_wait,
        reporter=reporter,
        tracker=tracker,
        profile=participant.context.profile,
        transport=participant.transport.name,
        datasite_command=datasite_command(participant),
        blob_threshold=threshold,
        app_hash=app_hash,
    )
    if tracker.checkpoints is not None:
        tracker.checkpoints.summary = lambda r: _round_summary(grid, r)
    if not resume:
        grid.remove_leftovers()
    log.info(
        "aggregator %s: %d datasites over %s (run %d); %s",
        participant.email,
        len(project.datasites),
        participant.transport.name,
        grid.run_id,
        broadcast,
    )
    error: str | None = None
    acks: dict[str, bool] = {}
    status = RunStatus.FAILED
    pending: list[MessageInfo] = []
    if on_start is not None:
        on_start(grid)
    try:
        run_server_app(server_app, grid, run_config=config, reporter=reporter)
        status = RunStatus.FINISHED
    except RunInterrupted:
        status = RunStatus.STOPPED
        pending = grid.pending()
    except Exception:
        if grid.interrupted is None:
            error = traceback.format_exc()
            log.error("the ServerApp raised:\n%s", error)
        else:  # it raised because the Grid was interrupted (e.g. a legacy-API worker)
            status = RunStatus.STOPPED
            pending = grid.pending()
    finally:
        try:
            if status is RunStatus.STOPPED:
                pass  # the datasites keep serving: the run is to be resumed
            elif stop_datasites and stops_sent and status is RunStatus.FINISHED:
                log.info("the stopped run had already sent its stop messages")
            elif stop_datasites:
                acks = grid.stop_datasites(timeout=min(10.0, grid.max_wait or 10.0))
            grid.close(forget=status is not RunStatus.STOPPED)
        finally:
            tracker.end(status)
            journal.close()
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
        run_id=grid.run_id,
        resumed=resume,
        replayed=tracker.replayed,
        reattached=tracker.reattached,
        diverged_at=tracker.diverged_at,
        divergence=tracker.divergence,
        checkpoints=str(tracker.checkpoints.folder) if tracker.checkpoints else None,
        encryption=participant.encryption,
        interrupted=grid.interrupted if status is RunStatus.STOPPED else None,
        pending=pending,
        app_name=participant.project.app_name,
        broadcast=_broadcast_done(grid, threshold, broadcast),
    )


def _broadcast_done(grid: TransportGrid, threshold: int | None, intended: str) -> str:
    """What the summary says happened: blobs may be on yet none stored (every model
    below ``blob_threshold``), which the intent alone would misreport."""
    if threshold is None or grid.blobs is None:
        return intended
    if grid.blobs.stored:
        return BROADCAST_SHARED
    return f"model inline: no ArrayRecord reached blob_threshold ({_bytes(threshold)})"


BROADCAST_SHARED = "model sent once per phase (shared blob)"


def broadcast_mode(participant: Participant) -> tuple[int | None, str]:
    """Decided once per run: the Grid's ``blob_threshold`` (None: no shared blobs) and
    the phrase the start banner and the run summary show. Blobs need the effective
    capabilities to declare ``shares_objects`` and the native profile (syft-flwr 0.5
    participants read one file per recipient)."""
    name = participant.transport.name
    if participant.context.profile != "native":
        return None, (f"one copy per datasite: the {participant.context.profile} profile "
                      "does not share objects")  # fmt: skip
    if not participant.capabilities.shares_objects:
        return None, f"one copy per datasite: {name} cannot share objects"
    threshold = participant.project.blob_threshold
    if threshold == 0:
        return threshold, BROADCAST_SHARED
    return threshold, f"models of {_bytes(threshold)} or more sent once per phase (shared blob)"


def _bytes(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size:,} bytes"


def datasite_command(participant: Participant) -> str:
    """How a datasite of this project starts (``{email}`` for its email), for hints."""
    root = participant.project.root
    shown = "PROJECT"
    if root is not None:
        relative = os.path.relpath(root)
        shown = relative if not relative.startswith("..") else str(root)
    return f"syftflwr run {shlex.quote(shown)} --as {{email}}"


def _round_summary(grid: TransportGrid, server_round: int) -> dict[str, Any]:
    """A round's checkpoint metrics: the ServerApp's centralised metrics and the replies."""
    for info in grid.report.rounds:
        if info.round == server_round:
            return {
                "centralised": dict(info.metrics),
                "replies": info.replies_by_type(),
                "failed_datasites": info.failed_datasites,
            }
    return {}


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
        node_id=node_ids_for([email], participant.context.profile)[email],
        node_config=node_config,
        run_config=run_config_for(app, run_config=run_config),
        scoped_stops=participant.context.profile == "native",
        clock_skew=participant.context.clock_skew,
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
