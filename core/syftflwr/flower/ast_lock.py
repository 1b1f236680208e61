"""One lock around :func:`ast.parse` on the CPython versions whose AST constructor is not
thread-safe; every :class:`~syftflwr.flower.runner.DatasiteRunner` installs it.

CPython 3.11 before 3.11.8 counts the AST constructor's recursion in interpreter-wide
state (gh-106905): when a garbage collection runs Python code in the middle of one
thread's parse and another thread parses meanwhile, a parse fails with
``SystemError: AST constructor recursion depth mismatch``. numpy reads every array's
header with ``ast.literal_eval``, so two ClientApps reading arrays in one process
(``syftflwr simulate --threads``, several apps or runs served by one process) failed a
training step at random. The lock keeps parses one at a time on those versions; on the
others nothing is installed (3.12 before 3.12.2 shares the state too, but collects only
between bytecodes, never inside a parse).
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

_INSTALL = threading.Lock()
_MARK = "_syftflwr_one_at_a_time"


def affected(version: tuple[int, ...] | None = None) -> bool:
    """True on a CPython whose ``ast.parse`` fails when threads parse at once."""
    major, minor, micro = (version or sys.version_info)[:3]
    return sys.implementation.name == "cpython" and (major, minor) == (3, 11) and micro < 8


def serialize_ast_parse() -> bool:
    """Wrap :func:`ast.parse` in one process-wide (re-entrant) lock, once, on an
    :func:`affected` interpreter; True when it is wrapped. Re-entrant: a collection in
    the middle of a parse may run a finalizer that parses in the same thread."""
    if not affected():
        return False
    with _INSTALL:
        if not getattr(ast.parse, _MARK, False):
            ast.parse = _one_at_a_time(ast.parse)
    return True


def _one_at_a_time(parse: Callable[..., Any]) -> Callable[..., Any]:
    lock = threading.RLock()

    @functools.wraps(parse)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked
