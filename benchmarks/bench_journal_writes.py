"""Journal writes of a broadcast: 50 threads each record one send (``Journal.sending``)
at once on a file journal, as the aggregator's send threads do, and 1 thread records 50.

Concurrent writes are committed in groups (``syftflwr.sqlitedb``: one transaction for
the writes that queued while the previous commit ran). The in-run baseline is the same
journal with every write its own autocommit transaction behind the handle's lock (the
path before group commit), interleaved with it. Each figure is the median of
``--repeat`` runs, each on a fresh journal file; ``latency max`` is the slowest caller
(when the last send could start its upload).

    python benchmarks/bench_journal_writes.py             # 20 repeats
    python benchmarks/bench_journal_writes.py --quick     # 5 repeats
    python benchmarks/bench_journal_writes.py --before-core OLD/core   # also old code

``--before-core`` runs the same measurement in a child process importing syftflwr from
another checkout's ``core`` (e.g. the commit before group commit). Writes
``benchmarks/results/journal-writes.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import RESULTS, meta, ratio, summary, write_json
from syftflwr.plugin import Journal

SENDERS = 50


def serialized(journal: Journal) -> Journal:
    """``journal`` with every write its own autocommit transaction behind the lock."""
    db = journal._db
    db.write = lambda sql, args=(): db._execute(sql, args, fetch=False)[1]  # type: ignore[method-assign]
    return journal


def send(journal: Journal, n: int) -> None:
    journal.sending(f"msg-{n}-{uuid.uuid4().hex}", recipient=f"ds{n}@bench.org", app="bench",
                    endpoint="train", expires_at=time.time() + 600)  # fmt: skip


def concurrent(journal: Journal) -> tuple[float, float]:
    """50 threads, one ``sending`` each, released together: (wall time, slowest call)."""
    start = threading.Barrier(SENDERS + 1)
    latencies: list[float] = []

    def sender(n: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        send(journal, n)
        latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, max(latencies)


def sequential(journal: Journal) -> tuple[float, float]:
    """1 thread, 50 ``sending`` calls: (wall time, slowest call)."""
    latencies = []
    t0 = time.perf_counter()
    for n in range(SENDERS):
        t1 = time.perf_counter()
        send(journal, n)
        latencies.append(time.perf_counter() - t1)
    return time.perf_counter() - t0, max(latencies)


SCENARIOS = {"50 threads x 1": concurrent, "1 thread x 50": sequential}


def measure(repeat: int, variants: dict[str, Callable[[Journal], Journal]]) -> dict[str, Any]:
    """Each scenario ``repeat`` times per variant, the variants interleaved (the load of
    a shared machine drifts), each run on a fresh journal after one warm-up run."""
    times: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        for scenario_name, scenario in SCENARIOS.items():
            for r in range(repeat):
                for name, wrap in variants.items():
                    journal = wrap(Journal(Path(tmp) / f"{name}-{scenario_name}-{r}.sqlite"))
                    scenario(journal)  # warm: threads, statement cache, pages
                    wall, worst = scenario(journal)
                    journal.close()
                    walls, slowest = times.setdefault((name, scenario_name), ([], []))
                    walls.append(wall)
                    slowest.append(worst)
    figures: dict[str, Any] = {}
    for (name, scenario_name), (walls, slowest) in times.items():
        figures.setdefault(name, {})[scenario_name] = {
            "wall": summary(walls),
            "latency max": summary(slowest),
        }
    return figures


def before(core: Path, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(core)}
    out = subprocess.run([sys.executable, __file__, "--raw", "--repeat", str(repeat)],
                         env=env, check=True, capture_output=True, text=True).stdout  # fmt: skip
    return dict(json.loads(out))


def report(label: str, figures: dict[str, Any]) -> None:
    for scenario, values in figures.items():
        print(f"{label:>28}  {scenario:<15} wall {values['wall']['median'] * 1e3:7.2f} ms   "
              f"slowest call {values['latency max']['median'] * 1e3:7.2f} ms")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    parser.add_argument("--before-core", type=Path, default=None)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "journal-writes.json")
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 20)
    if args.raw:  # the child of --before-core: this checkout's figures only
        print(json.dumps(measure(repeat, {"this": lambda j: j})["this"]))
        return 0

    results = measure(repeat, {"grouped": lambda j: j, "serialized": serialized})
    if args.before_core is not None:
        git = ["git", "-C", str(args.before_core), "log", "-1", "--format=%h"]
        commit = subprocess.run(git, check=False, capture_output=True, text=True).stdout.strip()
        label = f"before ({commit or args.before_core})"
        results[label] = before(args.before_core, repeat)
    for label, figures in results.items():
        report(label, figures)
    ratios = [
        ratio(
            f"journal writes: {scenario}, {figure}, grouped vs one transaction per write",
            results["grouped"][scenario][figure]["median"]
            / results["serialized"][scenario][figure]["median"],
            baseline="the same writes, each its own autocommit transaction",
        )
        for scenario in ("50 threads x 1", "1 thread x 50")
        for figure in ("wall", "latency max")
    ]
    for r in ratios:
        print(f"{r['name']}: {r['value']:.2f}x")
    write_json(args.out, {"benchmark": "journal-writes", **meta(), "repeat": repeat,
                          "results": results, "ratios": ratios})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
