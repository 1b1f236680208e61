"""Fixtures of the mailbox tests: a real local-directory mailbox per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _mailbox_helpers import Mailbox


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path / "root")
    yield box
    box.close()


@pytest.fixture
def chunked_mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path / "root", max_object_size=64 * 1024)
    yield box
    box.close()
