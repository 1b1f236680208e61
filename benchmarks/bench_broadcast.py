"""Broadcast: bytes the aggregator writes to storage per phase, one model to N datasites,
on fsspec-local, GCS (fake-gcs-server) and the loopback Drive server.

Participants are connected as ``syftflwr run`` connects them (encryption on). What the
aggregator writes is counted in its storage layer (requests and blobs apart) and, on GCS
and Drive, at the store itself (``_broadcast_stores``: a counting HTTP proxy in front of
fake-gcs-server; the Drive server's own per-user counters). One phase is one
``send_and_receive`` of a fresh model (one ``ArrayRecord`` object for every message, as
Flower's strategies do); the *reuse* phase then sends the same object again with another
config (``evaluate(r)`` -> ``train(r+1)``). *before*: ``blob_threshold`` huge (one sealed
copy per datasite, the path of transports that cannot share objects); *after*: the
default, one shared blob. A warm-up phase (a 1 MiB model) first makes the run's first
contacts (on Drive: each datasite's outbox folder and share, the app's blob folders),
which a run pays once, not per phase.

* N = 2, 10: full round trip, every datasite a ``DatasiteRunner`` thread of one child
  process (each reads the model and answers with a checksum of it);
* N = 50: the send phase only; the recipients are published keys, not processes (the
  *before* copies are pushed 10 at a time, which writes the same bytes with less memory).
* Drive only, *timed*: the send phase at N = 10 and 50 on a Drive server with an uplink
  cap and a per-request latency (``--upload-rate``, ``--latency``), against one plain
  upload of the model with the real client (the reference), median of 3 each.

Bars (issue 20): after <= 1.05 x model + N x 64 KiB per phase; on Drive, the model's
API calls per phase <= 3 + N and the timed send phase <= 1.2 x the reference.

    python benchmarks/bench_broadcast.py                      # fsspec-local, 100 MB model
    python benchmarks/bench_broadcast.py --transport gcs      # needs the gcs test extra
    python benchmarks/bench_broadcast.py --transport gdrive   # needs the gdrive plugin
    python benchmarks/bench_broadcast.py --quick              # 10 MB model, N = 2, 5, 10

Writes ``benchmarks/results/broadcast.json`` (``broadcast-gcs.json``,
``broadcast-gdrive.json``; or ``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _broadcast_stores import (
    STORES,
    Store,
    delta,
    gcs_store,
    gdrive_store,
    local_store,
    plain_drive_upload,
    upload_bytes,
)
from _common import MB, RESULTS, SEED, meta, ratio, serve_until_killed, write_json

AGG = "agg@bench.org"
APP = "benchbroadcast"
HERE = Path(__file__).resolve()
HUGE = 1 << 62
"""``blob_threshold`` of the *before* runs: no ArrayRecord is that large."""
PER_MESSAGE = 64 * 1024
"""The bar's allowance per recipient (its own small message)."""
SEND_BATCH = 10
TIMED_REPEATS = 3
WARM_UP = 1 << 20
"""The warm-up model: at ``blob_threshold``, so *after* makes the run's first contacts
(outbox folders, shares, the app's blob folders) before the measured phases."""
BLOB_METHODS = ("files.create", "files.upload", "permissions.create")
"""The Drive calls that store a blob: its folder and upload session (``files.create``),
the session's chunk requests (``files.upload``), the readers' grants. A phase's other
extra calls are ``files.list`` of the aggregator's changes feed reacting to its own
writes (more changes, more listings; they vary with timing)."""
DRIVE_CHUNK = 8 * MB
"""The gdrive transport's default ``transfer_chunk_size``: larger uploads are resumable
(a blob, and the reference, in one request: ``syftflwr_gdrive.storage.blob_request``)."""


def emails(n: int) -> tuple[str, ...]:
    return tuple(f"ds{i:03d}@bench.org" for i in range(n))


def write_project(workdir: Path, n: int, store: Store) -> None:
    project = workdir / "app"
    project.mkdir(parents=True, exist_ok=True)
    datasites = ", ".join(f'"{e}"' for e in emails(n))
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "bench-broadcast"\n\n[tool.syftflwr]\napp_name = "{APP}"\n'
        f'aggregator = "{AGG}"\ndatasites = [{datasites}]\ntransport = "{store.transport}"\n'
    )
    env = {AGG: store.aggregator_env, "*": store.env}
    (workdir / "env.json").write_text(json.dumps(env))


