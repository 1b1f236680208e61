"""The ``syftflwr`` command line (click + rich). ``main`` is the console script.

``main`` takes over SIGINT and SIGTERM before it imports anything else (see
:mod:`syftflwr.signals`): ``syftflwr run`` must stop cleanly on a Ctrl-C that comes while
it is still importing Flower.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs ~10 ms on the CLI's path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from syftflwr.cli.app import cli

__all__ = ["cli", "main"]


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point (``syftflwr`` and ``python -m syftflwr``)."""
    from syftflwr.signals import take_over

    with take_over(list(args) if args is not None else sys.argv[1:]):
        from syftflwr.cli.app import main as run_cli

        run_cli(args)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from syftflwr.cli.app import cli

        return cli
    raise AttributeError(f"module 'syftflwr.cli' has no attribute {name!r}")
