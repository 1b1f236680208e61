"""Suite results (JSON) -> ``docs/benchmarks.md`` (tables) and ``docs/img/benchmarks.png``.

Everything on the page is generated from ``benchmarks/results/results.json``, so the
docs never disagree with the recorded figures. Regenerate without re-running:

    python benchmarks/report.py                       # default paths
    python benchmarks/report.py RESULTS.json --docs OUT.md --png OUT.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "results.json"
SYFTBOX_RESULTS = ROOT / "plugins" / "syftbox" / "benchmarks" / "results.json"
"""Recorded by the syftbox plugin's own benchmark in its environment (flwr <= 1.26.1,
which this suite's environment cannot share): shown as recorded, never re-measured here."""
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
DEFAULT_PNG = ROOT / "docs" / "img" / "benchmarks.png"
BROADCAST_PNG = "broadcast.png"
"""The broadcast plot, next to the summary plot."""
BROADCAST_STORES = {
    "gcs": ROOT / "benchmarks" / "results" / "broadcast-gcs.json",
    "gdrive": ROOT / "benchmarks" / "results" / "broadcast-gdrive.json",
}
"""Recorded by ``bench_broadcast.py --transport gcs|gdrive`` (they need the gcs test extra
or the gdrive plugin, which the suite's environment does not install): shown as
recorded, next to the suite's own fsspec-local broadcast."""
PENDING = {
    "encryption on vs off": "pending: envelope encryption lands with issue 8",
    "Drive: API calls per idle poll vs syft-flwr 0.5": "pending: the gdrive transport (issue 6)",
}
"""Figures the issue asks for that cannot be measured yet (shown on the page)."""


