"""Fixtures of the Flower integration tests: real memory-transport roles, quiet Flower."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"  # before anything imports flwr

from _flower_helpers import DS1, DS2, DS3, MemoryFederation


@pytest.fixture(autouse=True)
def _quiet_flower(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    logger = logging.getLogger("flwr")
    level, propagate = logger.level, logger.propagate
    handlers = list(logger.handlers)
    logger.setLevel(logging.WARNING)
    for handler in handlers:  # Flower installs its own console handler
        logger.removeHandler(handler)
    logger.propagate = True  # caplog still sees Flower's warnings
    yield
    logger.setLevel(level)
    logger.propagate = propagate
    for handler in handlers:
        logger.addHandler(handler)


@pytest.fixture
def federation() -> Iterator[MemoryFederation]:
    fed = MemoryFederation(namespace=f"flower-{uuid.uuid4().hex}", datasites=(DS1, DS2, DS3))
    yield fed
    fed.close()
