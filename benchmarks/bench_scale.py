"""Scale: 10, 50 (and 100) datasites on one machine over fsspec-local.

All datasites run as threads of ONE child process (one DatasiteRunner each, sharing the
process's single file watcher), the aggregator is this process with a ``TransportGrid``.
Each round sends a small model to every datasite and collects every reply. Measured per
round: wall time, and the aggregator's CPU time (``time.process_time``) per message.
Bar (brief §5): a round completes, and the aggregator's cost per message does not grow
with the number of datasites (no listing of everything per poll): the ratio of CPU per
message at the largest federation vs at 10 datasites stays near 1 (<= 1.5 allows noise).

    python benchmarks/bench_scale.py            # 10, 50, 100 datasites, 5 rounds each
    python benchmarks/bench_scale.py --quick    # 10, 50 datasites, 3 rounds each

Writes ``benchmarks/results/scale.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import RESULTS, SEED, meta, ratio, serve_until_killed, summary, write_json

AGG = "agg@example.org"
APP = "bench"
HERE = Path(__file__).resolve()
MODEL_FLOATS = 2500  # a 10 KB model: the cost measured is per message, not per byte


def emails(n: int) -> tuple[str, ...]:
    return tuple(f"ds{i:03d}@example.org" for i in range(n))


def _context(email: str, root: Path, datasites: tuple[str, ...]) -> Any:
    from syftflwr.plugin import TransportContext

    return TransportContext(
        transport="fsspec-local",
        app_name=APP,
        email=email,
        aggregator=AGG,
        datasites=datasites,
        options={"root": str(root)},
        state_dir=root.parent / f"state-{email}",
    )


def datasites_child(root: Path, n: int) -> None:
    """``n`` DatasiteRunners in threads of this one process; each adds 1 to the model."""
    from flwr.app import ArrayRecord, Context, Message, RecordDict
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.runner import DatasiteRunner
    from syftflwr_fsspec_local import plugin

    def train(message: Message, context: Context) -> Message:
        arrays = message.content["arrays"].to_numpy_ndarrays()  # type: ignore[union-attr]
        content = RecordDict({"arrays": ArrayRecord([a + 1 for a in arrays])})
        return Message(content, reply_to=message)

    everyone = emails(n)
    runners = []
    for email in everyone:
        ctx = _context(email, root, everyone)
        events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(ctx), ctx)
        runners.append(DatasiteRunner(events, train, email=email, node_id=node_id_for(email)))
    serve_until_killed(runners)


def federation(n: int, rounds: int) -> dict[str, Any]:
    import numpy as np
    from flwr.app import ArrayRecord, Message, RecordDict
    from syftflwr.flower.grid import TransportGrid
    from syftflwr_fsspec_local import plugin

    everyone = emails(n)
    root = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-")) / "root"
    child = subprocess.Popen(
        [sys.executable, str(HERE), "--child", str(root), str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    ctx = _context(AGG, root, everyone)
    rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=everyone, max_wait=300)
    model = np.random.default_rng(SEED).random(MODEL_FLOATS, dtype=np.float32)

    def one_round() -> tuple[float, float]:
        content = RecordDict({"arrays": ArrayRecord([model])})
        messages = [Message(content, node, "train", ttl=300) for node in grid.get_node_ids()]
        wall, cpu = time.perf_counter(), time.process_time()
        replies = list(grid.send_and_receive(messages, timeout=300))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        failed = [r for r in replies if r.has_error()]
        assert len(replies) == n and not failed, f"{len(replies)}/{n} replies, {failed[:1]}"
        return wall, cpu

    one_round()  # warm-up: every datasite's first request creates its folders and watches
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = one_round()
        walls.append(wall)
        cpus.append(cpu / n)
    grid.stop_datasites()
    child.wait(60)
    rpc.close()
    return {
        "datasites": n,
        "round_s": summary(walls),
        "aggregator_cpu_per_message_s": summary(cpus),
        "round_s_per_datasite": summary([w / n for w in walls]),
    }


def run(quick: bool) -> dict[str, Any]:
    """quick: 10 and 50 datasites, 3 rounds; full: 10, 50 and 100, 5 rounds."""
    sizes, rounds = ([10, 50], 3) if quick else ([10, 50, 100], 5)
    print(f"scale over fsspec-local: {sizes} datasites in one process, {rounds} rounds each")
    rows = []
    for n in sizes:
        row = federation(n, rounds)
        rows.append(row)
        print(
            f"  {n:>4} datasites: round {row['round_s']['median'] * 1e3:.0f} ms, aggregator "
            f"CPU {row['aggregator_cpu_per_message_s']['median'] * 1e3:.2f} ms/message"
        )
    first, last = rows[0], rows[-1]
    growth = (
        last["aggregator_cpu_per_message_s"]["median"]
        / first["aggregator_cpu_per_message_s"]["median"]
    )
    time_growth = last["round_s_per_datasite"]["median"] / first["round_s_per_datasite"]["median"]
    return {
        "benchmark": "scale",
        **meta(),
        "transport": "fsspec-local",
        "rounds": rounds,
        "model_bytes": MODEL_FLOATS * 4,
        "rows": rows,
        "ratios": [
            ratio(
                f"scale: aggregator CPU per message, {last['datasites']} vs "
                f"{first['datasites']} datasites",
                growth,
                baseline=f"{first['datasites']} datasites",
                bar=1.5,
            ),
            ratio(
                f"scale: round time per datasite, {last['datasites']} vs "
                f"{first['datasites']} datasites",
                time_growth,
                baseline=f"{first['datasites']} datasites",
            ),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        datasites_child(Path(args.child[0]), int(args.child[1]))
        return
    write_json(args.out, run(args.quick))


if __name__ == "__main__":
    main()
