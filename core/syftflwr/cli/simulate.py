"""``syftflwr simulate PROJECT``: the aggregator and every datasite on this machine."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import click

from syftflwr.cli._live import (
    LiveProgress,
    exit_status,
    parse_assignments,
    print_saved,
    print_summary,
)
from syftflwr.cli._output import echo_json, make_console, verbosity
from syftflwr.flower import results
from syftflwr.flower.relay import Role, aggregator_and_problems, printer
from syftflwr.flower.simulation import choose_mode, simulation_project
from syftflwr.flower.simulation import simulate as run_simulation
from syftflwr.logs import adopt_flower_logs
from syftflwr.session import as_project


@click.command()
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option("--datasites", type=int, help="How many datasites (default: the configured ones).")
@click.option("--rounds", type=click.IntRange(min=1), help="Override num-server-rounds.")
@click.option("--transport", help="Transport (default: configured, else auto-detected).")
@click.option(
    "--threads",
    is_flag=True,
    help="All participants in this process (memory transport by default).",
)
@click.option(
    "--run-config",
    "run_config",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a [tool.flwr.app.config] value (repeatable).",
)
@click.option("--round-timeout", type=float, help="Seconds a round waits for replies.")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even if some replies failed.")
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    help="Keep state, mailboxes and logs here (default: a temporary directory).",
)
@click.option(
    "--json",
    "json_out",
    is_flag=True,
    help="Print the result as JSON on stdout (the result file's document); the summary "
    "goes to stderr.",
)
def simulate(
    project: Path,
    datasites: int | None,
    rounds: int | None,
    transport: str | None,
    threads: bool,
    run_config: tuple[str, ...],
    round_timeout: float | None,
    allow_failures: bool,
    workspace: Path | None,
    json_out: bool,
) -> None:
    """Train PROJECT with its aggregator and datasites on this machine.

    Each participant is a separate OS process by default (over fsspec-local when it is
    installed); --threads runs everybody in this process. Datasite K gets Flower's node
    config partition-id=K, num-partitions=N. The result is kept in your state directory
    (runs/<run id>/result.json of the aggregator), not in the workspace.
    """
    console = make_console(stderr=json_out)
    fed = simulation_project(as_project(project), datasites)
    results_dir = results.aggregator_state_dir(fed)  # a config problem shows before any work
    mode, fallback = choose_mode(fed, "threads" if threads else None, transport)
    if mode == "threads":  # Flower runs here (in processes, this one never imports it)
        adopt_flower_logs(verbosity())
    live = LiveProgress(console, fed.datasites) if console.is_terminal else None
    roles: dict[str, Role] = {fed.aggregator or "": "aggregator"}
    roles.update(dict.fromkeys(fed.datasites, "datasite"))
    kwargs = {
        "output": printer(make_console(stderr=True), roles, aggregator_and_problems),
        "datasites": datasites,
        "rounds": rounds,
        "timeout": round_timeout,
        "reporter": live,
        "run_config": parse_assignments(run_config, "--run-config"),
        "workspace": workspace,
    }
    with live or nullcontext():
        result = run_simulation(fed, mode=mode, transport=transport, **kwargs)
    saved = results.save(result, results.result_path(results_dir, result.run_id))
    if json_out:
        echo_json(results.to_document(result))
    how = "threads" if result.mode == "threads" else "separate processes"
    print_summary(console, result, title=f"{result.app_name}: simulation ({how})")
    console.print(  # real datasites run only apps they approved (docs/jobs.md)
        "the simulated datasites approved this folder's app automatically (real ones "
        "review it: `syftflwr submit`, `syftflwr jobs`, `syftflwr serve`)",
        highlight=False,
    )
    if fallback:  # nothing pinned, nothing that crosses processes: say what ran instead
        console.print(f"in threads over memory: {fallback}", highlight=False, soft_wrap=True)
    if result.workspace:
        console.print(f"workspace kept at {result.workspace} (logs in {result.workspace / 'logs'})")
    print_saved(console, saved)
    sys.exit(exit_status(result, allow_failures, console))