# ------------------------------------------------------------------ formatting
def dur(seconds: float) -> str:
    """A duration with a unit that keeps 2-3 significant digits."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def spread(stats: dict[str, float]) -> str:
    """``median (min-max)`` of a summary with seconds."""
    return f"{dur(stats['median'])} ({dur(stats['min'])}-{dur(stats['max'])})"


def times(x: float) -> str:
    if x < 0.1:
        return f"{x:.2g}x"
    return f"{x:.2f}x" if x < 10 else f"{x:.0f}x"


def rss_pair(row: dict[str, Any]) -> str:
    """Peak RSS of the aggregator and the datasite process, as multiples of the payload."""
    agg, ds = row["aggregator_peak_rss_x_payload"], row["datasite_peak_rss_x_payload"]
    return f"{times(agg)} / {times(ds)}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(record: dict[str, Any]) -> str:
    bar = record.get("bar")
    if bar is None:
        return "(informational)"
    sign = "≤" if record.get("better", "lower") == "lower" else "≥"
    mark = "✓" if record.get("meets_bar") else "✗"
    return f"{sign} {bar:g} {mark}"


def value_text(record: dict[str, Any]) -> str:
    return f"{record['value']:.3g}" if record.get("absolute") else times(record["value"])


# ------------------------------------------------------------------ sections
def section_bars(results: dict[str, Any]) -> str:
    rows = []
    for name, data in results["benchmarks"].items():
        for record in data.get("ratios", []):
            rows.append([record["name"], value_text(record), record["baseline"], verdict(record)])
        if "error" in data:
            rows.append([f"{name}: failed", "-", "-", data["error"].splitlines()[-1][:120]])
    for data in recorded_broadcasts():  # shown as recorded (not run by the suite)
        for record in data.get("ratios", []):
            rows.append([record["name"] + " (recorded)", value_text(record), record["baseline"],
                         verdict(record)])  # fmt: skip
    intro = (
        "Every figure next to its in-run baseline. A ratio is the figure divided by its "
        "baseline (a speed-up: the baseline divided by the figure); rows marked "
        "(informational) have no bar in the brief."
    )
    return (
        "## Summary: the bars\n\n"
        + intro
        + "\n\n"
        + table(["figure", "value", "in-run baseline", "bar"], rows)
    )


def section_regressions(results: dict[str, Any]) -> str:
    comparison = results.get("comparison")
    if not comparison:
        return "## Regressions\n\nNo earlier recorded run to compare with."
    regressed = comparison["regressions"]
    head = (
        f"Compared with the run recorded {comparison.get('previous_created') or 'before'}: "
        f"a ratio more than {comparison['tolerance']:.0%} worse is flagged."
    )
    if not regressed:
        return f"## Regressions\n\n{head} None."
    rows = [
        [c["name"], f"{c['old']:.3g}", f"{c['new']:.3g}", times(c["worse_by"])]
        for c in comparison["changes"]
        if c["regressed"]
    ]
    return f"## Regressions\n\n{head}\n\n" + table(["ratio", "before", "now", "worse by"], rows)


def section_transports(data: dict[str, Any], fsl: dict[str, Any] | None) -> str:
    raw = data["raw"]["one_kb"]
    rows = [
        [
            "raw: write (tmp + os.replace) + read, twice",
            f"{raw['p50_ms']:.2f} ms",
            f"{raw['p95_ms']:.2f} ms",
            "1.00x",
        ]
    ]
    for name, row in data["results"].items():
        one = row["one_kb"]
        rows.append(
            [
                f"{name} (one process)",
                f"{one['p50_ms']:.2f} ms",
                f"{one['p95_ms']:.2f} ms",
                times(one["p50_vs_raw"]),
            ]
        )
    if fsl and "one_kb" in fsl:
        for key, label in (("fsync=True", "fsync on, default"), ("fsync=False", "fsync off")):
            one = fsl["one_kb"]["transport"].get(key)
            if one:
                rows.append(
                    [
                        f"fsspec-local (two processes, {label})",
                        f"{one['p50_ms']:.2f} ms",
                        f"{one['p95_ms']:.2f} ms",
                        times(one["p50_ms"] / raw["p50_ms"]),
                    ]
                )
        floor = fsl["one_kb"]["floor"]
        rows.append(
            [
                "floor: publish + raw inotify both ways (two processes)",
                f"{floor['p50_ms']:.2f} ms",
                f"{floor['p95_ms']:.2f} ms",
                times(floor["p50_ms"] / raw["p50_ms"]),
            ]
        )
    small = "### 1 KB request → response\n\n" + table(
        ["transport", "p50", "p95", "p50 vs raw"], rows
    )
    large_rows = []
    for name, row in data["results"].items():
        for large in row["large"]:
            raw_s = data["raw"]["large"][str(large["size_mb"])]["median_s"]
            large_rows.append(
                [
                    f"{large['size_mb']} MB",
                    name,
                    spread(large["round_trip_s"]),
                    dur(raw_s),
                    times(large["ratio_vs_raw"]),
                    times(large["peak_rss_x_payload"]),
                ]
            )
    large = "### 1, 10, 100 MB round trips (opaque bytes, both sides in one process)\n\n" + table(
        [
            "size",
            "transport",
            "round trip, median (min-max)",
            "raw write+read twice",
            "ratio",
            "peak RSS above baseline, x payload",
        ],
        large_rows,
    )
    skipped = "".join(f"\n- `{n}`: {why}" for n, why in data.get("skipped", {}).items())
    note = f"\n\nNot measured:{skipped}" if skipped else ""
    return "## Transport level\n\n" + small + "\n\n" + large + note


def section_fsspec_local(data: dict[str, Any]) -> str:
    rows = []
    for row in data["large"]["rows"]:
        raw, durable = row["raw_write_read_twice"], row["raw_write_fsync_read_twice"]
        for key, r in row["transport"].items():
            rows.append(
                [
                    f"{row['size_mb']} MB",
                    key.replace("=True", " on").replace("=False", " off"),
                    f"{dur(r['median_s'])} ({dur(r['min_s'])}-{dur(r.get('max_s', r['min_s']))})",
                    f"{dur(raw['median_s'])} / {dur(durable['median_s'])}",
                    f"{times(r['ratio_vs_raw'])} / {times(r['ratio_vs_durable_raw'])}",
                    f"{times(r['aggregator_peak_rss_x_payload'])} / "
                    f"{times(r['datasite_peak_rss_x_payload'])}",
                ]
            )
    return (
        "## fsspec-local: aggregator and datasite in two processes\n\n"
        "Real files on local disk, real inotify. `fsync` is on by default so a published "
        "message survives a power loss; `fsync = false` trades that for page-cache speed.\n\n"
        + table(
            [
                "size",
                "fsync",
                "round trip, median (min-max)",
                "raw write+read twice: page cache / with fsync",
                "ratio: page cache / fsync",
                "peak RSS x payload: aggregator / datasite",
            ],
            rows,
        )
        + section_watcher(data.get("watcher"))
    )


def section_watcher(watch: dict[str, Any] | None) -> str:
    """The process-wide folder watcher alone (recorded from the run that added it on)."""
    if not watch:
        return ""

    def counts(key: str) -> str:
        c = watch[key]
        return f"{c['threads']} / {c['inotify_instances']} / {c['rss_kib'] / 1024:.1f} MiB"

    def ms(key: str) -> str:
        return f"{watch[key]:.2f} ms"

    rows = [
        ["threads / inotify instances / RSS of the process, nothing watched", counts("idle"), ""],
        ["the same, 1 folder watched", counts("one_folder"), ""],
        [f"the same, {watch['watched']} folders watched", counts("many_folders"), ""],
        ["watch + unwatch a folder, p50", ms("add_remove_p50_ms"), ""],
        ["arrival (`os.replace` into the folder → callback), p50", ms("arrival_p50_ms"),
         ms("floor_arrival_p50_ms")],
        ["arrival 0.2 ms after another one, p50", ms("arrival_after_another_p50_ms"),
         ms("floor_arrival_after_another_p50_ms")],
        ["first arrival after a name was moved out of the folder", ms("after_moved_out_ms"), ""],
    ]  # fmt: skip
    return (
        "\n\n### The folder watcher in one process\n\n"
        "syftflwr's process-wide watcher (`syftflwr.mailbox.watcher`, its default backend) in "
        "a fresh process, next to the floor: the kernel's inotify read by one thread.\n\n"
        + table(["figure", "syftflwr's watcher", "raw inotify"], rows)
    )


def section_flower(data: dict[str, Any]) -> str:
    rows = [
        [
            f"{r['size_mb']} MB",
            spread(r["end_to_end_s"]),
            dur(r["message_to_proto_encode_decode_s"]["median"]),
            times(r["speedup_vs_flower_serde_round_trip"]),
            rss_pair(r),
        ]
        for r in data["rows"]
    ]
    return (
        "## Flower level: a model as a Message, end to end\n\n"
        f"`TransportGrid` pushes the model over {data['transport']}; a `DatasiteRunner` in "
        "another process decodes it, a ClientApp echoes it, and the reply is decoded on the "
        "aggregator. Baseline: Flower's own `message_to_proto` encode + "
        "`message_from_proto` decode of the same message, with no transport at all; a round "
        "trip needs it twice. Bars for 100 MB: ≤ 1.5 s end to end, ≥ 3x faster.\n\n"
        + table(
            [
                "model",
                "end to end, median (min-max)",
                "message_to_proto encode+decode, one way",
                "speed-up vs Flower serde round trip",
                "peak RSS x payload: aggregator / datasite",
            ],
            rows,
        )
    )


def section_rounds(data: dict[str, Any]) -> str:
    rows = [
        [name, dur(r["median"]), dur(r["min"]), dur(r["max"]), times(r["ratio_vs_memory"])]
        for name, r in data["results"].items()
    ]
    return (
        f"## Quickstart FedAvg: per-round time, 3 datasites "
        f"({data['rounds_per_run']} rounds x {data['repeat']} runs)\n\n"
        "A round is timed from its first instruction to its last reply (train + evaluate), "
        "as the aggregator recorded it; process start-up is not counted. Bar: the local "
        "transport in separate processes ≤ 1.5x memory.\n\n"
        + table(["transport", "median", "min", "max", "ratio vs memory"], rows)
    )


def section_startup(data: dict[str, Any]) -> str:
    names = list(data["results"])
    rows = [
        [name, dur(r["median"]), dur(r["min"]), dur(r["max"]), times(r["ratio_vs_import"])]
        for name, r in data["results"].items()
    ]
    base = data["import"]
    rows.insert(0, ["`import flwr.serverapp, flwr.clientapp, sklearn`", dur(base["median"]),
                    dur(base["min"]), dur(base["max"]), "1x"])  # fmt: skip
    phases = [
        [phase, *(dur(data["results"][n]["phases"][phase]) for n in names)]
        for phase in ("start", "first round", "later rounds", "teardown")
    ]
    return (
        f"## Quickstart simulate, exec to exit ({data['repeat']} runs of each, interleaved)\n\n"
        "`syftflwr simulate examples/quickstart` (3 datasites, 3 rounds, each participant a "
        "process) timed from exec to exit, against importing what every Flower app's process "
        "imports. Bar: the default (participants forked from one pre-imported process) "
        "≤ 2x the import. Each run is split at its first instruction and at the last reply "
        "of the first and of the last round (medians): *start* holds the command's imports, "
        "the keys, starting the participants and the ServerApp's initial evaluation; "
        "*teardown* the stop messages, the participants ending and the summary.\n\n"
        + table(["command", "median", "min", "max", "ratio vs import"], rows)
        + "\n\n"
        + table(["phase (median)", *names], phases)
    )


def section_serde(data: dict[str, Any]) -> str:
    rows = []
    for r in data["rows"]:
        enc, dec = r["encode"], r["decode"]
        rows.append(
            [
                f"{r['size_mb']} MB",
                dur(enc["flower"]["median_s"]),
                dur(enc["syftflwr"]["median_s"]),
                times(enc["speedup"]),
                dur(dec["flower"]["median_s"]),
                dur(dec["syftflwr"]["median_s"]),
                times(dec["speedup"]),
            ]
        )
    return (
        f"## Serde: a Flower model message, syftflwr vs `message_to_proto` "
        f"(median of {data['repeat']})\n\n"
        "Both sides produce byte-identical output (checked by the benchmark on every size).\n\n"
        + table(
            [
                "size",
                "encode, Flower",
                "encode, syftflwr",
                "speed-up",
                "decode, Flower",
                "decode, syftflwr",
                "speed-up",
            ],
            rows,
        )
    )


def section_scale(data: dict[str, Any]) -> str:
    rows = [
        [
            str(r["datasites"]),
            spread(r["round_s"]),
            dur(r["round_s_per_datasite"]["median"]),
            spread(r["aggregator_cpu_per_message_s"]),
        ]
        for r in data["rows"]
    ]
    return (
        f"## Scale: many datasites on one machine ({data['transport']})\n\n"
        "Every datasite is a `DatasiteRunner` thread in ONE process (one shared file "
        "watcher); the aggregator is another process. A round sends a "
        f"{data['model_bytes'] // 1024} KB model to every datasite and collects every reply "
        f"({data['rounds']} rounds per size). Bar: the aggregator's CPU per message does "
        "not grow with the number of datasites.\n\n"
        + table(
            [
                "datasites",
                "round, median (min-max)",
                "round per datasite",
                "aggregator CPU per message, median (min-max)",
            ],
            rows,
        )
    )


def section_crypto(data: dict[str, Any]) -> str:
    def size(n: int) -> str:
        return f"{n // (1 << 20)} MB" if n >= 1 << 20 else f"{n // 1024} KB"

    rows = [
        [
            size(r["size"]),
            dur(r["raw_aead_s"]["median"]),
            dur(r["seal_open_s"]["median"]),
            dur(r["added_s"]),
            times(r["added_vs_raw_aead"]),
            spread(r["round_trip_off_s"]),
            spread(r["round_trip_on_s"]),
            dur(r["added_wall_s"]),
        ]
        for r in data["rows"]
    ]
    return (
        "## Encryption: core envelope encryption on vs off\n\n"
        "A request echoed back between two participants connected as `syftflwr run` "
        "connects them (fsspec-local, inotify), encryption on and off in interleaved "
        "blocks. *Raw AEAD* is AES-256-GCM encrypt + decrypt of the request's and the "
        "reply's bytes, the floor of any authenticated encryption; *seal + open* is "
        "syftflwr's envelope (key agreement, HKDF, associated data) both ways, alone; "
        "*added per trip* is every call the sealed roles make into the keyrings during the "
        "encrypted trips, timed where it happens in CPU seconds of the calling thread "
        "(synchronous work on the critical path). "
        "*On - off* is the same cost seen through the file system's latency, which moves "
        "with the machine's load. Bars: added <= 1.3x raw AEAD at 100 MB, <= 1 ms at "
        "1 KB.\n\n" + table(CRYPTO_COLUMNS, rows)
    )


CRYPTO_COLUMNS = ["size", "raw AEAD", "seal + open", "added per trip", "added / raw AEAD",
                  "trip, off", "trip, on", "on - off"]  # fmt: skip


def recorded_broadcasts() -> list[dict[str, Any]]:
    """The broadcast results recorded on GCS and Drive (those that exist)."""
    return [json.loads(path.read_text()) for path in BROADCAST_STORES.values() if path.is_file()]


def mb(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MB"


def _written(result: dict[str, Any]) -> int:
    """A phase's bar figure: bytes at the store where counted there, else the storage
    layer's (bench_broadcast.written)."""
    return int(result.get("store_bytes", result["bytes"]))


