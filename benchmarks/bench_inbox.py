"""Two runners on one inbox: 10,000 concurrent sends, each handled once, none torn.

Two datasite runner processes serve the SAME datasite (same email, one shared mailbox
root) with separate state directories — the hardest case: they share no journal, only
the claims in the mailbox decide who handles what. The aggregator sends every request
at once from several threads, then collects the replies. Issue 8's bar: 0 partial reads
(every reply is complete and its own) and 0 double-processing (each request handled by
exactly one runner, once). fsspec-local on a temp dir (inotify); core encryption off,
because two processes serving one identity with separate state would hold two keys.

    python benchmarks/bench_inbox.py            # 10,000 sends
    python benchmarks/bench_inbox.py --quick    # 1,000 sends

Writes ``benchmarks/results/inbox.json`` (or ``--out``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import RESULTS, meta, ratio, runner_benchmark_main, serve_logged, stop_runners

AGG, DS = "agg@bench.org", "ds@bench.org"
APP = "benchinbox"
PROJECT = f"""[project]
name = "bench-inbox"

[tool.syftflwr]
app_name = "{APP}"
aggregator = "{AGG}"
datasites = ["{DS}"]
transport = "fsspec-local"
encryption = false
"""


def env_for(workdir: Path, email: str, state: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(
        SYFTFLWR_STATE_DIR=str(workdir / "state" / state),
        SYFTFLWR_FSSPEC_LOCAL_ROOT=str(workdir / "shared"),
        FLWR_TELEMETRY_ENABLED="0",
    )
    return env


def serve(workdir: Path, log: Path) -> None:
    """A runner process: echo every request, append its id to ``log``."""
    serve_logged(workdir / "app", DS, log, "echo", bytes)


def run(quick: bool, sends: int | None = None) -> dict[str, Any]:
    from syftflwr.plugin import Request
    from syftflwr.session import connect

    total = sends or (1000 if quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as tmp:
        workdir = Path(tmp)
        (workdir / "app").mkdir()
        (workdir / "app" / "pyproject.toml").write_text(PROJECT)
        logs = [workdir / f"runner-{i}.handled" for i in range(2)]
        runners = [
            subprocess.Popen(
                [sys.executable, __file__, "--serve", str(workdir), str(log)],
                env=env_for(workdir, DS, f"runner-{i}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i, log in enumerate(logs)
        ]
        try:
            for runner in runners:
                assert runner.stdout is not None
                line = runner.stdout.readline()
                if "serving" not in line:
                    raise SystemExit(f"a runner did not start: {line}{runner.stdout.read()}")
            aggregator = connect(workdir / "app", email=AGG, env=env_for(workdir, AGG, "agg"))
            rpc = aggregator.rpc()
            bodies = [f"body-{i:06d}-".encode() * 8 for i in range(total)]

            def send(body: bytes) -> Any:
                request = Request.new(sender=AGG, recipient=DS, app=APP, endpoint="echo",
                                      body=body, ttl=3600)  # fmt: skip
                return rpc.send(request)

            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                handles = list(pool.map(send, bodies))
            sent_s = time.perf_counter() - started
            expected = {h.id: body for h, body in zip(handles, bodies, strict=True)}
            got: dict[str, bytes] = {}
            errors = 0
            deadline = time.monotonic() + 600
            while len(got) < total and time.monotonic() < deadline:
                pending = [h for h in handles if h.id not in got]
                for response in rpc.wait(pending, timeout=10):
                    got[response.id] = bytes(response.body) if response.ok else b""
                    errors += not response.ok
            elapsed = time.perf_counter() - started
            aggregator.close()
        finally:
            stop_runners(runners, timeout=30)
        per_log = [log.read_text().split() for log in logs]
    handled = [message_id for ids in per_log for message_id in ids]
    partial = sum(1 for i, body in got.items() if body != expected.get(i))
    counts: dict[str, int] = {}
    for message_id in handled:
        counts[message_id] = counts.get(message_id, 0) + 1
    doubled = sum(1 for n in counts.values() if n > 1)
    split = [len(ids) for ids in per_log]  # both runners should take part
    result = {
        "benchmark": "inbox",
        **meta(),
        "sends": total,
        "replies": len(got),
        "missing": total - len(got),
        "error_replies": errors,
        "partial_reads": partial,
        "double_processed": doubled,
        "handled": len(handled),
        "split": split,
        "send_s": sent_s,
        "total_s": elapsed,
        "sends_per_s": total / elapsed,
    }
    print(
        f"{total} sends, {len(got)} replies in {elapsed:.1f}s ({total / elapsed:.0f}/s); "
        f"runners handled {split[0]} + {split[1]}; partial reads {partial}, "
        f"double-processed {doubled}, error replies {errors}"
    )
    label = f"{total:,}"
    result["ratios"] = [
        ratio(f"inbox: partial reads in {label} sends, two runners", partial,
              baseline="(count)", bar=0, absolute=True),
        ratio(f"inbox: double-processed in {label} sends, two runners", doubled,
              baseline="(count)", bar=0, absolute=True),
        ratio(f"inbox: missing replies in {label} sends, two runners", total - len(got),
              baseline="(count)", bar=0, absolute=True),
    ]  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    return runner_benchmark_main(
        argv,
        doc=__doc__ or "",
        out=RESULTS / "inbox.json",
        run=run,
        serve=serve,
        serve_args=("WORKDIR", "LOG"),
    )


if __name__ == "__main__":
    sys.exit(main())
