"""Fixtures of the syftbox tests: isolated process-wide state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from syftflwr_syftbox import client as client_module


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Each test opens its own data dirs."""
    yield
    client_module.forget_data_dirs()
