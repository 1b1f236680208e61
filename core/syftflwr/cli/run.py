"""``syftflwr run PROJECT --as EMAIL``: run the aggregator or a datasite."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape

from syftflwr.cli._live import (
    LiveProgress,
    exit_status,
    parse_assignments,
    print_saved,
    print_summary,
)
from syftflwr.cli._output import echo_json, make_console, verbosity
from syftflwr.flower import results
from syftflwr.flower.progress import FanOut, JsonlReporter, ProgressReporter
from syftflwr.logs import adopt_flower_logs
from syftflwr.session import as_project, connect
from syftflwr.signals import PARENT_ENV, STOP, exit_code, signal_name, watch_parent

if TYPE_CHECKING:
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.results import RunResult
    from syftflwr.flower.runner import DatasiteRunner

# Flower is imported only once a participant is connected and still meant to run: a
# datasite stopped by a signal while starting exits without paying for it.

log = logging.getLogger("syftflwr")


@click.command()
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option(
    "--as", "email", metavar="EMAIL", help="Who you are (default: SYFTFLWR_EMAIL / settings)."
)
@click.option("--transport", help="Transport name (overrides env and the project's config).")
@click.option(
    "--rounds", type=click.IntRange(min=1), help="Override num-server-rounds (aggregator)."
)
@click.option(
    "--run-config",
    "run_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a [tool.flwr.app.config] value (repeatable).",
)
@click.option(
    "--node-config",
    "node_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Flower node config of a datasite (default: partition-id/num-partitions "
    "from its position in the project's datasites).",
)
@click.option("--round-timeout", type=float, help="Seconds a round waits for replies.")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even if some replies failed.")
@click.option(
    "--resume",
    is_flag=True,
    help="Aggregator: continue this aggregator's stopped run (killed or failed) from its "
    "journal instead of starting over (docs/resume.md).",
)
@click.option("--roster", type=click.Path(path_type=Path, exists=True), hidden=True)
@click.option("--progress-file", type=click.Path(path_type=Path), hidden=True)
@click.option("--result-file", type=click.Path(path_type=Path), hidden=True)
@click.option(
    "--json",
    "json_out",
    is_flag=True,
    help="Print the result as JSON on stdout (aggregator: the result file's document; "
    "datasite: its counters); the summary still goes to stderr.",
)
@click.option("--relayed", is_flag=True, hidden=True)  # simulate shows the output
def run(**options: Any) -> None:
    """Run PROJECT's ServerApp (as the aggregator) or its ClientApp (as a datasite).

    Your role comes from the project's [tool.syftflwr]. A datasite serves until the
    aggregator sends its stop message; Ctrl-C (or SIGTERM) stops either cleanly: a datasite
    exits 0, an aggregator prints its summary and exits 130 (143).
    """
    with STOP.handling():  # the options are typed once, by _run's signature
        code = _run(**options)
    sys.exit(code)


def _run(
    project: Path,
    email: str | None,
    transport: str | None,
    rounds: int | None,
    run_config: tuple[str, ...],
    node_config: tuple[str, ...],
    round_timeout: float | None,
    allow_failures: bool,
    resume: bool,
    roster: Path | None,
    progress_file: Path | None,
    result_file: Path | None,
    json_out: bool,
    relayed: bool,
) -> int:
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit():  # started by simulate: do not outlive it
        watch_parent(int(parent))
    loaded = as_project(project)
    if roster is not None:  # simulate's federation (may differ from the file)
        from syftflwr.flower.simulation import apply_roster

        loaded = apply_roster(loaded, roster)
    participant = connect(loaded, email=email, transport=transport)
    console = make_console(stderr=True)
    with participant:
        app_hash: str | None = None
        if participant.role == "aggregator" and not relayed:  # simulate submits nothing
            from syftflwr.jobs.running import submitted_hash

            app_hash = submitted_hash(participant.project, participant.email)
        if not relayed:  # under simulate, which shows its own
            how = ""
            if participant.role == "aggregator":
                from syftflwr.flower.launch import broadcast_mode

                how = f"; {escape(broadcast_mode(participant)[1])}"
                if app_hash is not None:
                    how += f"; the submitted app (FAB {app_hash[:16]})"
            console.print(
                f"{participant.email} ({participant.role}) over "
                f"[bold]{participant.transport.name}[/] "
                f"(selected by {escape(participant.selected_by)}){how}",
                highlight=False,
            )
        if participant.role == "datasite":
            if resume:
                raise click.UsageError(
                    "--resume is for the aggregator: a restarted datasite resumes by itself "
                    "(its journal answers re-delivered requests once)"
                )
            code = _serve(
                participant,
                parse_assignments(node_config, "--node-config") or None,
                parse_assignments(run_config, "--run-config"),
                json_out=json_out,
            )
        else:
            code = _aggregate(
                participant,
                rounds=rounds,
                run_config=parse_assignments(run_config, "--run-config"),
                round_timeout=round_timeout,
                allow_failures=allow_failures,
                resume=resume,
                progress_file=progress_file,
                result_file=result_file,
                console=console,
                json_out=json_out,
                relayed=relayed,
                app_hash=app_hash,
            )
    return code


def _serve(
    participant: Any,
    node_config: dict[str, Any] | None,
    run_config: dict[str, Any],
    *,
    json_out: bool = False,
) -> int:
    if STOP.signum is not None:  # stopped while starting: nothing to build or serve
        summary = "0 messages handled, 0 errors, 0 malformed, 0 refused"
        counters: dict[str, Any] = {"handled": 0, "errors": 0, "malformed": 0, "refused": {}}
        stopped_by: str | None = None
    else:
        from syftflwr.flower.launch import run_datasite

        adopt_flower_logs(verbosity())  # imports Flower: each of its lines once, ours

        def started(runner: DatasiteRunner) -> None:
            STOP.on_stop(lambda _signum: runner.stop())  # at once if one came meanwhile

        stats = run_datasite(
            participant, node_config=node_config, run_config=run_config, on_start=started
        )
        summary, stopped_by = stats.describe(), stats.stopped_by
        counters = {"handled": stats.handled, "errors": stats.errors,
                    "malformed": stats.malformed, "refused": stats.refused}  # fmt: skip
    click.echo(
        f"datasite {participant.email} stopped ({stopped_by or 'signal'}): {summary}", err=True
    )
    if json_out:
        echo_json({"datasite": participant.email, **counters, "stopped_by": stopped_by})
    return 0


def _aggregate(
    participant: Any,
    *,
    rounds: int | None,
    run_config: dict[str, Any],
    round_timeout: float | None,
    allow_failures: bool,
    resume: bool,
    progress_file: Path | None,
    result_file: Path | None,
    console: Console,
    json_out: bool = False,
    relayed: bool = False,
    app_hash: str | None = None,
) -> int:
    if STOP.signum is not None:  # stopped while starting: nothing was sent
        console.print(f"stopped by {signal_name(STOP.signum)} before the run started")
        return exit_code(STOP.signum)
    from syftflwr.flower.launch import run_aggregator

    adopt_flower_logs(verbosity())  # imports Flower: each of its lines once, ours

    def interruptible(grid: TransportGrid) -> None:
        STOP.on_stop(lambda signum: grid.interrupt(f"stopped by {signal_name(signum)}"))

    reporters: list[ProgressReporter] = []
    jsonl = JsonlReporter(progress_file) if progress_file else None
    if jsonl:
        reporters.append(jsonl)
    live = LiveProgress(console, participant.project.datasites) if console.is_terminal else None
    if live:
        reporters.append(live)
    try:
        if live:
            live.__enter__()
        result = run_aggregator(
            participant,
            rounds=rounds,
            run_config=run_config,
            reporter=FanOut(reporters),
            round_timeout=round_timeout,
            resume=resume,
            on_start=interruptible,
            app_hash=app_hash,
        )
    finally:
        if live:
            live.__exit__(None, None, None)
        if jsonl:
            jsonl.close()
    if result_file:
        results.save(result, result_file)
    if relayed:  # simulate prints the summary and judges failed replies itself
        if result.interrupted is not None:
            return exit_code(STOP.signum if STOP.signum is not None else 2)
        return exit_status(result, allow_failures=True, console=console)
    saved = results.save(result, results.result_path(participant.context.state_dir, result.run_id))
    if json_out:
        echo_json(results.to_document(result))
    print_summary(console, result, title=f"{participant.project.app_name}: run summary")
    if result.resumed:
        diverged = (
            f"; diverged in round {result.diverged_at}, sent anew from there ({result.divergence})"
            if result.diverged_at is not None
            else ""
        )
        console.print(
            f"resumed run {result.run_id}: {result.replayed} instructions answered from the "
            f"journal, {result.reattached} re-attached to replies in flight{diverged}",
            highlight=False,
            soft_wrap=True,
        )
    if result.checkpoints:
        console.print(f"checkpoints: {escape(result.checkpoints)}", highlight=False, soft_wrap=True)
    print_saved(console, saved)
    if result.interrupted is not None:
        return _interrupted(console, result)
    return exit_status(result, allow_failures, console)


def _interrupted(console: Console, result: RunResult) -> int:
    """The end of a run stopped by a signal: what is missing, how to go on; 128 + signal."""
    rounds = [i.round for i in result.pending if i.round is not None]
    where = f" in round {max(rounds)}" if rounds else ""
    console.print(f"[yellow]run {result.run_id} {result.interrupted}{where}[/]", highlight=False)
    for info in result.pending:
        console.print(
            f"  no reply yet from {info.datasite} ({info.message_type}, round {info.round})",
            highlight=False,
        )
    console.print(
        "the datasites keep serving; to continue this run, run the same command again with "
        "--resume (replies already received are not asked for again)",
        highlight=False,
        soft_wrap=True,
    )
    return exit_code(STOP.signum if STOP.signum is not None else 2)
