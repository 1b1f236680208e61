"""Regression check: this run's ratios against the last recorded run's.

Only ratios are compared (each was measured against a baseline in its own run, so the
machine's load cancels out); absolute times are not. A ratio *regressed* when it got
more than ``tolerance`` (20%) worse: ``new / old > 1.2`` for a lower-is-better ratio,
``old / new > 1.2`` for a higher-is-better one.

    python benchmarks/compare.py OLD.json NEW.json     # exit 1 if anything regressed
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TOLERANCE = 0.2


@dataclass(frozen=True)
class Change:
    name: str
    old: float
    new: float
    better: str
    worse_by: float
    """How many times worse the new value is (< 1: it improved)."""
    regressed: bool

    def describe(self) -> str:
        if self.regressed:
            verdict = f"REGRESSED ({self.worse_by:.2f}x worse)"
        elif self.worse_by < 1 / (1 + TOLERANCE):
            verdict = f"improved ({1 / self.worse_by:.2f}x better)"
        else:
            verdict = "same"
        return f"{self.name}: {self.old:.3g} -> {self.new:.3g} ({self.better} is better) {verdict}"


def ratios_of(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every comparable ratio of a suite results file (or of one benchmark's output)."""
    benchmarks = results.get("benchmarks", {"": results})
    out: dict[str, dict[str, Any]] = {}
    for data in benchmarks.values():
        if not isinstance(data, dict):
            continue
        for record in data.get("ratios", []):
            if not record.get("absolute") and isinstance(record.get("value"), int | float):
                out[record["name"]] = record
    return out


def worse_by(old: float, new: float, better: str) -> float:
    """Factor by which ``new`` is worse than ``old`` (1.0: unchanged)."""
    if old <= 0 or new <= 0:
        return 1.0 if old == new else float("inf")
    return new / old if better == "lower" else old / new


def compare(
    previous: dict[str, Any], current: dict[str, Any], tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """Changes of every ratio present in both runs, plus names only one run has."""
    old, new = ratios_of(previous), ratios_of(current)
    changes = []
    for name in sorted(old.keys() & new.keys()):
        better = new[name].get("better", "lower")
        factor = worse_by(old[name]["value"], new[name]["value"], better)
        changes.append(
            Change(
                name, old[name]["value"], new[name]["value"], better, factor, factor > 1 + tolerance
            )
        )
    return {
        "previous_created": previous.get("suite", previous).get("created"),
        "tolerance": tolerance,
        "changes": [asdict(c) for c in changes],
        "regressions": [c.name for c in changes if c.regressed],
        "only_previous": sorted(old.keys() - new.keys()),
        "only_current": sorted(new.keys() - old.keys()),
    }


def describe(comparison: dict[str, Any]) -> str:
    lines = [Change(**c).describe() for c in comparison["changes"]]
    if comparison["only_current"]:
        lines.append(f"new (nothing to compare with): {', '.join(comparison['only_current'])}")
    if comparison["regressions"]:
        lines.append(
            f"{len(comparison['regressions'])} ratio(s) more than "
            f"{comparison['tolerance']:.0%} worse than the last recorded run"
        )
    else:
        lines.append(f"no ratio more than {comparison['tolerance']:.0%} worse than last time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("previous", type=Path)
    parser.add_argument("current", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    comparison = compare(
        json.loads(args.previous.read_text()), json.loads(args.current.read_text()), args.tolerance
    )
    print(describe(comparison))
    return 1 if comparison["regressions"] else 0


if __name__ == "__main__":
    sys.exit(main())
