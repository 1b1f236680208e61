"""pytest plugin (entry point ``pytest11``): fixtures for testing Flower apps and transports.

Loaded in every pytest run of an environment where syftflwr is installed, so it imports
nothing heavy at module level.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def memory_namespace() -> Iterator[str]:
    """A fresh, isolated namespace of the built-in ``memory`` transport."""
    from syftflwr.transports import memory

    namespace = f"test-{uuid.uuid4().hex}"
    yield namespace
    memory.reset(namespace)
