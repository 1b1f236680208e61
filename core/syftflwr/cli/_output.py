"""Output helpers shared by every command: clean errors, JSON, warnings, consoles."""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from syftflwr.errors import ConfigError, PluginError, SyftflwrError

VERBOSE_KEY = "syftflwr.verbose"
"""Where the root group keeps ``-v``'s count (``ctx.meta``, so ``ctx.obj`` stays free)."""


def verbosity(ctx: click.Context | None = None) -> int:
    ctx = ctx or click.get_current_context(silent=True)
    return int(ctx.meta.get(VERBOSE_KEY, 0)) if ctx is not None else 0


PLAIN_WIDTH = 100_000
"""Width of a console that is not a terminal: wide enough that nothing wraps."""


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): rich in a terminal (colours, live views, its
    width); otherwise plain text with no ANSI escape and no line wrapped at 80 columns,
    so a redirected summary can be grepped line by line."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PLAIN_WIDTH, soft_wrap=True, color_system=None)


def print_table(console: Console, table: Any) -> None:
    """Print a rich table without the padding rich adds after its last column, so
    a redirected listing has no trailing spaces."""
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        console.out(line.rstrip(), highlight=False)


def exit_code_for(exc: SyftflwrError) -> int:
    """2 for what the user must fix in config or installed plugins, 1 for the rest."""
    return 2 if isinstance(exc, ConfigError | PluginError) else 1


def report_error(exc: SyftflwrError, verbose: int = 0) -> int:
    """Print ``exc`` as one clean paragraph (a traceback only with ``-v``); return the
    exit code."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message = str(exc).rstrip() or type(exc).__name__
    click.secho("error: ", fg="red", bold=True, err=True, nl=False)
    click.echo(message, err=True)
    if not verbose:
        click.echo("  (run with -v for the traceback)", err=True)
    return exit_code_for(exc)


def warn_line(message: str) -> None:
    click.secho("warning: ", fg="yellow", bold=True, err=True, nl=False)
    click.echo(message, err=True)


@contextmanager
def printed_warnings(category: type[Warning] = UserWarning) -> Iterator[None]:
    """Collect ``category`` warnings raised inside and print them as ``warning:`` lines
    after the command's own output (so a table or JSON on stdout stays clean)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", category)
        try:
            yield
        finally:
            for item in caught:
                if issubclass(item.category, category):
                    warn_line(str(item.message))
                else:  # not ours: hand back to the normal machinery
                    warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