BROADCAST_COUNTED = {
    "fsspec-local": "Counted in the aggregator's storage layer: requests and blobs",
    "gcs": "A real fake-gcs-server on loopback, driven by gcsfs; counted at the HTTP level: the "
    "body bytes of every request the aggregator sent through a counting proxy",
    "gdrive": "The loopback Drive server with the real google-api-python-client; counted "
    "in the server: the body bytes of every request of the aggregator's account",
}


def _row_label(row: dict[str, Any]) -> str:
    scope = "" if row["round_trip"] else " (send only, slowed)" if row.get("network") else (
        " (send only)")  # fmt: skip
    return f"{row['datasites']}{scope}"


def _broadcast_table(data: dict[str, Any]) -> str:
    rows = []
    for r in data["rows"]:
        rows.append([
            _row_label(r),
            mb(_written(r["before"]["phase"])),
            mb(_written(r["after"]["phase"])),
            f"{r['after_vs_model']:.3f}x",
            mb(r["bar_bytes"]) + (" ✓" if _written(r["after"]["phase"]) <= r["bar_bytes"]
                                  else " ✗"),
            mb(_written(r["after"]["reuse"])),
            f"{r['before']['phase']['seconds']:.2f} s / {r['after']['phase']['seconds']:.2f} s",
        ])  # fmt: skip
    return table(["N", "one copy per datasite", "shared blob", "shared / model", "bar",
                  "reuse phase, shared", "phase time, copies / shared"], rows)  # fmt: skip


