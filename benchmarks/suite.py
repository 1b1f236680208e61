"""Run every benchmark once, with fixed sizes and seeds, and record the results.

Each benchmark runs in its own process (a crash or a leaked watcher in one cannot skew
another; its peak-RSS figures start clean). Full mode writes
``benchmarks/results/results.json`` (plus each benchmark's own JSON), regenerates
``docs/benchmarks.md`` and ``docs/img/benchmarks.png`` and compares every ratio with
the previous ``results.json``. Quick mode writes the same three files under
``benchmarks/results/quick/`` and leaves the recorded ones alone.

    python benchmarks/suite.py            # full: < 15 min on 2 cores
    python benchmarks/suite.py --quick    # development: < 3 min
    python benchmarks/suite.py --only serde scale --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import compare
import report
from _common import RESULTS, ROOT, meta, ratio, write_json

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "transports": "bench_transports.py",
    "fsspec-local": "bench_fsspec_local.py",
    "flower": "bench_flower.py",
    "rounds": "bench_rounds.py",
    "serde": "bench_serde.py",
    "scale": "bench_scale.py",
    "crypto": "bench_crypto.py",
    "inbox": "bench_inbox.py",
    "startup": "bench_startup.py",
    "shared-state": "bench_shared_state.py",
    "broadcast": "bench_broadcast.py",
}
"""Benchmark name -> script; each script has ``run(quick)`` and ``--quick --out``."""
PLUGIN_BENCHMARKS = {"gdrive": ROOT / "plugins" / "gdrive" / "benchmarks" / "bench_gdrive.py"}
"""Benchmarks shipped with a plugin (its folder moves to its own repository unchanged):
they print their JSON on stdout; :func:`plugin_ratios` turns it into the suite's figures."""
NEEDS = {
    "fsspec-local": "fsspec-local",
    "flower": "fsspec-local",
    "scale": "fsspec-local",
    "crypto": "fsspec-local",
    "inbox": "fsspec-local",
    "startup": "fsspec-local",
    "shared-state": "fsspec-local",
    "broadcast": "fsspec-local",
    "gdrive": "gdrive",
}
"""Benchmarks that need a transport installed (skipped, and said so, without it)."""
MEASURED_BY = {
    "gdrive": "Drive: API calls per idle poll vs syft-flwr 0.5",
    "crypto": "encryption on vs off",
}
"""Pending figures (``report.PENDING``) a benchmark now measures: not pending when it ran."""


def installed_transports() -> set[str]:
    from syftflwr.registry import get_registry

    return set(get_registry().names())


def plugin_ratios(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's figures of a plugin benchmark's own JSON."""
    if name != "gdrive":
        return []
    idle = data["idle_calls_per_poll"]
    few, many = idle[0], idle[-1]
    trip = min(data["round_trips"], key=lambda row: row["size"])
    return [
        ratio(f"gdrive: API calls per idle poll, {many['peers']} vs {few['peers']} peers",
              many["syftflwr"] / few["syftflwr"], baseline=f"{few['peers']} peers", bar=1.0),
        ratio(f"gdrive: API calls per idle poll at {many['peers']} peers vs syft-flwr 0.5",
              many["syftflwr"] / many["syft-flwr 0.5 pattern"],
              baseline="syft-flwr 0.5's pattern"),
        ratio(f"gdrive: {trip['size'] // 1024} KB round trip (loopback Drive), s",
              trip["p50_s"], baseline="(absolute)", absolute=True),
    ]  # fmt: skip


def run_plugin(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    """A plugin's benchmark in a child process; it prints its JSON last."""
    command = [sys.executable, str(PLUGIN_BENCHMARKS[name]), *(["--quick"] if quick else [])]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, check=True, timeout=timeout, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    print(done.stdout, end="", flush=True)
    lines = done.stdout.splitlines()
    data: dict[str, Any] = json.loads("\n".join(lines[lines.index("{") :]))
    data["ratios"] = plugin_ratios(name, data)
    data["duration_s"] = time.monotonic() - started
    return data


def run_one(name: str, quick: bool, timeout: float) -> dict[str, Any]:
    """One benchmark in a child process; its output streams to this console."""
    if name in PLUGIN_BENCHMARKS:
        return run_plugin(name, quick, timeout)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, str(HERE / BENCHMARKS[name]), "--out", str(out)]
        if quick:
            command.append("--quick")
        started = time.monotonic()
        try:
            subprocess.run(command, check=True, timeout=timeout, cwd=ROOT)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        data: dict[str, Any] = json.loads(out.read_text())
        data["duration_s"] = time.monotonic() - started
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="development sizes (< 3 min)")
    parser.add_argument(
        "--only", nargs="+", choices=sorted([*BENCHMARKS, *PLUGIN_BENCHMARKS]), help="a subset"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    parser.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 if a ratio regressed"
    )
    args = parser.parse_args(argv)
    out_dir = RESULTS / "quick" if args.quick else RESULTS
    results_path = out_dir / "results.json"
    docs = out_dir / "benchmarks.md" if args.quick else report.DEFAULT_DOCS
    png = out_dir / "benchmarks.png" if args.quick else report.DEFAULT_PNG
    previous_path = results_path if results_path.exists() else RESULTS / "results.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else None

    available = installed_transports()
    started = time.monotonic()
    mode = "quick" if args.quick else "full"
    benchmarks: dict[str, Any] = {}
    if args.only and previous and previous.get("suite", {}).get("mode") == mode:
        benchmarks.update(previous["benchmarks"])  # a subset updates the record, keeps the rest
    skipped: dict[str, str] = {}
    for name in args.only or [*BENCHMARKS, *PLUGIN_BENCHMARKS]:
        need = NEEDS.get(name)
        if need and need not in available:
            skipped[name] = f"transport {need!r} is not installed (pip install syftflwr[{need}])"
            print(f"== {name}: skipped, {skipped[name]}", flush=True)
            continue
        print(f"== {name}", flush=True)
        benchmarks[name] = data = run_one(name, args.quick, args.timeout)
        if "error" in data:
            print(f"== {name}: FAILED: {data['error']}", flush=True)
        elif not args.quick:
            write_json(RESULTS / f"{name}.json", data)
    results: dict[str, Any] = {
        "suite": {
            **meta(),
            "mode": mode,
            "duration_s": time.monotonic() - started,
            "transports_installed": sorted(available),
        },
        "benchmarks": benchmarks,
        "skipped": skipped,
        "pending": {
            what: why
            for what, why in report.PENDING.items()
            if not any(
                MEASURED_BY.get(n) == what and "error" not in d for n, d in benchmarks.items()
            )
        },
    }
    if previous is not None:
        results["comparison"] = compare.compare(previous, results)
        print("== compared with the last recorded run")
        print(compare.describe(results["comparison"]))
    write_json(results_path, results)
    report.write_report(results, docs, png)
    print(f"suite took {results['suite']['duration_s']:.0f} s")
    failed = [n for n, d in benchmarks.items() if "error" in d]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    regressed = results.get("comparison", {}).get("regressions")
    return 1 if args.fail_on_regression and regressed else 0


if __name__ == "__main__":
    sys.exit(main())
