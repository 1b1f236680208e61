"""pytest plugin (entry point ``pytest11``): fixtures for testing Flower apps and transports.

Loaded in every pytest run of an environment where syftflwr is installed, so it imports
nothing heavy at module level.

Fixtures:

* ``memory_namespace`` — a fresh, isolated namespace of the built-in ``memory`` transport.
* ``register_transport`` — register a module as a transport for one test, without
  installing a distribution: ``register_transport("foo", "my_pkg.plugin")`` (or a module
  object); the process-wide registry (CLI, ``session.connect``, simulators) sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from syftflwr.registry import Registry

# The conformance suites' asserts get pytest's detailed failure messages.
pytest.register_assert_rewrite("syftflwr.testing.conformance")

RegisterTransport = Callable[..., "Registry"]


@pytest.fixture
def memory_namespace() -> Iterator[str]:
    """A fresh, isolated namespace of the built-in ``memory`` transport."""
    from syftflwr.transports import memory

    namespace = f"test-{uuid.uuid4().hex}"
    yield namespace
    memory.reset(namespace)


@pytest.fixture
def register_transport() -> Iterator[RegisterTransport]:
    """``register(name, plugin, *, installed=True, distribution=..., version=...)``:
    make ``plugin`` (``"pkg.module"``, ``"pkg.module:obj"`` or a module object) the
    transport ``name`` until the test ends; returns the registry in use. Each call
    replaces the previous temporary registry and keeps the earlier registrations."""
    from syftflwr.testing.registration import registry_with, use_registry

    stack = ExitStack()
    registered: dict[str, str | ModuleType] = {}

    def register(
        name: str,
        plugin: str | ModuleType,
        *,
        installed: bool = True,
        distribution: str = "syftflwr-temporary",
        version: str = "0.0.0",
    ) -> Registry:
        registered[name] = plugin
        registry = registry_with(
            registered, installed=installed, distribution=distribution, version=version
        )
        stack.enter_context(use_registry(registry))
        return registry

    with stack:
        yield register
