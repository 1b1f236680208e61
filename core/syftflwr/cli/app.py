"""The ``syftflwr`` root command: lazy subcommands, plugin command groups, clean errors.

Nothing heavy is imported to show help or to list transports: core subcommands are
imported only when they run (``run`` and ``simulate`` pull in Flower); the root help
imports each plugin's light hook module, to list only the command groups that exist,
and a group asks its plugin for its commands only when it is used. So a broken plugin
can break nothing but its own commands.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import click

from syftflwr._version import __version__
from syftflwr.cli._output import VERBOSE_KEY, report_error, verbosity, warn_line
from syftflwr.errors import PluginError, SyftflwrError
from syftflwr.logs import configure as configure_logging
from syftflwr.names import suggest
from syftflwr.registry import PluginWarning, get_registry

LAZY_COMMANDS: dict[str, str] = {
    "new": "syftflwr.cli.new:new",
    "transports": "syftflwr.cli.transports:transports",
    "doctor": "syftflwr.cli.doctor:doctor",
    "run": "syftflwr.cli.run:run",
    "simulate": "syftflwr.cli.simulate:simulate",
    "report": "syftflwr.cli.report:report",
    "bootstrap": "syftflwr.cli.bootstrap:bootstrap",
    "keys": "syftflwr.cli.keys:keys",
    "submit": "syftflwr.cli.submit:submit_command",
    "jobs": "syftflwr.cli.jobs:jobs",
    "serve": "syftflwr.cli.serve:serve",
}
"""Core subcommands, ``name -> "module:attribute"``; one whose module does not exist
(yet) is simply not offered."""

COMMAND_HELP: dict[str, str] = {
    "new": "Write a ready-to-run Flower app with its [tool.syftflwr] table (offline).",
    "transports": "List installed transports: status, capabilities, detection verdict.",
    "doctor": "Check the configuration and carry a message end to end.",
    "run": "Run the aggregator or a datasite of a Flower app.",
    "simulate": "Run a whole federation on this machine.",
    "report": "Summarise a run's result file; --plot draws accuracy and loss per round.",
    "bootstrap": "Write the shared [tool.syftflwr] config of a Flower app.",
    "keys": "Manage this participant's encryption keys.",
    "submit": "Send a Flower app to its datasites for review (a signed job).",
    "jobs": "Collect and list jobs; review, approve or reject one; accept a sender.",
    "serve": "Serve every app you approved as a datasite (and nothing else).",
}
"""Short help shown by ``syftflwr --help`` without importing the command modules."""


def available_commands() -> list[str]:
    return [
        name
        for name, target in LAZY_COMMANDS.items()
        if importlib.util.find_spec(target.partition(":")[0]) is not None
    ]


def _import_command(target: str) -> click.Command:
    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class TransportGroup(click.Group):
    """``syftflwr <transport> ...``: filled by the plugin's ``syftflwr_register_commands``
    the first time it is used, never while listing the root's help."""

    def __init__(self, name: str, distribution: str, version: str) -> None:
        super().__init__(
            name,
            help=f"Commands of the {name!r} transport ({distribution} {version}).",
            short_help=f"Commands of the {name} transport ({distribution}).",
        )
        self.transport_name = name
        self._filled = False

    def _fill(self) -> None:
        if self._filled:
            return
        transport = get_registry().load(self.transport_name)
        self._filled = True
        if not transport.register_commands(self) or not self.commands:
            raise click.UsageError(
                f"the {self.transport_name!r} transport ({transport.entry.distribution}) "
                "adds no commands; see `syftflwr --help` for the core commands"
            )

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._fill()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._fill()
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._fill()  # before --help is rendered, so errors surface as such
        return super().parse_args(ctx, args)


class RootGroup(click.Group):
    """Resolves core commands lazily and transport names to their command groups."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *available_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        if cmd_name in LAZY_COMMANDS and cmd_name in available_commands():
            return _import_command(LAZY_COMMANDS[cmd_name])
        entries = [e for e in get_registry().entries() if e.name == cmd_name]
        if entries:
            return TransportGroup(cmd_name, entries[0].distribution, entries[0].version)
        return None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            name = args[0] if args else ""
            known = [*self.list_commands(ctx), *get_registry().names()]
            near = suggest(name, known)
            if near and "No such command" in exc.message:
                raise click.UsageError(f"{exc.message} Did you mean {near!r}?", exc.ctx) from None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        core = [
            (name, COMMAND_HELP.get(name) or self._short_help(ctx, name))
            for name in self.list_commands(ctx)
        ]
        if core:
            with formatter.section("Commands"):
                formatter.write_dl(core)
        plugins = []
        for e in get_registry().entries():
            if e.distribution == "syftflwr" or e.name in LAZY_COMMANDS:
                continue
            adds = _adds_commands(e.name)
            if adds is None:
                note = (
                    f"{e.distribution} {e.version} fails to load: `syftflwr transports` says why."
                )
            elif adds:
                note = f"Commands added by the {e.name} transport ({e.distribution} {e.version})."
            else:
                continue
            plugins.append((e.name, note))
        if plugins:
            with formatter.section("Transport commands (syftflwr TRANSPORT --help)"):
                formatter.write_dl(sorted(set(plugins)))

    def _short_help(self, ctx: click.Context, name: str) -> str:
        command = self.get_command(ctx, name)
        return command.get_short_help_str() if command else ""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SyftflwrError as exc:
            ctx.exit(report_error(exc, verbosity(ctx)))


def _adds_commands(name: str) -> bool | None:
    """Whether the transport implements ``syftflwr_register_commands``, so that the help
    lists only command groups that exist. Its hook module is imported (light by contract,
    checked by ``transports --check``), never its roles; None: it fails to load."""
    try:
        return get_registry().load(name).has_commands
    except PluginError:
        return None


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Core, Flower and every installed transport, from metadata (no plugin import)."""
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"syftflwr {__version__}")
    try:
        click.echo(f"flwr {importlib.metadata.version('flwr')}")
    except importlib.metadata.PackageNotFoundError:
        click.echo("flwr (not installed)")
    registry = get_registry()
    entries = registry.all_entries()
    click.echo("transports:" if entries else "transports: (none installed)")
    width = max((len(e.name) for e in entries), default=0)
    for entry in entries:
        note = "  (disabled)" if entry not in registry.entries() else ""
        click.echo(f"  {entry.name:<{width}}  {entry.distribution} {entry.version}{note}")
    ctx.exit()


@click.group(
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Errors name the problem and the fix; add -v for a traceback.",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show core, Flower and transport versions, then exit.",
)
@click.option(
    "-v", "--verbose", count=True, help="More logging (-v info, -vv debug); tracebacks on errors."
)
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Federated learning with Flower over pluggable, file-based transports."""
    ctx.meta[VERBOSE_KEY] = verbose
    configure_logging(verbose)


def _print_plugin_warnings() -> Callable[..., None]:
    """Show :class:`PluginWarning` as one ``warning:`` line instead of Python's
    ``file:line: Category: text`` format; other warnings are left alone."""
    original = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, PluginWarning):
            warn_line(str(message))
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    return original


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point (``syftflwr`` and ``python -m syftflwr``)."""
    original = _print_plugin_warnings()
    try:
        cli.main(args=list(args) if args is not None else None, prog_name="syftflwr")
    except SyftflwrError as exc:  # raised while parsing, before any command ran
        raise SystemExit(report_error(exc, 0)) from None
    finally:
        warnings.showwarning = original