def connect_as(workdir: Path, email: str) -> Any:
    from syftflwr.session import connect

    stored = json.loads((workdir / "env.json").read_text())
    env = {
        **stored["*"],
        **stored.get(email, {}),
        "SYFTFLWR_STATE_DIR": str(workdir / "state" / email),
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

        def put_new(self, path: str, parts: Sequence[Any]) -> None:  # PutsNew, when offered
            counter.add(path, total_size(parts))
            self.inner.put_new(path, parts)

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
          counter: Counter, store: Store, *, wait: bool,
          batch: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One broadcast phase: bytes written (requests, blobs; at the store too) and seconds."""
    from flwr.app import ConfigRecord, Message, RecordDict

    content = RecordDict({"config": ConfigRecord({"server-round": server_round}),
                          "arrays": record})  # fmt: skip
    at_store = store.snapshot()
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
    out = {
        "message_bytes": counter.messages - before[0],
        "blob_bytes": counter.blobs - before[1],
        "bytes": counter.messages - before[0] + counter.blobs - before[1],
        "seconds": seconds,
        "replies": replies,
    }
    if store.counters is not None:
        out["store"] = counts = delta(store.snapshot(), at_store)
        out.update(store_figures(store.name, counts))
        assert out["store_bytes"] >= out["bytes"], f"{store.name}: writes bypassed the count"
    return out


def store_figures(name: str, counts: dict[str, int]) -> dict[str, int]:
    """The store's view of a phase: ``store_bytes`` (what the aggregator sent to be
    written, the bar's figure) and, on Drive, API calls (changes-feed polls apart: they
    run on a timer, not per phase) and HTTP requests."""
    if name == "gcs":
        requests = sum(v for k, v in counts.items() if k.startswith("requests."))
        return {"store_bytes": upload_bytes(counts), "http_requests": requests}
    calls = {k.removeprefix("calls."): v for k, v in counts.items() if k.startswith("calls.")}
    polls = calls.pop("changes.list", 0)
    return {
        "store_bytes": counts.get("request_bytes", 0),
        "media_bytes": counts.get("media_bytes", 0),
        "api_calls": sum(calls.values()),
        "feed_polls": polls,
        "http_requests": counts.get("http_requests", 0),
    }


@contextmanager
def opened_store(name: str, workdir: Path, n: int, *, latency: float = 0.0,
                 upload_rate: float | None = None) -> Iterator[Store]:  # fmt: skip
    opened: Any = (
        gcs_store() if name == "gcs"
        else gdrive_store(AGG, emails(n), workdir, latency=latency, upload_rate=upload_rate)
        if name == "gdrive" else local_store(workdir)
    )  # fmt: skip
    with opened as store:
        try:
            yield store
        finally:  # a process shares a transport's sessions: stop them while the store runs
            plugin = "syftflwr_gdrive" if name == "gdrive" else "syftflwr_fsspec_local"
            importlib.import_module(f"{plugin}.plugin").kit.forget()


def publish_keys(workdir: Path, n: int) -> None:
    """Recipients as keys: each datasite connects once (publishing its key) and leaves."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda e: connect_as(workdir, e).close(), emails(n)))


