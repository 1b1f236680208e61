"""``syftflwr submit APP``: build the app's FAB, sign it, and send it to every datasite
as a job to review (docs/jobs.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from syftflwr.cli._output import echo_json, make_console, print_table
from syftflwr.jobs.submit import Submitted, submit


@click.command("submit")
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option(
    "--as", "email", metavar="EMAIL", help="Who you are (default: the project's aggregator)."
)
@click.option("--transport", help="Transport name (overrides env and config).")
@click.option(
    "--rollback",
    is_flag=True,
    help="This is an older version than one a datasite approved, on purpose.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def submit_command(
    ctx: click.Context,
    project: Path,
    email: str | None,
    transport: str | None,
    rollback: bool,
    as_json: bool,
) -> None:
    """Send the Flower app in PROJECT to its datasites for review.

    The app is built into a FAB (Flower App Bundle) with the installed flwr, signed with
    your signing key, and sent to each datasite encrypted, as a job it keeps for 30 days.
    Nothing runs at a datasite until its data owner approves the job
    (`syftflwr jobs approve`). `syftflwr jobs` shows what each datasite decided.

    Exits 1 when no datasite could be sent the job.
    """
    done = submit(project, email=email, rollback=rollback, transport=transport)
    if as_json:
        echo_json(_as_json(done))
    else:
        _print(done)
    if not done.any_sent:
        click.secho("error: ", fg="red", bold=True, err=True, nl=False)
        click.echo("no datasite could be sent the job (see above)", err=True)
        ctx.exit(1)


def _as_json(done: Submitted) -> dict[str, Any]:
    built = done.built
    return {
        "aggregator": done.aggregator,
        "app": built.name,
        "version": built.version,
        "fab_hash": built.fab_hash,
        "size": len(built.data),
        "flwr_version": built.flwr_version,
        "not_shipped": list(built.not_shipped),
        "signer": done.signer,
        "rollback": done.rollback,
        "datasites": [
            {
                "datasite": s.datasite,
                "job": s.job_id if s.delivery.sent else None,
                "sent": s.delivery.sent,
                "problem": s.delivery.problem,
            }
            for s in done.sent
        ],
    }


def _print(done: Submitted) -> None:
    built = done.built
    console = make_console()
    rollback = " as a rollback" if done.rollback else ""
    console.print(
        f"built {built.name} {built.version} with flwr {built.flwr_version}: FAB "
        f"{built.fab_hash} ({len(built.data):,} bytes){rollback}",
        highlight=False,
    )
    if built.not_shipped:
        console.print(
            f"not shipped (flwr leaves them out of the FAB): {', '.join(built.not_shipped)}",
            highlight=False,
        )
    console.print(f"signed by {done.aggregator}, signing key {done.signer}", highlight=False)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("datasite", "job", "status"):
        table.add_column(column)
    for s in done.sent:
        if s.delivery.sent:
            table.add_row(s.datasite, s.job_id, "sent (not yet seen)")
        else:
            table.add_row(s.datasite, "-", f"not yet seen: {s.delivery.problem}")
    print_table(console, table)
