"""The ``syftflwr`` command line (click + rich). ``main`` is the console script."""

from __future__ import annotations

from syftflwr.cli.app import cli, main

__all__ = ["cli", "main"]
