"""Fixtures of the syftbox tests: isolated process-wide state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from syftflwr.mailbox import watcher
from syftflwr_syftbox import client as client_module


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test opens its own data dirs and builds its own watcher hub."""
    yield
    client_module.forget_data_dirs()
    watcher.set_backend_factory(None)
    watcher.reset_hub()