def _drive_tables(data: dict[str, Any]) -> str:
    calls = []
    for r in data["rows"]:
        after, before = r["after"], r["before"]
        n = r["datasites"]
        by = r.get("model_calls")
        blob = (
            "-"
            if by is None
            else (
                f"{r['blob_api_calls']} ({by.get('files.create', 0)} create, "
                f"{by.get('files.upload', 0)} upload, "
                f"{by.get('permissions.create', 0)} grants)"
            )
        )
        calls.append([
            _row_label(r),
            str(before["phase"]["api_calls"]),
            f"{after['phase']['api_calls']} ({after['phase']['http_requests']} HTTP)",
            f"{after['reuse']['api_calls']} ({after['reuse']['http_requests']} HTTP)",
            blob,
            "-" if by is None else f"{3 + n} " + ("✓" if r["blob_api_calls"] <= 3 + n else "✗"),
            "-" if by is None else str(by.get("files.list", 0)),
            f"{after['warmup']['api_calls']}",
        ])  # fmt: skip
    net = data.get("network") or {}
    timed = [
        [
            str(r["datasites"]),
            f"{r['reference_s']:.2f} s",
            f"{r['reference_chunked_s']:.2f} s" if "reference_chunked_s" in r else "-",
            f"{r['after']['send_s']:.2f} s",
            f"{r['send_vs_reference']:.3f}x",
            "1.2x " + ("✓" if r["send_vs_reference"] <= 1.2 else "✗"),
            f"{r['before']['phase']['seconds']:.2f} s ({r['before_send_vs_reference']:.1f}x)",
        ]
        for r in data["rows"]
        if r.get("network")
    ]
    return (
        "Drive API calls of the aggregator per phase (each request of a batch is one call, "
        "as Drive's quota counts them; the changes-feed polls, which run on a timer, are "
        "left out). The model's calls are a shared send phase minus its reuse phase, "
        "which sends the same messages without the model (send-only rows: in a round trip "
        "the replies' reads and deletes vary from phase to phase): *storing the model* "
        "(its folder and upload session, the session's upload request — one for a blob up "
        "to 256 MiB —, one grant per reader sent as one batch request) and *more "
        "listings* (`files.list` of the "
        "aggregator's changes feed reacting to its own writes: more changes, more listings; "
        "they vary with timing). *First contact* is the warm-up phase (a run's outbox "
        "folders, their shares, the app's blob folders). Bar (issue 20): the calls storing "
        "the model <= 3 + N.\n\n"
        + table(
            [
                "N",
                "one copy per datasite",
                "shared blob",
                "reuse phase",
                "storing the model",
                "bar",
                "more listings",
                "first contact",
            ],
            calls,
        )
        + "\n\nSend phase on a slower Drive server: every HTTP request waits "
        f"{net.get('latency', 0) * 1e3:g} ms and each account's request bodies share "
        f"{(net.get('upload_rate') or 0) / 1e6:g} MB/s (a link feeding a 2 MiB socket "
        "buffer: a server thread late to read costs the link nothing until the buffer is "
        "full, and a request beside an upload costs it only its own bytes; the server's "
        "threads switch every 0.5 ms, so reading an upload never waits out another "
        "request's 5 ms GIL slice). Reference: one "
        "plain upload of the model with the real client (resumable, "
        "in one request, as the transport uploads a blob; *in 8 MiB requests*: the "
        "transport's default request size, which blobs used before); shared: median of 3 "
        "send phases, each a fresh model; one copy per datasite: one send phase (10 at a "
        "time at N = 50). Bar (issue 20): shared <= 1.2x the reference."
        + "\n\nWhat a shared send phase adds to one upload of the model: its folder (one "
        "request), during which the model is sealed (AES-GCM straight from the model's "
        "parts into one buffer that is not zeroed first: ~20 ms for 100 MB). Everything "
        "else runs while the model uploads: the plaintext digest that commits every "
        "recipient to the same model, the ciphertext digest its ref names, the folder's "
        "grants (one batch request) and, as soon as both digests are known, the N messages "
        "naming the blob, in parallel, each one create on Drive (a request id the sender's "
        "journal never saw is written with `put_new`: no check after); a datasite that "
        "reads its message first looks for the blob again later. The model goes up from "
        "the buffer it was sealed into (no copy first), and the send threads borrow idle "
        "Drive services (built resources, open connections). What is left above one "
        "upload is the folder's round trip and the upload slowed by that work sharing two "
        "cores with the Drive server. The calls storing the model are 3 + N: folder, "
        "upload session, one upload request, N grants.\n\n"
        + table(
            [
                "N",
                "one model upload",
                "in 8 MiB requests",
                "send phase, shared",
                "shared / upload",
                "bar",
                "send phase, one copy per datasite",
            ],
            timed,
        )
    )


