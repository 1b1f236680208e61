"""How long the main job takes: ``syftflwr simulate examples/quickstart`` (3 datasites,
3 rounds, each participant a process) from exec to exit, against importing what any
Flower app's process imports.

Bar (issue 16): the median of 5 simulate runs, interleaved with 5 runs of ``python -c
"import flwr.serverapp, flwr.clientapp, sklearn"``, is at most 2.0x the import's median.
The same simulation with every participant spawned anew
(``SYFTFLWR_SIMULATE_START=spawn``: each imports Flower, numpy and the app itself) is
measured too, and each run's time is split into phases from its result document:

* start — exec to the first instruction (the command's imports, keys, starting the
  participants, the ServerApp's initial evaluation);
* first round — its first instruction to its last reply (train + evaluate);
* later rounds — to the last reply of the last round;
* teardown — to the command's exit (stop messages, participants ending, the summary).

    python benchmarks/bench_startup.py            # 5 runs of each
    python benchmarks/bench_startup.py --quick    # 2 runs of each

Bytecode is compiled first, as ``pip install`` leaves it. Writes
``benchmarks/results/startup.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import RESULTS, ROOT, meta, ratio, summary, write_json

QUICKSTART = ROOT / "examples" / "quickstart"
IMPORT = [sys.executable, "-c", "import flwr.serverapp, flwr.clientapp, sklearn"]
SIMULATE = [sys.executable, "-m", "syftflwr", "simulate", str(QUICKSTART), "--json"]
VARIANTS = {"fork server (default)": "auto", "spawned (SYFTFLWR_SIMULATE_START=spawn)": "spawn"}
PHASES = ("start", "first round", "later rounds", "teardown")
BAR = 2.0


def compile_bytecode() -> None:
    """Compile what every process imports, as ``pip install`` leaves it (uv installs
    without bytecode, and PYTHONDONTWRITEBYTECODE=1 keeps Python from writing it: each
    process would then compile Flower and numpy from source, ~0.5 s apiece)."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths |= {str(ROOT / "core"), str(QUICKSTART), *map(str, ROOT.glob("plugins/*/src"))}
    for path in sorted(paths):
        compileall.compile_dir(path, quiet=1, workers=0)


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), **extra)
    return env


def exec_to_exit(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall time of exec, seconds to exit, stdout); fails loudly on a non-zero exit."""
    began = time.time()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[:5]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return began, seconds, done.stdout


def phases(began: float, seconds: float, document: dict[str, Any]) -> dict[str, float]:
    """A run's time split at its first instruction and the last reply of each round."""
    rounds = [r for r in document["rounds"] if r["round"] and r["replies"]]
    first = min(s["sent_at"] for s in rounds[0]["sent"])

    def last_reply(info: dict[str, Any]) -> float:
        return max(r["info"]["sent_at"] + r["elapsed"] for r in info["replies"])

    end_first, end_last = last_reply(rounds[0]), last_reply(rounds[-1])
    return {
        "start": first - began,
        "first round": end_first - first,
        "later rounds": end_last - end_first,
        "teardown": began + seconds - end_last,
    }


def run(quick: bool, repeat: int | None = None) -> dict[str, Any]:
    repeat = repeat or (2 if quick else 5)
    compile_bytecode()
    imports: list[float] = []
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    split: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for i in range(repeat):
            imports.append(exec_to_exit(IMPORT, clean_env(Path(tmp) / "import"))[1])
            for name, method in VARIANTS.items():
                env = clean_env(Path(tmp) / f"{method}-{i}", SYFTFLWR_SIMULATE_START=method)
                began, seconds, stdout = exec_to_exit(SIMULATE, env)
                runs[name].append(seconds)
                split[name].append(phases(began, seconds, json.loads(stdout)))
            print(
                f"  run {i + 1}: import {imports[-1]:.2f}s, "
                + ", ".join(f"{n.split(' (')[0]} {runs[n][-1]:.2f}s" for n in VARIANTS),
                flush=True,
            )
    base = statistics.median(imports)
    report: dict[str, Any] = {
        "benchmark": "startup",
        **meta(),
        "repeat": repeat,
        "import": summary(imports),
        "results": {},
        "ratios": [],
    }
    print(f"quickstart simulate, exec to exit ({repeat} runs each, interleaved)")
    print(f"{'':<42}{'median s':>9}{'min':>7}{'max':>7}{'vs import':>10}")
    print(f"{'import flwr.serverapp, flwr.clientapp, sklearn':<42}{base:>9.2f}")
    for name, values in runs.items():
        stats = summary(values)
        factor = stats["median"] / base
        report["results"][name] = {
            **stats,
            "ratio_vs_import": factor,
            "phases": {p: statistics.median(s[p] for s in split[name]) for p in PHASES},
        }
        print(
            f"{name:<42}{stats['median']:>9.2f}{stats['min']:>7.2f}{stats['max']:>7.2f}"
            f"{factor:>9.2f}x"
        )
        print(
            "    "
            + ", ".join(f"{p} {v:.2f}s" for p, v in report["results"][name]["phases"].items())
        )
        default = VARIANTS[name] == "auto"
        report["ratios"].append(
            ratio(
                f"startup: quickstart simulate, {name}, exec to exit, vs the import",
                factor,
                baseline="python -c 'import flwr.serverapp, flwr.clientapp, sklearn'",
                bar=BAR if default else None,
            )
        )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()
    write_json(args.out, run(args.quick, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
