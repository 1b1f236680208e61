"""Register a module as a transport for a while, without installing a distribution.

The registry discovers transports from entry-point metadata. To test a plugin module
that is not installed (a module in a test file, a work-in-progress plugin), build the
entry point it *would* have and install a process-wide registry that sees it next to the
installed ones, through the registry's own ``Registry(entry_points=...)`` seam — so the
transport is imported, validated and selected exactly as an installed one would be.

    with temporary_transports({"foo": "my_tests.foo_plugin"}):
        get_registry().load("foo")          # imported and validated like a real plugin

``syftflwr.testing.pytest_plugin`` wraps this as the ``register_transport`` fixture.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import syftflwr.registry as registry_module
from syftflwr.hookspecs import ENTRY_POINT_GROUP
from syftflwr.names import validate_identifier
from syftflwr.registry import Registry

TEMPORARY_DISTRIBUTION = "syftflwr-temporary"
"""The distribution name temporary registrations report (listings, error messages)."""

_lock = threading.Lock()


class TemporaryDistribution(importlib.metadata.Distribution):
    """Metadata of a distribution that exists only in memory: a name, a version and the
    ``syftflwr.transports`` entry points, so registered transports report a real
    distribution instead of ``unknown``."""

    def __init__(self, name: str, version: str, transports: Mapping[str, str]) -> None:
        self._name = name
        self._version = version
        self._transports = dict(transports)

    def read_text(self, filename: str) -> str | None:
        if filename in ("METADATA", "PKG-INFO"):
            return f"Metadata-Version: 2.1\nName: {self._name}\nVersion: {self._version}\n"
        if filename == "entry_points.txt":
            lines = [f"[{ENTRY_POINT_GROUP}]"]
            lines += [f"{name} = {target}" for name, target in self._transports.items()]
            return "\n".join(lines) + "\n"
        return None

    def locate_file(self, path: str | object) -> Path:
        return Path(str(path))  # nothing is on disk; never used by the registry


def target_of(plugin: str | ModuleType) -> str:
    """The entry-point value for ``plugin``: ``"pkg.module"``, ``"pkg.module:obj"``, or a
    module object (which must be importable by its ``__name__``)."""
    return plugin.__name__ if isinstance(plugin, ModuleType) else plugin


def entry_points_for(
    transports: Mapping[str, str | ModuleType],
    *,
    distribution: str = TEMPORARY_DISTRIBUTION,
    version: str = "0.0.0",
) -> list[importlib.metadata.EntryPoint]:
    """Real entry points (with a distribution) for ``{transport name: plugin}``."""
    targets = {
        validate_identifier(n, "transport name"): target_of(p) for n, p in transports.items()
    }
    dist = TemporaryDistribution(distribution, version, targets)
    return list(dist.entry_points.select(group=ENTRY_POINT_GROUP))


def registry_with(
    transports: Mapping[str, str | ModuleType],
    *,
    installed: bool = True,
    distribution: str = TEMPORARY_DISTRIBUTION,
    version: str = "0.0.0",
    disabled: frozenset[str] | None = None,
) -> Registry:
    """A registry that sees ``transports`` (plus the installed ones unless
    ``installed=False``)."""
    extra = entry_points_for(transports, distribution=distribution, version=version)
    base = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)) if installed else []
    return Registry(entry_points=[*base, *extra], disabled=disabled)


@contextmanager
def use_registry(registry: Registry) -> Iterator[Registry]:
    """Make ``registry`` the process-wide one (what ``get_registry()`` returns, so the
    CLI, ``session.connect`` and the simulators all see it) until the block ends."""
    with _lock, registry_module._default_lock:
        previous = registry_module._default
        registry_module._default = registry
    try:
        yield registry
    finally:
        with _lock, registry_module._default_lock:
            registry_module._default = previous


@contextmanager
def temporary_transports(
    transports: Mapping[str, str | ModuleType],
    *,
    installed: bool = True,
    distribution: str = TEMPORARY_DISTRIBUTION,
    version: str = "0.0.0",
) -> Iterator[Registry]:
    """Register ``{name: plugin module}`` as transports for the duration of the block."""
    registry = registry_with(
        transports, installed=installed, distribution=distribution, version=version
    )
    with use_registry(registry):
        yield registry