def section_broadcast(data: dict[str, Any]) -> str:
    parts = [
        "## Broadcast: the model uploaded once\n\n"
        f"Bytes the aggregator writes to storage in one phase that sends one "
        f"{data['model_mb']} MB model to N datasites, encryption on. *One copy per "
        "datasite* is `blob_threshold` above any model (what a transport that cannot share "
        "objects does); *shared blob* is the default: the model sealed once under a fresh "
        "key, stored once, each datasite's own message carrying its key and hash. The "
        "*reuse* phase sends the same `ArrayRecord` again with another config "
        "(`evaluate(r)` then `train(r+1)`): only the small messages are written. Round "
        "trip: every datasite read and checked the model and answered; send only: the "
        "recipients are published keys. Bar (issue 20): shared <= 1.05x model + N x 64 "
        "KiB. `benchmarks/bench_broadcast.py --transport fsspec-local|gcs|gdrive`; the "
        "suite runs fsspec-local, the other two are recorded in "
        "`benchmarks/results/broadcast-{gcs,gdrive}.json`."
    ]
    for one in [data, *recorded_broadcasts()]:
        store = one["transport"]
        head = (
            f"### {store}\n\n"
            + BROADCAST_COUNTED.get(store, "")
            + (f"; recorded {one.get('created', '?')}." if one is not data else ".")
        )
        parts.append(head + "\n\n" + _broadcast_table(one))
        if store == "gdrive":
            parts.append(_drive_tables(one))
    if data.get("png"):
        parts.append(f"![Broadcast: bytes per phase and Drive send time]({data['png']})")
    return "\n\n".join(parts)


def section_inbox(data: dict[str, Any]) -> str:
    row = [
        f"{data['sends']:,}",
        f"{data['replies']:,}",
        f"{data['split'][0]:,} + {data['split'][1]:,}",
        str(data["partial_reads"]),
        str(data["double_processed"]),
        str(data["error_replies"]),
        f"{data['total_s']:.1f} s ({data['sends_per_s']:.0f}/s)",
    ]
    return (
        "## Two runners on one inbox\n\n"
        "Two datasite runner processes serve the same datasite with separate journals "
        "(only the claims in the mailbox decide who handles what); the aggregator sends "
        "every request at once from 8 threads (fsspec-local, inotify). Bars: 0 partial "
        "reads, 0 double-processing.\n\n" + table(INBOX_COLUMNS, [row])
    )


INBOX_COLUMNS = ["sends", "replies", "handled by runner 1 + 2", "partial reads",
                 "double-processed", "error replies", "all answered in"]  # fmt: skip


def section_shared_state(data: dict[str, Any]) -> str:
    row = [
        f"{data['sends']:,} ({data['sent_bytes'] / 2**20:,.0f} MiB)",
        " + ".join(f"{n:,}" for n in data["split"]),
        str(data["lost"]),
        str(data["corrupted"]),
        str(data["double_processed"]),
        str(data["error_replies"]),
        str(data["runner_warnings"]),
        f"{data['total_s']:.1f} s ({data['sends_per_s']:.0f}/s)",
    ]
    return (
        "## Three runners sharing one state dir\n\n"
        f"{data['runners']} datasite runner processes serve the same datasite with one "
        "`SYFTFLWR_HOME` (one journal, one key pair, one trust store); default settings "
        "(encryption on, fsspec-local with inotify). Sizes are log-uniform between 1 KiB "
        "and 1 MiB; each reply is the SHA-256 of what the runner read. Bar: 0 requests "
        "lost (and 0 corrupted, double-processed or error replies).\n\n"
        + table(SHARED_STATE_COLUMNS, [row])
    )


