"""Per-round cost of the quickstart FedAvg over each transport vs the in-process
``memory`` transport, measured in ONE run (ratios are what to compare: the machines are
shared and noisy).

A round's time is taken from the aggregator's own record: from the first instruction of
the round to the last reply (train + evaluate), so process start-up and Flower's import
are not counted. Bar (brief §5): 3 datasites over the local transport in separate
processes cost <= 1.5x the same round over memory in one process.

    python benchmarks/bench_rounds.py            # 5 rounds, 3 repeats per transport
    python benchmarks/bench_rounds.py --quick    # 3 rounds, 1 repeat

Writes ``benchmarks/results/rounds.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import RESULTS, ROOT, meta, ratio, summary, write_json
from syftflwr.flower.results import RunResult
from syftflwr.flower.simulation import simulate_in_processes, simulate_in_threads
from syftflwr.registry import get_registry

QUICKSTART = ROOT / "examples" / "quickstart"


def round_times(result: RunResult) -> list[float]:
    """Seconds from each training round's first instruction to its last reply."""
    times = []
    for info in result.rounds:
        if not info.round or not info.replies:
            continue
        start = min(s.sent_at for s in info.sent)
        end = max(r.info.sent_at + r.elapsed for r in info.replies)
        times.append(end - start)
    return times


CROSS_PROCESS = ("fsspec-local",)
"""Transports whose participants can be separate processes on one machine."""


def run(quick: bool, rounds: int | None = None, repeat: int | None = None) -> dict[str, Any]:
    """quick: 3 rounds x 1 run per transport; full: 5 rounds x 3 runs."""
    logging.getLogger("flwr").setLevel(logging.WARNING)
    rounds = rounds or (3 if quick else 5)
    repeat = repeat or (1 if quick else 3)

    runs: dict[str, list[float]] = {"memory (threads)": []}
    cross = [n for n in get_registry().names() if n in CROSS_PROCESS]
    for name in cross:
        runs[f"{name} (processes)"] = []
    for _ in range(repeat):
        result = simulate_in_threads(QUICKSTART, rounds=rounds, timeout=60)
        assert result.ok, result.describe_failures()
        runs["memory (threads)"] += round_times(result)
        for name in cross:
            started = time.monotonic()
            result = simulate_in_processes(QUICKSTART, rounds=rounds, transport=name, timeout=60)
            assert result.ok, (result.error, result.describe_failures())
            runs[f"{name} (processes)"] += round_times(result)
            print(f"  {name}: whole simulation incl. start-up {time.monotonic() - started:.1f}s")

    base = statistics.median(runs["memory (threads)"])
    report: dict[str, Any] = {
        "benchmark": "rounds",
        **meta(),
        "rounds_per_run": rounds,
        "repeat": repeat,
        "baseline": "memory (threads)",
        "results": {},
        "ratios": [],
    }
    print(f"quickstart FedAvg, 3 datasites, per-round time ({rounds} rounds x {repeat} runs)")
    print(f"{'transport':<26}{'median ms':>10}{'min':>9}{'max':>9}{'ratio':>8}")
    for name, values in runs.items():
        stats = summary(values)
        factor = stats["median"] / base
        report["results"][name] = {**stats, "ratio_vs_memory": factor}
        print(
            f"{name:<26}{stats['median'] * 1e3:>10.1f}{stats['min'] * 1e3:>9.1f}"
            f"{stats['max'] * 1e3:>9.1f}{factor:>7.2f}x"
        )
        if name != "memory (threads)":
            report["ratios"].append(
                ratio(
                    f"rounds: quickstart round, {name} vs memory",
                    factor,
                    baseline="memory transport, threads, one process",
                    bar=1.5,
                )
            )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS / "rounds.json")
    args = parser.parse_args()
    write_json(args.out, run(args.quick, args.rounds, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
