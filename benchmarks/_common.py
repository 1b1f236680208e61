"""Helpers every benchmark shares: statistics, peak memory, run metadata, JSON output,
and the ``ratios`` records the suite compares between runs.

A *ratio* is one figure measured against its in-run baseline (the machines are shared
and noisy, so only ratios are compared between runs). Each benchmark's ``run()``
returns ``{"ratios": [ratio(...), ...], ...}``; ``benchmarks/compare.py`` flags a ratio
that got more than 20% worse than the last recorded run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

KB, MB = 1024, 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEED = 20261123
"""Every benchmark draws its payloads from this seed (fixed sizes, fixed seeds)."""

Better = Literal["lower", "higher"]


def maxrss() -> int:
    """Peak resident set size of this process so far, in bytes.

    Linux's ``VmHWM`` (per address space) rather than ``ru_maxrss``, which a child
    inherits from its parent at fork and so hides the child's own growth.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    """Median with min and max (and count): never a single time."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall-clock seconds of ``repeat`` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def ratio(
    name: str,
    value: float,
    *,
    baseline: str,
    better: Better = "lower",
    bar: float | None = None,
    absolute: bool = False,
) -> dict[str, Any]:
    """One comparable figure: ``value`` is measured against ``baseline`` in the same run.

    ``bar``: the brief's goal for this ratio (``value <= bar`` when lower is better,
    ``value >= bar`` when higher is better); ``None`` when the figure is informational.
    ``absolute``: a time, not a ratio (shown against its bar, never compared between
    runs: absolute times move with the machine's load).
    """
    meets = None
    if bar is not None:
        meets = value <= bar if better == "lower" else value >= bar
    return {
        "name": name,
        "value": value,
        "baseline": baseline,
        "better": better,
        "bar": bar,
        "meets_bar": meets,
        "absolute": absolute,
    }


def meta() -> dict[str, Any]:
    """What tells one run's machine and versions from another's."""
    info: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        from importlib.metadata import version

        info["flwr"] = version("flwr")
    except Exception:  # pragma: no cover - flwr is a dependency of core
        info["flwr"] = None
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def runner_benchmark_main(
    argv: list[str] | None,
    *,
    doc: str,
    out: Path,
    run: Callable[[bool, int | None], dict[str, Any]],
    serve: Callable[[Path, Path], None],
    serve_args: tuple[str, str],
) -> int:
    """The command line of a benchmark whose runners are this same script started with
    ``--serve A LOG`` (bench_inbox, bench_shared_state): ``--quick`` is 1,000 sends."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sends")
    parser.add_argument("--sends", type=int, default=None)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--serve", nargs=2, metavar=serve_args, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return 0
    write_json(args.out, run(args.quick, args.sends))
    return 0


def serve_logged(project: Path, email: str, log: Path, endpoint: str,
                 answer: Callable[[bytes], bytes]) -> None:  # fmt: skip
    """A runner process of a runner benchmark: serve ``endpoint`` as ``email``, answer each
    request with ``answer(body)`` and append its id to ``log`` (one file per runner);
    SIGTERM stops it. Prints ``serving`` once it does."""
    import signal
    import threading

    from syftflwr.session import connect

    participant = connect(project, email=email)
    events = participant.events()
    lock = threading.Lock()
    handled = log.open("a", encoding="utf-8", buffering=1)

    def handle(request: Any) -> bytes:
        with lock:
            handled.write(request.id + "\n")
        return answer(bytes(request.body))

    events.on_request(endpoint, handle)
    signal.signal(signal.SIGTERM, lambda *_: events.stop())
    print("serving", flush=True)
    events.run_forever()
    participant.close()


def stop_runners(runners: list[Any], timeout: float) -> None:
    """SIGTERM every runner process, then wait ``timeout`` s for each (killed after)."""
    import signal
    import subprocess

    for runner in runners:
        runner.send_signal(signal.SIGTERM)
    for runner in runners:
        try:
            runner.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            runner.kill()


def serve_until_killed(runners: list[Any]) -> None:
    """Run each DatasiteRunner in a thread of this child process, print ``ready`` for
    the parent, and serve until the parent kills the process."""
    import threading

    threads = [threading.Thread(target=r.run, name=r.email, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join()
