"""Serde throughput: syftflwr's Flower-message encoding vs ``message_to_proto``.

Both produce the same bytes (checked here on every size, and in tests/flower); the
benchmark measures how fast. Each figure is the median of ``--repeat`` runs, with min
and max, next to the in-run baseline (Flower's own path) and their ratio — these
machines are shared and noisy, so ratios are what to compare between runs.

    python benchmarks/bench_serde.py             # 1, 10, 100 MB, 5 repeats
    python benchmarks/bench_serde.py --quick     # 1, 10 MB, 3 repeats

Writes ``benchmarks/results/serde.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import numpy as np
from _common import MB, RESULTS, SEED, meta, ratio, timed, write_json
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from google.protobuf.internal import api_implementation
from syftflwr.flower import compat
from syftflwr.flower.serde import decode_message, encode_message


def model_message(size_mb: int, seed: int = SEED) -> Message:
    """A model of ``size_mb`` MiB split like a small network: a few large, many small."""
    rng = np.random.default_rng(seed)
    total = size_mb * MB // 4  # float32 elements
    big = [
        rng.random(total // 2, dtype=np.float32),
        rng.random(total // 2 - 1000, dtype=np.float32),
    ]
    small = [rng.random(100, dtype=np.float32) for _ in range(10)]
    compat.set_task_identity(1)
    message = Message(
        RecordDict({"arrays": ArrayRecord(big + small), "config": ConfigRecord({"lr": 0.1})}),
        2**40 + 3,
        "train",
    )
    compat.set_message_id(message, "bench0000000001")
    return message


def stats(times: list[float], size: int) -> dict[str, float]:
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "mb_per_s": size / MB / median if median else float("inf"),
    }


def bench(size_mb: int, repeat: int) -> dict[str, Any]:
    message = model_message(size_mb)
    ref_enc_t, ref_bytes = timed(lambda: message_to_proto(message).SerializeToString(), repeat)
    our_enc_t, our_bytes = timed(lambda: encode_message(message), repeat)
    if ref_bytes != our_bytes:
        raise SystemExit(f"{size_mb} MB: encodings differ — this is a bug, not a benchmark")
    size = len(our_bytes)
    ref_dec_t, _ = timed(lambda: message_from_proto(ProtoMessage.FromString(ref_bytes)), repeat)
    our_dec_t, _ = timed(lambda: decode_message(memoryview(our_bytes)), repeat)
    row = {
        "size_mb": size_mb,
        "bytes": size,
        "encode": {"flower": stats(ref_enc_t, size), "syftflwr": stats(our_enc_t, size)},
        "decode": {"flower": stats(ref_dec_t, size), "syftflwr": stats(our_dec_t, size)},
    }
    for op in ("encode", "decode"):
        row[op]["speedup"] = row[op]["flower"]["median_s"] / row[op]["syftflwr"]["median_s"]
    return row


def run(quick: bool, sizes: list[int] | None = None, repeat: int | None = None) -> dict[str, Any]:
    """Encode/decode figures per size; quick: 1 and 10 MiB, 3 repeats."""
    sizes = sizes or ([1, 10] if quick else [1, 10, 100])
    repeat = repeat or (3 if quick else 5)
    rows = []
    print(f"{'size':>6} {'op':>7} {'flower MB/s':>12} {'syftflwr MB/s':>14} {'speedup':>8}")
    for size_mb in sizes:
        row = bench(size_mb, repeat)
        rows.append(row)
        for op in ("encode", "decode"):
            r = row[op]
            print(
                f"{size_mb:>4}MB {op:>7} {r['flower']['mb_per_s']:>12.0f} "
                f"{r['syftflwr']['mb_per_s']:>14.0f} {r['speedup']:>7.1f}x"
            )
    largest = rows[-1]
    size = largest["size_mb"]
    return {
        "benchmark": "serde",
        **meta(),
        "protobuf_backend": api_implementation.Type(),
        "repeat": repeat,
        "rows": rows,
        "ratios": [
            ratio(
                f"serde: encode {size} MB, speed-up",
                largest["encode"]["speedup"],
                baseline="message_to_proto().SerializeToString()",
                better="higher",
                bar=3.0,
            ),
            ratio(
                f"serde: decode {size} MB, speed-up",
                largest["decode"]["speedup"],
                baseline="message_from_proto(FromString())",
                better="higher",
            ),
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="sizes in MiB")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="1 and 10 MiB, 3 repeats")
    parser.add_argument("--out", type=Path, default=RESULTS / "serde.json")
    args = parser.parse_args(argv)
    write_json(args.out, run(args.quick, args.sizes, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