SHARED_STATE_COLUMNS = ["sends", "handled by runner 1 + 2 + 3", "lost", "corrupted",
                        "double-processed", "error replies", "runner warnings",
                        "all answered in"]  # fmt: skip


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "broadcast": section_broadcast,
    "flower": section_flower,
    "crypto": section_crypto,
    "inbox": section_inbox,
    "shared-state": section_shared_state,
    "rounds": section_rounds,
    "startup": section_startup,
    "serde": section_serde,
    "scale": section_scale,
    "fsspec-local": section_fsspec_local,
}


def section_pending(results: dict[str, Any]) -> str:
    items = [f"- **{what}**: {why}" for what, why in results.get("pending", PENDING).items()]
    for name, data in results["benchmarks"].items():
        if "error" in data:
            items.append(f"- **{name}**: failed in this run: `{data['error'].splitlines()[-1]}`")
        for transport, why in data.get("skipped", {}).items():
            items.append(f"- **{transport}** ({name}): {why}")
    for name, why in results.get("skipped", {}).items():
        items.append(f"- **{name}**: {why}")
    return "## Not measured yet\n\n" + "\n".join(items)


# ------------------------------------------------------------------ page
INTRO = """# Benchmarks

<!-- Generated by benchmarks/report.py from benchmarks/results/results.json. -->

The bars syftflwr must clear are measured by one suite, never by timed unit tests. The
machines it runs on are shared and noisy, so every figure is measured next to a
**baseline in the same run** and reported as a ratio, with medians and min/max: compare
ratios between runs, not absolute times.

```bash
nox -s bench              # full suite (< 15 min on 2 cores): results, this page, the plot
nox -s bench -- --quick   # development (< 3 min): writes benchmarks/results/quick/ only
python benchmarks/suite.py --only serde flower --quick   # some benchmarks, current venv
python benchmarks/report.py                              # regenerate this page from the JSON
```

{scripts}

The suite writes every figure to `benchmarks/results/results.json` (and each
benchmark's own file next to it), compares the ratios with the last recorded run
(`benchmarks/compare.py`: any ratio more than 20% worse is flagged, also below), and
regenerates this page and the plot. Sizes and seeds are fixed."""


SCRIPTS = [
    (
        "bench_transports.py",
        "1 KB p50/p95 and 1/10/100 MB round trips per installed transport "
        "vs raw write+read of the file",
    ),
    (
        "bench_fsspec_local.py",
        "fsspec-local between two processes: 1 KB vs the publish + "
        "raw inotify floor, 1/10/100 MB vs raw write+read twice, peak RSS per process; "
        "the folder watcher's threads, inotify instances and latency at 100 folders",
    ),
    (
        "bench_flower.py",
        "a 1/10/100 MB model as a Flower Message end to end (TransportGrid → "
        "DatasiteRunner → back) vs `message_to_proto`",
    ),
    (
        "bench_rounds.py",
        "quickstart FedAvg per-round time per transport vs the in-process memory transport",
    ),
    (
        "bench_startup.py",
        "`syftflwr simulate examples/quickstart` from exec to exit (fork server and spawned) "
        "vs importing Flower and scikit-learn, split into phases",
    ),
    (
        "bench_serde.py",
        "encoding/decoding a Flower message vs `message_to_proto` / `message_from_proto`",
    ),
    (
        "bench_scale.py",
        "10, 50, 100 datasites on one machine: round time and aggregator CPU per message",
    ),
    (
        "bench_broadcast.py",
        "bytes the aggregator writes per broadcast phase, a 100 MB model to 2, 10, 50 "
        "datasites: one sealed copy per datasite vs one shared blob",
    ),
    (
        "bench_shared_state.py",
        "three runners sharing one state dir: requests lost in 10,000 sends of 1 KiB-1 MiB",
    ),
]


def render_markdown(results: dict[str, Any]) -> str:
    suite = results.get("suite", {})
    scripts = table(["script", "measures"], [[f"`benchmarks/{s}`", m] for s, m in SCRIPTS])
    parts = [INTRO.format(scripts=scripts)]
    recorded = (
        f"Recorded {suite.get('created', '?')} in {suite.get('mode', '?')} mode on "
        f"{suite.get('cpus', '?')} CPUs ({suite.get('machine', '?')}), Python "
        f"{suite.get('python', '?')}, flwr {suite.get('flwr', '?')}; "
        f"the suite took {suite.get('duration_s', 0):.0f} s."
    )
    parts.append("## Latest recorded results\n\n" + recorded)
    if results.get("png"):
        parts.append(f"![Benchmark summary]({results['png']})")
    parts += [section_bars(results), section_regressions(results)]
    benchmarks = results["benchmarks"]
    if "transports" in benchmarks and "error" not in benchmarks["transports"]:
        parts.append(section_transports(benchmarks["transports"], benchmarks.get("fsspec-local")))
    for name, render in SECTIONS.items():
        data = benchmarks.get(name)
        if data and "error" not in data:
            if name == "broadcast" and results.get("broadcast_png"):
                data = {**data, "png": results["broadcast_png"]}
            parts.append(render(data))
    if SYFTBOX_RESULTS.is_file():
        parts.append(section_syftbox(json.loads(SYFTBOX_RESULTS.read_text())))
    parts.append(section_pending(results))
    return "\n\n".join(parts) + "\n"


