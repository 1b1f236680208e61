"""Fixtures of the reliability tests: the mailbox tests' real local-directory mailbox."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # before anything imports flwr
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mailbox"))

from _mailbox_helpers import Mailbox
from _runners import Procs


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path / "root")
    yield box
    box.close()


@pytest.fixture
def procs(mailbox: Mailbox, tmp_path: Path) -> Iterator[Procs]:
    """Runner processes (``_inbox_runner.py``) on ``mailbox``'s root."""
    markers = tmp_path / "markers"
    markers.mkdir()
    p = Procs(mailbox.root, markers)
    yield p
    p.close()
