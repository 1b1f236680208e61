"""The supported Flower range, read from the one place that declares it: core's
``pyproject.toml`` (``flwr>=OLDEST,<CAP``).

The noxfile tests both ends (OLDEST, and the first release of the minor before CAP);
``tests/test_docs_run.py`` checks that the docs state the same range. Stdlib only, so
the noxfile can import it before any session venv exists.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SPEC = re.compile(r"^flwr\s*>=\s*(\d+)\.(\d+)\.(\d+)\s*,\s*<\s*(\d+)\.(\d+)\s*$")


@dataclass(frozen=True)
class FlwrRange:
    oldest: str
    """The lower bound, tested by the ``flower`` session."""
    newest: str
    """The newest tested release: ``X.(Y-1).0`` for a cap ``<X.Y`` (the full suite)."""
    newest_minor: str
    """``X.(Y-1).x``: how the docs state the top of the range."""
    spec: str


def flwr_range(pyproject: Path = ROOT / "pyproject.toml") -> FlwrRange:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    specs = [d for d in deps if re.match(r"flwr\b", d)]
    if len(specs) != 1 or not (m := _SPEC.match(specs[0])):
        raise ValueError(f"expected one 'flwr>=X.Y.Z,<X.Y' dependency in {pyproject}: {specs}")
    o1, o2, o3, cap_major, cap_minor = (int(g) for g in m.groups())
    if cap_minor == 0:
        raise ValueError(f"cap the flwr range at a minor release above 0, not {specs[0]!r}")
    return FlwrRange(
        oldest=f"{o1}.{o2}.{o3}",
        newest=f"{cap_major}.{cap_minor - 1}.0",
        newest_minor=f"{cap_major}.{cap_minor - 1}.x",
        spec=specs[0],
    )


if __name__ == "__main__":
    print(flwr_range())
