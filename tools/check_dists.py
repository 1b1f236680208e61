"""Check built distributions and what installing them gives (used by ``nox -s build``).

    python tools/check_dists.py files DIST_DIR
        every distribution of the repository has a wheel and an sdist in DIST_DIR; each
        ships a LICENSE file that exists and ``py.typed`` in every package
    python tools/check_dists.py installed EXTRA
        run by the venv that installed ``syftflwr[EXTRA]``: the transports the extra names
        are listed by ``syftflwr transports --json`` with status ok, and nothing else

Stdlib only (it runs before and inside fresh venvs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT, *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]
EXTRA_TRANSPORTS = {
    "fsspec-local": {"fsspec-local"},
    "gcs": {"fsspec-local"},
    "gdrive": {"gdrive"},
    "all": {"fsspec-local", "gdrive"},
    "syftbox": {"syftbox"},
}
EXTRA_IMPORTS = {"gcs": ["gcsfs"], "all": ["gcsfs"]}


def _packages(source: Path) -> list[str]:
    """The import packages a distribution ships (hatch wheel ``packages``), as names."""
    data = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return [Path(p).name for p in wheel]


def _name(source: Path) -> str:
    data = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["name"]).replace("-", "_")


def check_files(dist: Path) -> list[str]:
    problems = []
    for source in SOURCES:
        name, packages = _name(source), _packages(source)
        wheels = sorted(dist.glob(f"{name}-*.whl"))
        sdists = sorted(dist.glob(f"{name}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{name}: expected one wheel and one sdist, found {wheels + sdists}")
            continue
        with zipfile.ZipFile(wheels[0]) as wheel:
            files = wheel.namelist()
        if not any(f.split("/")[-1] == "LICENSE" and ".dist-info/" in f for f in files):
            problems.append(f"{wheels[0].name}: no LICENSE in its .dist-info")
        problems += [
            f"{wheels[0].name}: no {package}/py.typed"
            for package in packages
            if f"{package}/py.typed" not in files
        ]
        with tarfile.open(sdists[0]) as sdist:
            members = [m.name.split("/", 1)[-1] for m in sdist.getmembers()]
        if "LICENSE" not in members:
            problems.append(f"{sdists[0].name}: no LICENSE")
        problems += [
            f"{sdists[0].name}: no py.typed in {package}"
            for package in packages
            if not any(m.endswith(f"{package}/py.typed") for m in members)
        ]
    return problems


def check_installed(extra: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "syftflwr", "transports", "--json"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        return [f"syftflwr transports failed: {proc.stderr}"]
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    wanted = {"memory", *EXTRA_TRANSPORTS[extra]}
    problems = (
        [f"[{extra}] lists {sorted(rows)}, expected {sorted(wanted)}"]
        if set(rows) != wanted
        else []
    )
    problems += [
        f"[{extra}] {name}: {row['status']} {row.get('error') or ''}"
        for name, row in rows.items()
        if row["status"] != "ok"
    ]
    for module in EXTRA_IMPORTS.get(extra, []):
        found = subprocess.run([sys.executable, "-c", f"import {module}"], check=False)
        if found.returncode != 0:
            problems.append(f"[{extra}] {module} is not importable")
    return problems


def main(argv: list[str]) -> int:
    mode, arg = argv
    problems = check_files(Path(arg)) if mode == "files" else check_installed(arg)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{mode} {arg}: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
