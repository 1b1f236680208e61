"""Broadcast: bytes the aggregator writes to storage per phase, one model to N datasites.

Participants are connected as ``syftflwr run`` connects them (fsspec-local on a temp
dir, inotify, encryption on). The aggregator's storage is wrapped to count every byte
it writes (requests and blobs). One phase is one ``send_and_receive`` of a fresh model
(one ``ArrayRecord`` object for every message, as Flower's strategies do); the *reuse*
phase then sends the same object again with another config (``evaluate(r)`` ->
``train(r+1)``). *before*: ``blob_threshold`` huge (one sealed copy per datasite, the
path of transports that cannot share objects); *after*: the default, one shared blob.

* N = 2, 10: full round trip, every datasite a ``DatasiteRunner`` thread of one child
  process (each reads the model and answers with a checksum of it);
* N = 50: the send phase only; the recipients are published keys, not processes (the
  *before* copies are pushed 10 at a time, which writes the same bytes with less memory).

Bar (issue 20): after <= 1.05 x model + N x 64 KiB per phase.

    python benchmarks/bench_broadcast.py            # 100 MB model
    python benchmarks/bench_broadcast.py --quick    # 10 MB model, N = 2, 5, 10

Writes ``benchmarks/results/broadcast.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import MB, RESULTS, SEED, meta, ratio, serve_until_killed, write_json

AGG = "agg@bench.org"
APP = "benchbroadcast"
HERE = Path(__file__).resolve()
HUGE = 1 << 62
"""``blob_threshold`` of the *before* runs: no ArrayRecord is that large."""
PER_MESSAGE = 64 * 1024
"""The bar's allowance per recipient (its own small message)."""
SEND_BATCH = 10


def emails(n: int) -> tuple[str, ...]:
    return tuple(f"ds{i:03d}@bench.org" for i in range(n))


def write_project(workdir: Path, n: int) -> Path:
    project = workdir / "app"
    project.mkdir(parents=True, exist_ok=True)
    datasites = ", ".join(f'"{e}"' for e in emails(n))
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "bench-broadcast"\n\n[tool.syftflwr]\napp_name = "{APP}"\n'
        f'aggregator = "{AGG}"\ndatasites = [{datasites}]\ntransport = "fsspec-local"\n'
    )
    return project


def connect_as(workdir: Path, email: str) -> Any:
    from syftflwr.session import connect

    env = {
        "SYFTFLWR_STATE_DIR": str(workdir / "state" / email),
        "SYFTFLWR_FSSPEC_LOCAL_ROOT": str(workdir / "shared"),
        "SYFTFLWR_HOME": str(workdir / "home"),
    }
    return connect(workdir / "app", email=email, env=env)


def checksum_app(message: Any, context: Any) -> Any:
    """What a datasite answers: a checksum of the model it got (the runner read it)."""
    from flwr.app import Message, MetricRecord, RecordDict

    (array,) = message.content["arrays"].values()
    data = array.numpy()
    total = float(data[::4096].sum(dtype="float64"))
    return Message(RecordDict({"m": MetricRecord({"checksum": total})}), reply_to=message)


def datasites_child(workdir: Path, n: int) -> None:
    """``n`` DatasiteRunners in threads of this one process (sealed roles)."""
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.runner import DatasiteRunner

    serve_until_killed([
        DatasiteRunner(connect_as(workdir, email).events(), checksum_app, email=email,
                       node_id=node_id_for(email))
        for email in emails(n)
    ])  # fmt: skip


class Counter:
    """Bytes the aggregator's storage wrote, requests and blobs apart."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blobs = 0
        self.messages = 0

    def add(self, path: str, size: int) -> None:
        with self.lock:
            if "syftflwr_blobs_" in path:
                self.blobs += size
            else:
                self.messages += size

    @property
    def total(self) -> int:
        return self.blobs + self.messages


def counted_rpc(participant: Any, counter: Counter) -> Any:
    """The aggregator's RPC role, its storage counting what it writes."""
    from syftflwr.plugin import StorageWrapper, total_size

    class Counting(StorageWrapper):
        def put_if_absent(self, path: str, parts: Sequence[Any]) -> bool:
            counter.add(path, total_size(parts))
            return bool(self.inner.put_if_absent(path, parts))

        def put(self, path: str, parts: Sequence[Any]) -> None:
            counter.add(path, total_size(parts))
            self.inner.put(path, parts)

    rpc = participant.rpc()
    mailbox = rpc.inner  # the sealed role wraps the transport's MailboxRPC
    mailbox.storage = Counting(mailbox.storage)
    return rpc


