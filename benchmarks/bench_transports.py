"""Every installed transport at the transport level (opaque bytes), both roles in one
process, next to the raw cost of the same bytes on the local disk.

* 1 KB request -> response, p50/p95, vs the raw cost of writing the file (tmp +
  ``os.replace``) and reading it back, twice (request + response).
* 1, 10, 100 MB round trips vs raw write+read twice; peak RSS of the process (it holds
  both sides) above its post-import baseline, as a multiple of the payload.

Transports measured: those in :data:`SETUPS` that the registry lists (a transport that
is not installed is skipped and reported so); the two-process figures of fsspec-local
are ``bench_fsspec_local.py``'s.

    python benchmarks/bench_transports.py            # 500 x 1 KB, 3 x 1/10/100 MB
    python benchmarks/bench_transports.py --quick    # 200 x 1 KB, 1 x 1/10/100 MB

Writes ``benchmarks/results/transports.json`` (or ``--out``).
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

from _common import KB, MB, RESULTS, maxrss, meta, percentile, ratio, summary, write_json

AGG, DS = "agg@example.org", "ds@example.org"
HERE = Path(__file__).resolve()
SIZES_MB = (1, 10, 100)

SETUPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "memory": lambda base: {"namespace": f"bench-{uuid.uuid4().hex}"},
    "fsspec-local": lambda base: {"root": str(base / "root")},
}
"""Options per transport the suite knows how to set up on one machine."""
PENDING = {
    "gdrive": "Drive figures (API calls per idle poll vs syft-flwr 0.5) are pending (issue 6)",
    "syftbox": "needs flwr<=1.26.1 (its own environment); not measured by this suite yet",
}


def raw_1kb(n: int) -> dict[str, float]:
    """Write 1 KB with tmp + os.replace and read it back, twice: the least a file
    transport does for a request and its response."""
    folder = Path(tempfile.mkdtemp(prefix="raw1k-"))
    body = os.urandom(KB)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        for k in range(2):
            tmp, final = folder / f"{k}.tmp", folder / f"{k}.msg"
            tmp.write_bytes(body)
            os.replace(tmp, final)  # noqa: PTH105 - the raw floor is exactly this call
            final.read_bytes()
            final.unlink()
        times.append(time.perf_counter() - t0)
    return {"p50_ms": percentile(times, 0.5) * 1e3, "p95_ms": percentile(times, 0.95) * 1e3}


def transport_child(name: str, n: int, repeat: int) -> None:
    """Both roles of ``name`` in this fresh process; prints one JSON line."""
    from syftflwr.plugin import Request, TransportContext
    from syftflwr.registry import get_registry

    transport = get_registry().load(name)
    base = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    options = SETUPS[name](base)

    def context(email: str) -> TransportContext:
        return TransportContext(
            transport=name,
            app_name="bench",
            email=email,
            aggregator=AGG,
            datasites=(DS,),
            options=options,
            state_dir=base / f"state-{email}",
        )

    ds_ctx, agg_ctx = context(DS), context(AGG)
    events = transport.make_events(transport.make_client(ds_ctx), ds_ctx)
    events.on_request("echo", lambda r: r.body)
    thread = threading.Thread(target=events.run_forever, daemon=True)
    thread.start()
    rpc = transport.make_rpc(transport.make_client(agg_ctx), agg_ctx)

    def ask(body: bytes) -> None:
        request = Request.new(
            sender=AGG, recipient=DS, app="bench", endpoint="echo", body=body, ttl=600
        )
        handle = rpc.send(request)
        (response,) = rpc.wait([handle], timeout=600)
        assert response.ok and response.body_size == len(body), response.error_text
        rpc.forget(handle)

    small = os.urandom(KB)
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        ask(small)
        if i >= 20:
            times.append(time.perf_counter() - t0)
    result: dict[str, Any] = {
        "one_kb": {"p50_ms": percentile(times, 0.5) * 1e3, "p95_ms": percentile(times, 0.95) * 1e3},
        "large": [],
    }
    baseline = maxrss()
    for size_mb in SIZES_MB:
        body = os.urandom(size_mb * MB)
        large = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            ask(body)
            large.append(time.perf_counter() - t0)
        peak = maxrss()
        del body
        result["large"].append(
            {
                "size_mb": size_mb,
                "round_trip_s": summary(large),
                "peak_rss_x_payload": (peak - baseline) / (size_mb * MB),
            }
        )
    events.stop()
    thread.join(30)
    rpc.close()
    print(json.dumps(result), flush=True)


def run(quick: bool) -> dict[str, Any]:
    from bench_fsspec_local import bench_raw
    from syftflwr.registry import get_registry

    n, repeat = (200, 1) if quick else (500, 3)
    installed = set(get_registry().names())
    skipped = {
        name: f"not installed; {why}" for name, why in PENDING.items() if name not in installed
    }
    skipped.update({name: why for name, why in PENDING.items() if name in installed})
    raw_small = raw_1kb(n)
    raw_large = {s: bench_raw(s * MB, max(repeat, 3)) for s in SIZES_MB}
    print(
        f"transport level, one process: raw 1 KB write+read twice p50 {raw_small['p50_ms']:.3f} ms"
    )
    results: dict[str, Any] = {}
    ratios = []
    for name in (t for t in SETUPS if t in installed):
        out = subprocess.run(
            [sys.executable, str(HERE), "--child", name, str(n), str(repeat)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["one_kb"]["p50_vs_raw"] = row["one_kb"]["p50_ms"] / raw_small["p50_ms"]
        for large in row["large"]:
            raw = raw_large[large["size_mb"]]["median_s"]
            large["ratio_vs_raw"] = large["round_trip_s"]["median"] / raw
        results[name] = row
        one = row["one_kb"]
        print(
            f"  {name:<14} 1 KB p50 {one['p50_ms']:.3f} ms p95 {one['p95_ms']:.3f} ms "
            f"({one['p50_vs_raw']:.1f}x raw); "
            + ", ".join(
                f"{x['size_mb']} MB {x['round_trip_s']['median']:.3f} s "
                f"({x['ratio_vs_raw']:.2f}x raw, RSS {x['peak_rss_x_payload']:.2f}x)"
                for x in row["large"]
            )
        )
        big = row["large"][-1]
        ratios += [
            ratio(
                f"transports: {name} 1 KB p50 vs raw write+read twice",
                one["p50_vs_raw"],
                baseline="tmp + os.replace + read, twice",
            ),
            ratio(
                f"transports: {name} 100 MB round trip vs raw write+read twice",
                big["ratio_vs_raw"],
                baseline="page-cache write+read twice",
                bar=2.0,
            ),
            ratio(
                f"transports: {name} 100 MB peak RSS (both sides, one process), x payload",
                big["peak_rss_x_payload"],
                baseline="post-import RSS",
            ),
        ]
    for name, why in skipped.items():
        print(f"  {name:<14} skipped: {why}")
    return {
        "benchmark": "transports",
        **meta(),
        "n": n,
        "repeat": repeat,
        "raw": {
            "one_kb": raw_small,
            "large": {str(s): v for s, v in raw_large.items()},
        },
        "results": results,
        "skipped": skipped,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "transports.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        transport_child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    write_json(args.out, run(args.quick))


if __name__ == "__main__":
    main()
