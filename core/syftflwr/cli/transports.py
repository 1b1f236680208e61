"""``syftflwr transports``: what is installed, whether it works, what detection would pick."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from syftflwr.cli._output import echo_json, make_console, printed_warnings, report_error
from syftflwr.config import detection_context_for
from syftflwr.registry import (
    FIRST_PARTY_EXTRAS,
    PluginWarning,
    TransportStatus,
    get_registry,
    install_hint,
)

if TYPE_CHECKING:
    from rich.console import Console

STATUS_STYLE = {
    "ok": "green",
    "broken": "red",
    "incompatible": "red",
    "duplicate": "red",
    "disabled": "dim",
}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.0f} {unit}"
        n //= 1024
    return f"{n} B"  # pragma: no cover - loop always returns


def capability_summary(caps: dict[str, Any] | None) -> str:
    """Short tags for the table: how arrivals are learnt, encryption, limits."""
    if not caps:
        return "-"
    tags = ["notifies" if caps["notifies_arrivals"] else f"polls {caps['poll_interval']:g}s"]
    if caps.get("native_encryption"):
        tags.append("e2e-encrypted")
    if caps.get("in_process_only"):
        tags.append("in-process only")
    if caps.get("max_object_size"):
        tags.append(f"objects <= {_size(int(caps['max_object_size']))}")
    if caps.get("shares_objects"):
        tags.append("shares objects")
    if caps.get("resumes_uploads"):
        tags.append("resumes uploads")
    profiles = tuple(caps.get("profiles") or ())
    if profiles != ("native",):
        tags.append("profiles: " + ", ".join(profiles))
    return ", ".join(tags)


def verdict(row: TransportStatus) -> str:
    if row.status != "ok":
        return (row.error or row.reason or row.status).splitlines()[0]
    if row.usable is None:
        return "not asked"
    head = "usable" if row.usable else "not usable"
    if row.usable and row.preference is not None:
        head += f" (preference {row.preference})"
    if row.usable and not row.eligible and row.in_process_only:
        head += " [in-process only: not picked]"
    return f"{head}: {row.reason}" if row.reason else head


TABLE_MIN_WIDTH = 120
"""Below this many columns a table of five columns folds into unreadable slivers: each
transport is then printed as a heading line with its details beneath."""


def render_table(rows: list[TransportStatus], console: Console | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console or make_console()
    say = functools.partial(console.print, highlight=False)
    if console.width >= TABLE_MIN_WIDTH:
        table = Table(title="syftflwr transports", title_justify="left")
        for column in ("", "name", "distribution", "status", "capabilities", "detection"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                "*" if row.selected else "",
                escape(row.name),
                escape(f"{row.distribution} {row.version}"),
                _status(row),
                escape(capability_summary(row.capabilities)),
                escape(verdict(row)),
            )
        say(table)
    else:
        say("syftflwr transports")
        for row in rows:
            mark = "*" if row.selected else " "
            say(
                f"{mark} [bold]{escape(row.name)}[/]  {_status(row)}  "
                f"{escape(row.distribution)} {escape(row.version)}"
            )
            details = Table.grid(padding=(0, 1))
            details.add_column(width=3)
            details.add_column(style="dim", no_wrap=True)
            details.add_column(overflow="fold")
            details.add_row("", "capabilities", escape(capability_summary(row.capabilities)))
            details.add_row("", "detection", escape(verdict(row)))
            say(details)
    chosen = [r.name for r in rows if r.selected]
    if chosen:
        say(f"* auto-detection picks [bold]{escape(chosen[0])}[/] (when none is configured)")
        return
    say(
        "auto-detection finds nothing usable here: name a transport in \\[tool.syftflwr] "
        "or SYFTFLWR_TRANSPORT, or set one up (see docs/transports.md)"
    )
    installed = {r.name for r in rows}
    for name in sorted(set(FIRST_PARTY_EXTRAS) - installed):
        say(f"  not installed: {escape(name)}: {escape(install_hint(name))}")


def _status(row: TransportStatus) -> str:
    style = STATUS_STYLE.get(row.status, "")
    return f"[{style}]{row.status}[/]" if style else row.status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--project",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Flower app (folder or pyproject.toml) whose config detection should use.",
)
@click.option(
    "--in-process",
    is_flag=True,
    help="Let in-process-only transports (memory) be picked, as `simulate --threads` does.",
)
@click.option(
    "--check",
    "check_name",
    metavar="NAME",
    default=None,
    help="Check one transport for plugin authors: entry point, import, hooks, API version, "
    "info, detection, optional capabilities, light imports. Exit code 2 if default "
    "settings cannot run with it, 1 if another check fails.",
)
@click.option(
    "--heavy",
    "heavy",
    metavar="MODULE",
    multiple=True,
    help="With --check: a package listing/detection must not import (repeatable).",
)
def transports(
    as_json: bool,
    project: Path | None,
    in_process: bool,
    check_name: str | None,
    heavy: tuple[str, ...],
) -> None:
    """List installed transports with their status, capabilities and detection verdict.

    The row marked * is what auto-detection picks when no transport is configured.
    A plugin that fails to load is shown as broken (with a warning); the others work.
    With --check NAME, check that one transport instead (docs/plugins.md).
    """
    if check_name is not None:
        from syftflwr.cli.check import check_transport, render

        report = check_transport(
            check_name, registry=get_registry(), context_for=detection_context_for(project),
            heavy=heavy,
        )  # fmt: skip
        if as_json:
            echo_json(report.to_dict())
        else:
            render(report)
        raise SystemExit(report.exit_code)
    if heavy:
        raise click.UsageError("--heavy only applies to --check NAME")
    with printed_warnings(PluginWarning):
        rows = get_registry().statuses(detection_context_for(project), allow_in_process=in_process)
        if as_json:
            echo_json([row.to_dict() for row in rows])
        else:
            render_table(rows)
    _check_pin(project)


def _check_pin(project: Path | None) -> None:
    """A transport pinned by the project or SYFTFLWR_TRANSPORT that cannot be used here
    is an error (exit 2), as it is for every command that would use it."""
    from syftflwr.config import selected_transport_name
    from syftflwr.errors import PluginError, SyftflwrError
    from syftflwr.session import as_project, select_transport

    loaded = as_project(project) if project is not None else None
    name, source = selected_transport_name(loaded)
    if name is None:
        return
    try:
        select_transport(loaded, allow_in_process=True)
    except SyftflwrError as exc:
        problem = PluginError(f"{source} pins the transport '{name}', which cannot be used "
                              f"here: {exc}")  # fmt: skip
        raise SystemExit(report_error(problem)) from None
