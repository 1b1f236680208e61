"""Discovery: what the installed metadata says, without importing any plugin.

Everything here reads ``entry_points.txt`` and distribution metadata only, so listing
transports by name, distribution and version never executes plugin code.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DISABLE_ENV = "SYFTFLWR_DISABLE_PLUGINS"

FIRST_PARTY_EXTRAS: Mapping[str, str] = {
    "fsspec-local": "fsspec-local",
    "gdrive": "gdrive",
    "syftbox": "syftbox",
}
"""Transports this project publishes, mapped to the core extra that installs each."""


@dataclass(frozen=True)
class TransportEntry:
    """One ``syftflwr.transports`` entry point, as the metadata declares it (no import).

    ``attr`` is set when the entry point names an object inside the module
    (``pkg.mod:plugin``) instead of the module itself.
    """

    name: str
    module: str
    distribution: str
    version: str
    attr: str | None = None

    @property
    def label(self) -> str:
        """How errors and listings name the plugin: distribution, version and module."""
        return f"{self.distribution} {self.version}, module {self.target}"

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}" if self.attr else self.module


def normalize_distribution(name: str) -> str:
    """PEP 503 normalisation, so ``Syftflwr_Foo`` and ``syftflwr-foo`` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def entry_from_entry_point(ep: importlib.metadata.EntryPoint) -> TransportEntry:
    dist = ep.dist
    if dist is not None:
        distribution = dist.metadata["Name"] or "unknown"
        version = dist.version or "unknown"
    else:  # an entry point built by hand (e.g. passed to Registry(entry_points=...))
        distribution, version = "unknown", "unknown"
    return TransportEntry(
        name=ep.name,
        module=ep.module,
        distribution=distribution,
        version=version,
        attr=ep.attr or None,
    )


def discover(
    group: str, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
) -> list[TransportEntry]:
    """Every entry point of ``group``, sorted by name then distribution (duplicates kept)."""
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=group)
    entries = {entry_from_entry_point(ep) for ep in entry_points}
    return sorted(entries, key=lambda e: (e.name, normalize_distribution(e.distribution)))


def disabled_from_env(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Parse ``SYFTFLWR_DISABLE_PLUGINS=a,b`` (transport or distribution names)."""
    raw = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def is_disabled(entry: TransportEntry, disabled: frozenset[str]) -> bool:
    if not disabled:
        return False
    if entry.name in disabled:
        return True
    wanted = {normalize_distribution(d) for d in disabled}
    return normalize_distribution(entry.distribution) in wanted