def model_record(size: int) -> Any:
    import numpy as np
    from flwr.app import Array, ArrayRecord

    values = np.random.default_rng(SEED).random(size // 4, dtype=np.float32)
    return ArrayRecord({"w": Array(values)}), float(values[::4096].sum(dtype="float64"))


def phase(grid: Any, record: Any, kind: str, server_round: int, to: Sequence[int],
          counter: Counter, *, wait: bool, batch: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One broadcast phase: bytes written (requests, blobs) and seconds."""
    from flwr.app import ConfigRecord, Message, RecordDict

    content = RecordDict({"config": ConfigRecord({"server-round": server_round}),
                          "arrays": record})  # fmt: skip
    before = (counter.messages, counter.blobs)
    started = time.perf_counter()
    replies: list[Any] = []
    step = batch or len(to)
    for i in range(0, len(to), step):
        messages = [Message(content, node, kind, ttl=600) for node in to[i : i + step]]
        if wait:
            replies += list(grid.send_and_receive(messages, timeout=600))
        else:
            grid.push_messages(messages)
    seconds = time.perf_counter() - started
    return {
        "message_bytes": counter.messages - before[0],
        "blob_bytes": counter.blobs - before[1],
        "bytes": counter.messages - before[0] + counter.blobs - before[1],
        "seconds": seconds,
        "replies": replies,
    }


def federation(n: int, size: int, *, round_trip: bool) -> dict[str, Any]:
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.serde import array_record_parts

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-broadcast-{n}-"))
    write_project(workdir, n)
    child = None
    if round_trip:
        child = subprocess.Popen([sys.executable, str(HERE), "--child", str(workdir), str(n)],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    else:  # recipients are keys: each datasite publishes its key once, nothing serves
        for email in emails(n):
            connect_as(workdir, email).close()
    aggregator = connect_as(workdir, AGG)
    assert aggregator.capabilities.shares_objects and aggregator.encryption == "core"
    nodes = [node_id_for(e) for e in emails(n)]
    row: dict[str, Any] = {"datasites": n, "round_trip": round_trip}
    try:
        for mode, threshold in (("before", HUGE), ("after", 1 << 20)):
            counter = Counter()
            rpc = counted_rpc(aggregator, counter)
            grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=emails(n),
                                 max_wait=600, blob_threshold=threshold)  # fmt: skip
            record, expected = model_record(size)
            row["model_bytes"] = array_record_parts(record)[1]
            batch = SEND_BATCH if mode == "before" and not round_trip else None
            first = phase(grid, record, "evaluate", 1, nodes, counter, wait=round_trip,
                          batch=batch)  # fmt: skip
            reuse = phase(grid, record, "train", 2, nodes, counter, wait=round_trip,
                          batch=batch)  # fmt: skip
            for result in (first, reuse):
                replies = result.pop("replies")
                if round_trip:
                    sums = [r.content["m"]["checksum"] for r in replies if not r.has_error()]
                    assert sums == [expected] * n, f"{mode}: {len(sums)}/{n} correct replies"
            grid.close()
            row[mode] = {"phase": first, "reuse": reuse}
            print(f"  N={n:>3} {mode:>6}: {first['bytes'] / MB:8.1f} MB written per phase "
                  f"({first['blob_bytes'] / MB:.1f} MB blobs), reuse phase "
                  f"{reuse['bytes'] / MB:.2f} MB, {first['seconds']:.2f} s",
                  flush=True)  # fmt: skip
            del record
    finally:
        aggregator.close()
        if child is not None:
            child.terminate()
            child.wait(60)
        shutil.rmtree(workdir, ignore_errors=True)
    model = row["model_bytes"]
    row["bar_bytes"] = int(1.05 * model + n * PER_MESSAGE)
    row["after_vs_model"] = row["after"]["phase"]["bytes"] / model
    row["before_vs_model"] = row["before"]["phase"]["bytes"] / model
    return row


def run(quick: bool) -> dict[str, Any]:
    size = 10 * MB if quick else 100 * MB
    plan = [(2, True), (5, True), (10, False)] if quick else [(2, True), (10, True), (50, False)]
    print(f"broadcast over fsspec-local, a {size // MB} MB model, encryption on")
    rows = [federation(n, size, round_trip=trip) for n, trip in plan]
    ratios = []
    for row in rows:
        n, model = row["datasites"], row["model_bytes"]
        scope = "round trip" if row["round_trip"] else "send phase"
        ratios.append(ratio(
            f"broadcast: aggregator bytes per phase / model, N={n} ({scope})",
            row["after_vs_model"], baseline="the model's size",
            bar=1.05 + n * PER_MESSAGE / model,
        ))  # fmt: skip
        ratios.append(ratio(
            f"broadcast: aggregator bytes per phase, one copy per datasite / shared, N={n}",
            row["before"]["phase"]["bytes"] / row["after"]["phase"]["bytes"],
            baseline="shared blob", better="higher",
        ))  # fmt: skip
    return {
        "benchmark": "broadcast",
        **meta(),
        "transport": "fsspec-local",
        "encryption": "core",
        "model_mb": size // MB,
        "per_message_allowance": PER_MESSAGE,
        "rows": rows,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "broadcast.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        datasites_child(Path(args.child[0]), int(args.child[1]))
        return
    write_json(args.out, run(args.quick))


if __name__ == "__main__":
    main()
