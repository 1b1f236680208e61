"""How syftflwr's commands write log lines, and how a parent process reads them back.

One handler on the root logger, on stderr: in a terminal rich's (colours, the terminal's
width); otherwise plain ``LEVEL logger: message`` lines with no ANSI escape and no
wrapping, continuation lines of a record indented, so that ``simulate`` (which reads its
participants' stderr through pipes) can tell a warning or an error, tracebacks included,
from the rest (:class:`LineLevels`).

Flower installs a handler of its own on the ``flwr`` logger *and* lets records
propagate to the root: every Flower line would be printed twice, the first one with
ANSI colours even in a file. :func:`adopt_flower_logs` removes Flower's handler, so
Flower's records go through ours, once.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

FLOWER_LOGGER = "flwr"
PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
CONTINUATION = "    "
"""Indent of a log record's second and later lines in plain output."""


class PlainFormatter(logging.Formatter):
    """``LEVEL logger: message``; every further line of the record (a multi-line
    message, a traceback) indented, so a reader knows which record it belongs to."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        first, *rest = super().format(record).split("\n")
        return "\n".join([first, *(CONTINUATION + line for line in rest)])


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the
    handler was made: a live view (rich) or a test runner may swap it meanwhile."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_OURS = "_syftflwr_handler"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def level_for(verbose: int) -> int:
    return logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG


def configure(verbose: int = 0) -> logging.Handler:
    """Install (or replace) syftflwr's root handler for ``-v`` count ``verbose``:
    warnings by default, INFO with ``-v``, DEBUG with ``-vv``."""
    handler: logging.Handler
    if is_terminal(sys.stderr):
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(stderr=True), show_time=False, show_path=False, markup=False
        )
    else:
        handler = StderrHandler()
        handler.setFormatter(PlainFormatter())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = level_for(verbose)
    root.setLevel(level)
    logging.getLogger("syftflwr").setLevel(level)
    return handler


def _flower_handlers() -> list[logging.Handler]:
    """Flower's own console handler(s) on the ``flwr`` logger (imports Flower)."""
    from flwr.common.logger import ConsoleHandler

    return [h for h in logging.getLogger(FLOWER_LOGGER).handlers if isinstance(h, ConsoleHandler)]


def adopt_flower_logs(verbose: int = 0) -> None:
    """Route Flower's records through the root handler only (once, formatted as ours):
    its events (``[ROUND 1/3]``) at INFO, DEBUG with ``-vv``."""
    logger = logging.getLogger(FLOWER_LOGGER)
    for handler in _flower_handlers():
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


@contextmanager
def flower_quiet(level: int) -> Iterator[None]:
    """Drop Flower's records below ``level`` while the block runs (the Python API: a
    notebook gets a line per round, not Flower's whole INFO log). On the ``flwr`` logger
    itself, not only on Flower's console handler: its records also propagate to the root,
    where a notebook's ``logging.basicConfig(level=INFO)`` or an earlier CLI call in the
    same process has a handler."""
    logger = logging.getLogger(FLOWER_LOGGER)
    saved = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(saved)


# --------------------------------------------------------------------------- reading back
_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
_RECORD_LEVELS = logging.getLevelNamesMapping()
_CLI_LINE = re.compile(r"^(error|warning): ")
_CLI_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING}
_TRACEBACK_STARTS = (
    "Traceback (most recent call last):",
    "During handling of the above exception",
    "The above exception was the direct cause",
)


class LineLevels:
    """The level of each line a syftflwr process writes to stderr, read one line at a
    time: a log record's first line names it and its indented lines inherit it; the
    CLI's ``error:``/``warning:`` lines count as such; a Python traceback is an error up
    to and including its unindented last line (the exception); anything else (a banner,
    a library's print) is INFO."""

    def __init__(self) -> None:
        self._current = logging.INFO
        self._in_traceback = False

    def level(self, line: str) -> int:
        if line.startswith(_TRACEBACK_STARTS):
            self._in_traceback = True
            self._current = logging.ERROR
        elif line.startswith((" ", "\t")) or not line.strip():
            pass  # a continuation: same record
        elif self._in_traceback:
            self._in_traceback = False  # the exception's line ends the traceback
        elif match := _RECORD.match(line):
            self._current = _RECORD_LEVELS[match.group(1)]
        elif match := _CLI_LINE.match(line):
            self._current = _CLI_LEVELS[match.group(1)]
        else:
            self._current = logging.INFO
        return self._current
