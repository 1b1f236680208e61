"""What listings and auto-detection report per transport, and the deterministic choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "broken", "disabled", "duplicate", "incompatible"]


@dataclass(frozen=True)
class TransportStatus:
    """One row of ``syftflwr transports`` / one auto-detection verdict.

    ``usable``/``reason``/``preference`` are the transport's own detection verdict
    (``usable`` is None when detection was not asked or could not run). ``eligible``
    adds core's rule on top: usable, loadable, and not in-process-only unless the caller
    allows it. ``selected`` marks the one auto-detection picks.
    """

    name: str
    distribution: str
    version: str
    status: Status
    module: str = ""
    error: str | None = None
    description: str | None = None
    capabilities: dict[str, Any] | None = None
    usable: bool | None = None
    reason: str = ""
    preference: int | None = None
    eligible: bool = False
    selected: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists through ``json``)."""
        return dataclasses.asdict(self)

    @property
    def in_process_only(self) -> bool:
        return bool(self.capabilities and self.capabilities.get("in_process_only"))


DetectionReport = TransportStatus
"""Auto-detection reports the same facts a listing shows."""


def pick(reports: Iterable[TransportStatus]) -> TransportStatus | None:
    """The eligible report with the highest preference; ties go to the smaller name."""
    eligible = [r for r in reports if r.eligible]
    if not eligible:
        return None
    return min(eligible, key=lambda r: (-(r.preference or 0), r.name))


def mark_selected(reports: list[TransportStatus]) -> list[TransportStatus]:
    chosen = pick(reports)
    if chosen is None:
        return reports
    return [dataclasses.replace(r, selected=True) if r is chosen else r for r in reports]