def section_syftbox(data: dict[str, Any]) -> str:
    one, large = data["one_kb"], data["large"]
    enc, plain = large["encrypted"], large["plaintext"]

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    load = data.get("load_average") or [0.0]
    rows = [
        ["1 KB round trip p50", f"{one['encrypted']['p50_ms']:.2f} ms",
         f"{one['plaintext']['p50_ms']:.2f} ms",
         f"encrypted <= {one['bar_p50_ms']:g} ms: {met(one['meets_bar'])}"],
        ['1 KB p50 with `watch = "poll"`', f"{one['encrypted, watch=poll']['p50_ms']:.1f} ms",
         "", "(informational)"],
        [f"{large['size_mb']} MB round trip, median", dur(enc["median_s"]),
         dur(plain["median_s"]), "(informational)"],
        [f"encryption added at {large['size_mb']} MB vs raw AES-GCM of the bytes",
         times(large["encryption_added_x_raw_aead"]), "",
         f"<= {large['bar_added_x_raw_aead']:g}x: "
         f"{met(large['encryption_added_x_raw_aead'] <= large['bar_added_x_raw_aead'])}"],
        [f"{large['size_mb']} MB peak RSS x payload, aggregator / datasite",
         f"{enc['aggregator_peak_rss_x_payload']:.2f}x / {enc['datasite_peak_rss_x_payload']:.2f}x",
         f"{plain['aggregator_peak_rss_x_payload']:.2f}x / "
         f"{plain['datasite_peak_rss_x_payload']:.2f}x", "(informational)"],
    ]  # fmt: skip
    return (
        "## syftbox: aggregator and datasite in two processes (plugin benchmark)\n\n"
        "Measured by `plugins/syftbox/benchmarks/bench_syftbox.py` in the syftbox "
        "environment (flwr 1.26.1, which this suite's environment cannot share), one shared "
        "local SyftBox data dir, real inotify, `fsync` on; recorded "
        f"{data.get('created', '?')} at load average {load[0]:.1f} on {data.get('cpus', '?')} "
        "CPUs. Results: `plugins/syftbox/benchmarks/results.json`; details on the "
        "[syftbox page](transports/syftbox.md#performance).\n\n"
        + table(["figure", "encrypted (default)", "plaintext", "bar"], rows)
    )


