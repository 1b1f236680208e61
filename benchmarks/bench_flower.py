"""A Flower model Message end to end over fsspec-local vs ``message_to_proto``.

The aggregator pushes a model of 1, 10 and 100 MB through ``TransportGrid``; a
``DatasiteRunner`` in another process decodes it, hands it to a ClientApp that echoes
the content back, and the reply is decoded on the aggregator: the whole path a FedAvg
round takes. The in-run baseline is Flower's own serde on the same message
(``message_to_proto(...).SerializeToString()`` + ``message_from_proto(FromString(...))``),
once per direction, as a Flower-serde round trip would need — without any transport.
Bars (brief §5): 100 MB end to end <= 1.5 s and >= 3x faster than that baseline; peak
RSS per process <= 3x the payload above its baseline (taken once the model is built:
the model itself is the user's).

    python benchmarks/bench_flower.py            # 1, 10, 100 MB, 3 repeats
    python benchmarks/bench_flower.py --quick    # 1, 10, 100 MB, 1 repeat

Writes ``benchmarks/results/flower.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import MB, RESULTS, maxrss, meta, ratio, summary, timed, write_json

AGG, DS = "agg@example.org", "ds@example.org"
APP = "bench"
HERE = Path(__file__).resolve()


def _context(email: str, root: Path) -> Any:
    from syftflwr.plugin import TransportContext

    return TransportContext(
        transport="fsspec-local",
        app_name=APP,
        email=email,
        aggregator=AGG,
        datasites=(DS,),
        options={"root": str(root)},
        state_dir=root.parent / f"state-{email}",
    )


def datasite_child(root: Path) -> None:
    """A DatasiteRunner whose ClientApp echoes the model back (no copy of the arrays)."""
    from flwr.app import Context, Message
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.runner import DatasiteRunner
    from syftflwr_fsspec_local import plugin

    ctx = _context(DS, root)
    events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(ctx), ctx)

    def echo(message: Message, context: Context) -> Message:
        return Message(message.content, reply_to=message)

    runner = DatasiteRunner(events, echo, email=DS, node_id=node_id_for(DS))
    marks: dict[str, int] = {}
    events.on_request("mark", lambda r: (marks.setdefault("baseline", maxrss()), b"")[1])
    events.on_request("rss", lambda r: json.dumps({**marks, "peak": maxrss()}).encode())
    print("ready", flush=True)
    runner.run()


def _ask(rpc: Any, endpoint: str) -> bytes:
    from syftflwr.plugin import Request

    request = Request.new(sender=AGG, recipient=DS, app=APP, endpoint=endpoint, body=b"", ttl=60)
    handle = rpc.send(request)
    (response,) = rpc.wait([handle], timeout=60)
    rpc.forget(handle)
    assert response.ok, response.error_text
    return bytes(response.body)


def aggregator_child(size_mb: int, repeat: int) -> None:
    """One size in a fresh process (clean RSS baseline); prints one JSON line."""
    from bench_serde import model_message
    from flwr.app import Message, RecordDict
    from flwr.common.serde import message_from_proto, message_to_proto
    from flwr.proto.message_pb2 import Message as ProtoMessage
    from syftflwr.flower.grid import TransportGrid
    from syftflwr_fsspec_local import plugin

    base = Path(tempfile.mkdtemp(prefix="bench-flower-"))
    root = base / "root"
    child = subprocess.Popen(
        [sys.executable, str(HERE), "--child", "datasite", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    ctx = _context(AGG, root)
    rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=[DS], max_wait=600)
    (node,) = grid.get_node_ids()
    model = model_message(size_mb)

    def round_trip(content: RecordDict = model.content) -> Message:
        message = Message(content, node, "train", ttl=600)
        (reply,) = grid.send_and_receive([message], timeout=600)
        assert not reply.has_error(), reply.error
        return reply

    round_trip(RecordDict())  # warm-up (small: the RSS peak so far must stay the baseline's)
    _ask(rpc, "mark")
    baseline = maxrss()
    times, reply = timed(round_trip, repeat)
    del reply
    peak = maxrss()
    remote = json.loads(_ask(rpc, "rss"))
    payload = size_mb * MB

    def naive() -> None:
        data = message_to_proto(model).SerializeToString()
        message_from_proto(ProtoMessage.FromString(data))

    naive_times, _ = timed(naive, repeat)
    grid.stop_datasites()
    child.wait(30)
    rpc.close()
    print(
        json.dumps(
            {
                "size_mb": size_mb,
                "end_to_end_s": summary(times),
                "message_to_proto_encode_decode_s": summary(naive_times),
                "aggregator_peak_rss_x_payload": (peak - baseline) / payload,
                "datasite_peak_rss_x_payload": (remote["peak"] - remote["baseline"]) / payload,
            }
        ),
        flush=True,
    )


def run(quick: bool) -> dict[str, Any]:
    """1, 10, 100 MB; quick: 1 repeat, full: 3."""
    repeat = 1 if quick else 3
    rows = []
    print("Flower Message round trip over fsspec-local (two processes) vs message_to_proto")
    for size_mb in (1, 10, 100):
        out = subprocess.run(
            [sys.executable, str(HERE), "--child", "aggregator", str(size_mb), str(repeat)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        e2e = row["end_to_end_s"]["median"]
        naive = row["message_to_proto_encode_decode_s"]["median"]
        row["speedup_vs_flower_serde_round_trip"] = 2 * naive / e2e
        row["speedup_vs_flower_serde_one_way"] = naive / e2e
        rows.append(row)
        print(
            f"  {size_mb:>3} MB end to end {e2e:.3f} s; message_to_proto encode+decode "
            f"{naive:.3f} s one way -> {row['speedup_vs_flower_serde_round_trip']:.1f}x "
            f"(round trip), peak RSS {row['aggregator_peak_rss_x_payload']:.2f}x / "
            f"{row['datasite_peak_rss_x_payload']:.2f}x payload"
        )
    big = rows[-1]
    rss = max(big["aggregator_peak_rss_x_payload"], big["datasite_peak_rss_x_payload"])
    return {
        "benchmark": "flower",
        **meta(),
        "transport": "fsspec-local",
        "repeat": repeat,
        "rows": rows,
        "ratios": [
            ratio(
                "flower: 100 MB Message end to end, s",
                big["end_to_end_s"]["median"],
                baseline="(absolute)",
                bar=1.5,
                absolute=True,
            ),
            ratio(
                "flower: 100 MB Message end to end, speed-up vs message_to_proto round trip",
                big["speedup_vs_flower_serde_round_trip"],
                baseline="message_to_proto encode+decode, both directions, no transport",
                better="higher",
                bar=3.0,
            ),
            ratio(
                "flower: 100 MB Message end to end, speed-up vs message_to_proto one way",
                big["speedup_vs_flower_serde_one_way"],
                baseline="message_to_proto encode+decode, once, no transport",
                better="higher",
            ),
            ratio(
                "flower: 100 MB Message peak RSS per process, x payload",
                rss,
                baseline="RSS once the model is built",
                bar=3.0,
            ),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "flower.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "datasite":
            datasite_child(Path(rest[0]))
        else:
            aggregator_child(int(rest[0]), int(rest[1]))
        return
    write_json(args.out, run(args.quick))


if __name__ == "__main__":
    main()
