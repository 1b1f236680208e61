"""``syftflwr doctor``: check the configuration and carry a message end to end."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from syftflwr.cli._output import echo_json, printed_warnings
from syftflwr.doctor import Check, run_checks

MARK = {"ok": "[green]✓[/]", "fail": "[red]✗[/]", "skip": "[dim]-[/]", "warn": "[yellow]![/]"}


@click.command()
@click.argument("project", type=click.Path(path_type=Path), default=".")
@click.option(
    "--as",
    "email",
    metavar="EMAIL",
    help="Participant to check (default: SYFTFLWR_EMAIL / settings / the only one that ran here).",
)
@click.option("--transport", help="Check this transport instead of the configured one.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Round-trip limit, s.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(
    project: Path, email: str | None, transport: str | None, timeout: float, as_json: bool
) -> None:
    """Validate PROJECT's config and prove the selected transport carries a message.

    The round trip sends a 1 KiB request from this participant to itself through the
    real storage and waits for the answer.
    """
    checks: list[Check] = []
    console = Console(highlight=False, soft_wrap=True)
    with printed_warnings():
        for check in run_checks(project, email=email, transport=transport, timeout=timeout):
            checks.append(check)
            if not as_json:
                head, _, rest = check.detail.partition("\n")
                console.print(f"{MARK[check.status]} [bold]{check.name}[/]: {escape(head)}")
                if rest:
                    console.print(rest, markup=False)
    if as_json:
        echo_json([c.to_dict() for c in checks])
    if any(c.status == "fail" for c in checks):
        raise SystemExit(1)
