"""``syftflwr bootstrap``: write the shared ``[tool.syftflwr]`` of a Flower app.

The aggregator runs it once and shares the project; pinning the transport here is what
keeps participants from silently auto-detecting different ones.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import click

from syftflwr.cli._output import report_error, verbosity, warn_line
from syftflwr.config import PROFILES, ProjectConfig, load_project, write_project_config
from syftflwr.config._sources import COMMAND_LINE
from syftflwr.config.project import find_pyproject
from syftflwr.errors import ConfigError, SyftflwrError


def check_transport(name: str) -> tuple[str, bool] | None:
    """Load ``name`` from the registry so a typo or a missing plugin fails now, not on
    every participant's machine later. Returns ``(distribution version, in-process
    only)``, or None when this core has no registry to ask.

    :raises PluginError: unknown (with a suggestion), not installed (with the install
        hint), broken or disabled transport.
    """
    if importlib.util.find_spec("syftflwr.registry") is None:
        return None
    from syftflwr.registry import get_registry

    transport = get_registry().load(name)
    entry = transport.entry
    return f"{entry.distribution} {entry.version}", transport.capabilities.in_process_only


_INDEXED = re.compile(r"^tool\.syftflwr\.datasites\[(\d+)\]$")


def as_flag_error(exc: ConfigError) -> ConfigError:
    """Name the flag the user typed instead of the TOML key it would have become
    (errors about the file itself, which carry a source, are kept as they are)."""
    if exc.source is not None or not exc.key:
        return exc
    match = _INDEXED.match(exc.key)
    if match:
        flag = f"--datasite #{int(match.group(1)) + 1}"
    elif exc.key == "tool.syftflwr.datasites":
        flag = "--datasite"
    else:
        flag = "--" + exc.key.removeprefix("tool.syftflwr.").replace("_", "-")
    return ConfigError(exc.problem, source=COMMAND_LINE, key=flag, fix=exc.fix)


def _number_or_text(value: str | None) -> int | float | str | None:
    """``"600"`` is written as ``600``, ``"10m"`` stays a string."""
    if value is None:
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _summary(project: ProjectConfig, transport_note: str | None) -> list[str]:
    pinned = (
        f"{project.transport} (pinned{'; ' + transport_note if transport_note else ''})"
        if project.transport
        else "(not pinned: each participant auto-detects; pass --transport to pin one)"
    )
    rows = [
        ("app_name", project.app_name),
        ("aggregator", project.aggregator or ""),
        ("datasites", ", ".join(project.datasites)),
        ("transport", pinned),
    ]
    for key in (
        "profile",
        "encryption",
        "max_message_size",
        "clock_skew",
        "round_timeout",
        "message_ttl",
    ):
        if key in project.sources:
            value = getattr(project, key)
            text = f"{value:g} s" if isinstance(value, float) else str(value).lower()
            rows.append((key, f"{value} bytes" if key == "max_message_size" else text))
    width = max(len(k) for k, _ in rows)
    return [f"  {key:<{width}}  {value}" for key, value in rows]


@click.command(
    "bootstrap",
    epilog="Example: syftflwr bootstrap ./quickstart --aggregator ds@uni.org "
    "--datasite a@hospital-a.org --datasite b@hospital-b.org --transport fsspec-local",
)
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--aggregator", required=True, metavar="EMAIL", help="The aggregator's email.")
@click.option(
    "--datasite",
    "datasites",
    multiple=True,
    required=True,
    metavar="EMAIL",
    help="A datasite's email; repeat once per datasite (replaces the configured list).",
)
@click.option(
    "--transport",
    metavar="NAME",
    help="Pin this transport for every participant (checked against the installed ones).",
)
@click.option(
    "--app-name",
    metavar="NAME",
    help="App name used in mailbox paths (default: kept, or derived from [project].name).",
)
@click.option("--profile", type=click.Choice(PROFILES), help="Wire profile (default native).")
@click.option(
    "--encryption/--no-encryption", default=None, help="Core envelope encryption on or off."
)
@click.option("--max-message-size", metavar="SIZE", help="Refuse larger messages, e.g. 512MiB.")
@click.option("--round-timeout", metavar="SECONDS", help="How long a round waits for replies.")
@click.option("--message-ttl", metavar="SECONDS", help="How long a message stays deliverable.")
@click.option("--clock-skew", metavar="SECONDS", help="Clock difference tolerated in expiry.")
@click.option(
    "--pin-keys",
    is_flag=True,
    help="Also pin every participant's published encryption key ([tool.syftflwr.keys]); "
    "participants who have not published one yet are left for `syftflwr keys pin`.",
)
@click.option("--as", "email", metavar="EMAIL", help="Who you are, for --pin-keys.")
@click.option(
    "--no-check",
    is_flag=True,
    help="Do not check that --transport is installed here (the aggregator may not use it).",
)
@click.pass_context
def bootstrap(
    ctx: click.Context,
    *,
    project: Path,
    aggregator: str,
    datasites: tuple[str, ...],
    transport: str | None,
    app_name: str | None,
    profile: str | None,
    encryption: bool | None,
    max_message_size: str | None,
    round_timeout: str | None,
    message_ttl: str | None,
    clock_skew: str | None,
    pin_keys: bool,
    email: str | None,
    no_check: bool,
) -> None:
    """Write [tool.syftflwr] into the Flower app PROJECT's pyproject.toml.

    Idempotent: running it again with the same arguments changes nothing. Your other
    tables, comments and formatting are kept.
    """
    try:
        note = None
        if transport is not None and not no_check:
            checked = check_transport(transport)
            if checked is not None:
                note, in_process_only = checked
                if in_process_only:
                    warn_line(
                        f"transport {transport!r} is in-process only: it serves tests and "
                        "`simulate --threads`, not participants on separate machines"
                    )
        file = find_pyproject(project)
        changed = write_project_config(
            file,
            aggregator=aggregator,
            datasites=datasites,
            transport=transport,
            app_name=app_name,
            profile=profile,
            encryption=encryption,
            max_message_size=_number_or_text(max_message_size),
            round_timeout=_number_or_text(round_timeout),
            message_ttl=_number_or_text(message_ttl),
            clock_skew=_number_or_text(clock_skew),
        )
        written = load_project(file)
    except ConfigError as exc:
        ctx.exit(report_error(as_flag_error(exc), verbosity(ctx)))
    except SyftflwrError as exc:
        ctx.exit(report_error(exc, verbosity(ctx)))
    head = "wrote [tool.syftflwr] to" if changed else "already up to date:"
    click.echo(f"{head} {file}")
    for line in _summary(written, note):
        click.echo(line)
    if pin_keys:
        from syftflwr.cli.keys import pin_keys as pin

        click.echo("pinning the published encryption keys:")
        try:
            pin(project, email, transport, yes=True)
        except SyftflwrError as exc:
            ctx.exit(report_error(exc, verbosity(ctx)))
    if changed or pin_keys:
        click.echo("next: share the project with every participant; each one runs")
        click.echo(f"  syftflwr run {project} --as THEIR_EMAIL")