# ------------------------------------------------------------------ plot
def plot(results: dict[str, Any], path: Path) -> None:
    """Four panels: the bars, 1 KB latency, Flower-level 100 MB, scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(16, 10))
    benchmarks = results["benchmarks"]

    ax = axes[0][0]
    barred = [r for d in benchmarks.values() for r in d.get("ratios", []) if r.get("bar")]
    if barred:
        used = [
            r["value"] / r["bar"] if r["better"] == "lower" else r["bar"] / r["value"]
            for r in barred
        ]
        labels = [r["name"][:70] for r in barred]
        colors = ["tab:green" if r.get("meets_bar") else "tab:red" for r in barred]
        ax.barh(range(len(used)), used, color=colors)
        ax.set_yticks(range(len(used)), labels, fontsize=7)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        ax.invert_yaxis()
    ax.set_title("share of each bar used (< 1 meets it)")

    ax = axes[0][1]
    names, values = [], []
    tr = benchmarks.get("transports", {})
    if "raw" in tr:
        names.append("raw write+read x2")
        values.append(tr["raw"]["one_kb"]["p50_ms"])
        for name, row in tr["results"].items():
            names.append(f"{name}\n(1 process)")
            values.append(row["one_kb"]["p50_ms"])
    fsl = benchmarks.get("fsspec-local", {})
    if "one_kb" in fsl:
        names += ["inotify floor\n(2 processes)", "fsspec-local\n(2 processes)"]
        values += [
            fsl["one_kb"]["floor"]["p50_ms"],
            fsl["one_kb"]["transport"]["fsync=True"]["p50_ms"],
        ]
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)), names, fontsize=7)
    ax.axhline(5.0, color="tab:red", linestyle="--", linewidth=1, label="bar: 5 ms")
    ax.set_ylabel("ms")
    ax.legend()
    ax.set_title("1 KB request -> response, p50")

    ax = axes[1][0]
    flower = benchmarks.get("flower", {})
    if "rows" in flower:
        sizes = [f"{r['size_mb']} MB" for r in flower["rows"]]
        x = range(len(sizes))
        e2e = [r["end_to_end_s"]["median"] for r in flower["rows"]]
        naive = [2 * r["message_to_proto_encode_decode_s"]["median"] for r in flower["rows"]]
        ax.bar([i - 0.2 for i in x], e2e, 0.4, label="syftflwr end to end (fsspec-local)")
        ax.bar([i + 0.2 for i in x], naive, 0.4, label="message_to_proto serde only, x2")
        ax.set_xticks(list(x), sizes)
        ax.set_yscale("log")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
    ax.set_title("a model as a Flower Message, round trip")

    ax = axes[1][1]
    scale = benchmarks.get("scale", {})
    if "rows" in scale:
        ns = [r["datasites"] for r in scale["rows"]]
        ax.plot(
            ns, [r["round_s"]["median"] * 1e3 for r in scale["rows"]], "o-", label="round time (ms)"
        )
        ax.set_xlabel("datasites")
        ax.set_ylabel("round time, ms")
        twin = ax.twinx()
        twin.plot(
            ns,
            [r["aggregator_cpu_per_message_s"]["median"] * 1e3 for r in scale["rows"]],
            "s--",
            color="tab:orange",
            label="aggregator CPU per message (ms)",
        )
        twin.set_ylabel("aggregator CPU per message, ms")
        twin.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
        twin.legend(loc="lower right", fontsize=8)
    ax.set_title("scale (fsspec-local, datasites as threads)")

    suite = results.get("suite", {})
    fig.suptitle(f"syftflwr benchmarks ({suite.get('mode', '?')} mode, {suite.get('created', '')})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_broadcast(runs: list[dict[str, Any]], path: Path) -> None:
    """Two panels: bytes per phase / model against N per transport (one copy per datasite,
    shared blob, the bar); Drive's timed send phase against one model upload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    styles = {"fsspec-local": ("o", "tab:blue"), "gcs": ("s", "tab:orange"),
              "gdrive": ("^", "tab:green")}  # fmt: skip
    ticks: set[int] = set()
    for run in runs:
        store = run["transport"]
        rows = sorted({r["datasites"]: r for r in run["rows"]}.values(),
                      key=lambda r: r["datasites"])  # fmt: skip
        ns = [r["datasites"] for r in rows]
        ticks.update(ns)
        marker, color = styles.get(store, ("x", "tab:gray"))
        left.plot(ns, [_written(r["before"]["phase"]) / r["model_bytes"] for r in rows],
                  marker + "--", color=color, alpha=0.6,
                  label=f"{store}: one copy per datasite")  # fmt: skip
        left.plot(ns, [_written(r["after"]["phase"]) / r["model_bytes"] for r in rows],
                  marker + "-", color=color, label=f"{store}: shared blob")  # fmt: skip
    if runs:
        rows = sorted(runs[0]["rows"], key=lambda r: r["datasites"])
        left.plot([r["datasites"] for r in rows], [r["bar_bytes"] / r["model_bytes"] for r in rows],
                  "k:", label="bar: 1.05 x model + N x 64 KiB")  # fmt: skip
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xticks(sorted(ticks), [str(n) for n in sorted(ticks)])
    left.minorticks_off()
    left.set_xlabel("datasites (N)")
    left.set_ylabel("bytes written per phase / model")
    left.legend(fontsize=7)
    model_mb = runs[0]["model_mb"] if runs else "?"
    left.set_title(f"aggregator bytes per broadcast phase, {model_mb} MB model")
    drive = next((r for r in runs if r["transport"] == "gdrive"), None)
    timed = [r for r in (drive or {}).get("rows", []) if r.get("network")]
    if drive and timed:
        x = list(range(len(timed)))
        ref = [r["reference_s"] for r in timed]
        shared = [r["after"]["send_s"] for r in timed]
        copies = [r["before"]["phase"]["seconds"] for r in timed]
        top = 2.0 * max(ref + shared)
        right.bar([i - 0.27 for i in x], ref, 0.27, label="one plain upload of the model")
        right.bar(x, shared, 0.27, label="send phase, shared blob")
        right.bar([i + 0.27 for i in x], [min(c, top) for c in copies], 0.27,
                  label="send phase, one copy per datasite (cut off)")  # fmt: skip
        for i in x:
            right.text(i + 0.27, top * 0.5, f"{copies[i]:.0f} s", ha="center", va="center",
                       fontsize=9, color="white")  # fmt: skip
            right.text(i, shared[i], f"{shared[i] / ref[i]:.2f}x", ha="center", va="bottom",
                       fontsize=8)  # fmt: skip
            right.hlines(1.2 * ref[i], i - 0.45, i + 0.45, colors="tab:red", linestyles="dashed",
                         label="bar: 1.2 x one upload" if i == 0 else None)  # fmt: skip
        right.set_ylim(0, top)
        right.set_xticks(x, [f"N = {r['datasites']}" for r in timed])
        right.set_ylabel("seconds")
        right.legend(fontsize=7, loc="upper left")
        net = drive.get("network") or {}
        right.set_title(f"Drive send phase, {(net.get('upload_rate') or 0) / 1e6:g} MB/s uplink, "
                        f"{net.get('latency', 0) * 1e3:g} ms per request")  # fmt: skip
    else:
        right.set_title("Drive send phase: not recorded")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: dict[str, Any], docs: Path, png: Path | None) -> None:
    """The PNG (when matplotlib is available) and the page that links it."""
    page = dict(results)
    if png is not None:
        try:
            plot(results, png)
            page["png"] = Path(png).resolve().relative_to(docs.resolve().parent).as_posix()
            broadcast = results["benchmarks"].get("broadcast")
            if broadcast and "error" not in broadcast:
                bpng = Path(png).with_name(BROADCAST_PNG)
                plot_broadcast([broadcast, *recorded_broadcasts()], bpng)
                page["broadcast_png"] = bpng.resolve().relative_to(docs.resolve().parent).as_posix()
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(render_markdown(page))
    print(f"wrote {docs}" + (f" and {png}" if page.get("png") else ""), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG)
    args = parser.parse_args(argv)
    write_report(json.loads(args.results.read_text()), args.docs, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