def federation(store_name: str, n: int, size: int, *, round_trip: bool,
               network: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """One row: a fresh store and federation of ``n`` datasites, the *before* and *after*
    phases; ``network`` (Drive: ``latency``, ``upload_rate``): the timed send phase."""
    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.serde import array_record_parts

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-broadcast-{n}-"))
    child = None
    row: dict[str, Any] = {"datasites": n, "round_trip": round_trip, "store": store_name}
    with opened_store(store_name, workdir, n, **(network or {})) as store:
        write_project(workdir, n, store)
        if round_trip:
            child = subprocess.Popen([sys.executable, str(HERE), "--child", str(workdir), str(n)],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        else:
            publish_keys(workdir, n)
        aggregator = connect_as(workdir, AGG)
        assert aggregator.capabilities.shares_objects and aggregator.encryption == "core"
        nodes = [node_id_for(e) for e in emails(n)]
        try:
            if network:
                model = array_record_parts(model_record(size)[0])[1]
                row["network"] = network
                from syftflwr_gdrive.storage import blob_request

                row["reference_s"] = statistics.median(
                    plain_drive_upload(store.extra["url"], store.extra["token"],
                                       os.urandom(model), DRIVE_CHUNK, blob_request(model))
                    for _ in range(TIMED_REPEATS)
                )  # fmt: skip
                row["reference_chunked_s"] = statistics.median(
                    plain_drive_upload(store.extra["url"], store.extra["token"],
                                       os.urandom(model), DRIVE_CHUNK)
                    for _ in range(TIMED_REPEATS)
                )  # fmt: skip
                print(f"  N={n:>3} reference: one plain upload of the model "
                      f"{row['reference_s']:.2f} s (in 8 MiB requests "
                      f"{row['reference_chunked_s']:.2f} s)", flush=True)  # fmt: skip
            # *after* first: *before* leaves N x 100 MB for retention to delete, which
            # would still be deleting during a timed phase that followed it
            for mode, threshold in (("after", 1 << 20), ("before", HUGE)):
                counter = Counter()
                rpc = counted_rpc(aggregator, counter)
                grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=emails(n),
                                     max_wait=600, blob_threshold=threshold)  # fmt: skip
                if not round_trip:  # the recipients are keys: no datasite to hint about
                    grid.liveness = None
                warm = phase(grid, model_record(WARM_UP)[0], "query", 0, nodes, counter,
                             store, wait=round_trip)  # fmt: skip
                record, expected = model_record(size)
                row["model_bytes"] = array_record_parts(record)[1]
                batch = SEND_BATCH if mode == "before" and not round_trip else None
                first = phase(grid, record, "evaluate", 1, nodes, counter, store,
                              wait=round_trip, batch=batch)  # fmt: skip
                reuse = phase(grid, record, "train", 2, nodes, counter, store,
                              wait=round_trip, batch=batch)  # fmt: skip
                for result in (first, reuse):
                    replies = result.pop("replies")
                    if round_trip:
                        sums = [r.content["m"]["checksum"] for r in replies if not r.has_error()]
                        assert sums == [expected] * n, f"{mode}: {len(sums)}/{n} correct replies"
                warm.pop("replies")
                row[mode] = {"warmup": warm, "phase": first, "reuse": reuse}
                if network and mode == "after":  # more fresh models: the median send phase
                    times = [first["seconds"]]
                    for r in range(TIMED_REPEATS - 1):
                        again = phase(grid, model_record(size)[0], "evaluate", 3 + r, nodes,
                                      counter, store, wait=False)  # fmt: skip
                        times.append(again["seconds"])
                    row[mode]["send_s"] = statistics.median(times)
                grid.close()
                store_text = ""
                if "store_bytes" in first:
                    store_text = f", {first['store_bytes'] / MB:.1f} MB at the store"
                if "api_calls" in first:
                    store_text += (f", {first['api_calls']} API calls "
                                   f"(reuse {reuse['api_calls']})")  # fmt: skip
                print(f"  N={n:>3} {mode:>6}: {first['bytes'] / MB:8.1f} MB written per phase "
                      f"({first['blob_bytes'] / MB:.1f} MB blobs){store_text}, reuse phase "
                      f"{reuse['bytes'] / MB:.2f} MB, {first['seconds']:.2f} s",
                      flush=True)  # fmt: skip
                del record
        finally:
            aggregator.close()
            if child is not None:
                child.terminate()
                child.wait(60)
    shutil.rmtree(workdir, ignore_errors=True)
    return finish_row(row)


def written(result: dict[str, Any]) -> int:
    """The bar's figure of a phase: bytes at the store where it counts them, else the
    aggregator's storage layer."""
    return int(result.get("store_bytes", result["bytes"]))


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    model, n = row["model_bytes"], row["datasites"]
    after, before = row["after"], row["before"]
    row["bar_bytes"] = int(1.05 * model + n * PER_MESSAGE)
    row["after_vs_model"] = written(after["phase"]) / model
    row["before_vs_model"] = written(before["phase"]) / model
    if "api_calls" in after["phase"] and not row["round_trip"]:
        # the model's calls: a send phase minus its reuse phase, per method (in a round
        # trip the replies' reads and deletes vary from phase to phase)
        phase, reuse = after["phase"]["store"], after["reuse"]["store"]
        methods = sorted(m for m in {*phase, *reuse} if m.startswith("calls."))
        row["model_calls"] = by_method = {
            m.removeprefix("calls."): phase.get(m, 0) - reuse.get(m, 0)
            for m in methods if m != "calls.changes.list"
        }  # fmt: skip
        row["model_api_calls"] = sum(by_method.values())
        row["blob_api_calls"] = sum(by_method.get(m, 0) for m in BLOB_METHODS)
        row["model_http_requests"] = (after["phase"]["http_requests"]
                                      - after["reuse"]["http_requests"])  # fmt: skip
    if "reference_s" in row:
        row["send_vs_reference"] = after["send_s"] / row["reference_s"]
        row["before_send_vs_reference"] = before["phase"]["seconds"] / row["reference_s"]
    return row


def plan(store: str, quick: bool) -> list[tuple[int, bool, bool]]:
    """``(N, round trip, timed)`` rows of a run."""
    rows = [(2, True, False), (5, True, False), (10, False, False)] if quick else [
        (2, True, False), (10, True, False), (50, False, False)]  # fmt: skip
    if store == "gdrive":  # N = 50's bytes from the timed run (the same phase, capped)
        rows = rows[:2] + ([(10, False, True)] if quick else [(10, False, True), (50, False, True)])
    return rows


def ratios_of(store: str, rows: list[dict[str, Any]], network: dict[str, float]) -> list[Any]:
    """The run's figures against their bars (issue 20)."""
    ratios: list[Any] = []
    at = {"fsspec-local": "", "gcs": " (HTTP bodies)", "gdrive": " (bytes at the server)"}[store]
    name = "broadcast" if store == "fsspec-local" else f"broadcast {store}"  # names as recorded
    for row in rows:
        n, model = row["datasites"], row["model_bytes"]
        scope = "round trip" if row["round_trip"] else "send phase"
        ratios.append(ratio(
            f"{name}: aggregator bytes per phase{at} / model, N={n} ({scope})",
            row["after_vs_model"], baseline="the model's size",
            bar=1.05 + n * PER_MESSAGE / model,
        ))  # fmt: skip
        ratios.append(ratio(
            f"{name}: aggregator bytes per phase, one copy per datasite / shared, N={n}"
            + ("" if store == "fsspec-local" else f" ({scope})"),
            written(row["before"]["phase"]) / written(row["after"]["phase"]),
            baseline="shared blob", better="higher",
        ))  # fmt: skip
        if "blob_api_calls" in row:
            ratios.append(ratio(
                f"broadcast gdrive: Drive API calls storing the model per phase, N={n}",
                row["blob_api_calls"], baseline="(count: folder, upload session and its "
                f"{row['model_calls'].get('files.upload', 0)} upload requests, N grants)",
                bar=3 + n, absolute=True,
            ))  # fmt: skip
        if "send_vs_reference" in row:
            ratios.append(ratio(
                f"broadcast gdrive: send phase / one model upload, N={n}, "
                f"{network['upload_rate'] / 1e6:g} MB/s, {network['latency'] * 1e3:g} ms",
                row["send_vs_reference"], baseline="one plain upload of the model", bar=1.2,
            ))  # fmt: skip
    return ratios


def run(quick: bool, store: str = "fsspec-local", latency: float = 0.05,
        upload_rate: float = 100e6) -> dict[str, Any]:  # fmt: skip
    size = 10 * MB if quick else 100 * MB
    network = {"latency": latency, "upload_rate": upload_rate}
    print(f"broadcast over {store}, a {size // MB} MB model, encryption on")
    rows = [federation(store, n, size, round_trip=trip, network=network if timed else None)
            for n, trip, timed in plan(store, quick)]  # fmt: skip
    ratios = ratios_of(store, rows, network)
    return {
        "benchmark": "broadcast",
        **meta(),
        "transport": store,
        "encryption": "core",
        "model_mb": size // MB,
        "per_message_allowance": PER_MESSAGE,
        "network": network if store == "gdrive" else None,
        "rows": rows,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--transport", choices=STORES, default="fsspec-local")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="Drive timed rows: seconds per HTTP request")  # fmt: skip
    parser.add_argument("--upload-rate", type=float, default=100e6,
                        help="Drive timed rows: the aggregator's uplink, bytes/s")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        datasites_child(Path(args.child[0]), int(args.child[1]))
        return
    name = "broadcast" if args.transport == "fsspec-local" else f"broadcast-{args.transport}"
    write_json(args.out or RESULTS / f"{name}.json",
               run(args.quick, args.transport, args.latency, args.upload_rate))  # fmt: skip


if __name__ == "__main__":
    main()
