"""Three runners sharing one state dir: 10,000 sends of 1 KiB-1 MiB, none lost.

Three datasite runner processes serve the SAME datasite with ONE ``SYFTFLWR_HOME`` — the
documented "several runners on one inbox" setup: one journal, one key pair, one trust
store, shared by processes x threads. Default settings (core encryption on,
fsspec-local on a temp dir with inotify). The aggregator keeps a window of requests in
flight from 4 sender threads; sizes are log-uniform between 1 KiB and 1 MiB (fixed
seed); each runner answers with the SHA-256 of what it read. Bar: 0 requests lost (no
reply by the deadline). Also counted: corrupted replies, requests handled twice, error
replies — all bars 0.

    python benchmarks/bench_shared_state.py            # 10,000 sends
    python benchmarks/bench_shared_state.py --quick    # 1,000 sends

Writes ``benchmarks/results/shared-state.json`` (or ``--out``).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import (
    KB,
    MB,
    RESULTS,
    SEED,
    meta,
    ratio,
    runner_benchmark_main,
    serve_logged,
    stop_runners,
)

AGG, DS = "agg@bench.org", "ds@bench.org"
APP = "benchshared"
RUNNERS = 3
WINDOW = 256
"""Requests in flight at once (bounds the disk the benchmark uses)."""
STALL = 120.0
"""Seconds without any reply after which the requests still unanswered count as lost."""
PROJECT = f"""[project]
name = "bench-shared-state"

[tool.syftflwr]
app_name = "{APP}"
aggregator = "{AGG}"
datasites = ["{DS}"]
transport = "fsspec-local"
"""


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(SYFTFLWR_HOME=str(home), FLWR_TELEMETRY_ENABLED="0")
    return env


def size_of(i: int) -> int:
    """Log-uniform between 1 KiB and 1 MiB, the same for every run."""
    return int(KB * (MB // KB) ** random.Random(SEED + i).random())


def body_of(i: int) -> bytes:
    return random.Random(SEED * 31 + i).randbytes(size_of(i))


def serve(project: Path, log: Path) -> None:
    """A runner process: answer each request with the SHA-256 of its body; append its id
    to ``log`` (one file per runner)."""
    serve_logged(project, DS, log, "digest", lambda body: hashlib.sha256(body).digest())


def run(quick: bool, sends: int | None = None) -> dict[str, Any]:
    from syftflwr.plugin import Request
    from syftflwr.session import connect

    total = sends or (1000 if quick else 10_000)
    with tempfile.TemporaryDirectory(prefix="bench-shared-state-") as tmp:
        workdir = Path(tmp)
        project, home = workdir / "app", workdir / "home"
        project.mkdir()
        (project / "pyproject.toml").write_text(PROJECT)
        logs = [workdir / f"runner-{i}.handled" for i in range(RUNNERS)]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        runners = [
            subprocess.Popen(
                [sys.executable, __file__, "--serve", str(project), str(log)],
                env=env_for(home),
                **pipes,  # type: ignore[call-overload]
            )
            for log in logs
        ]
        output: list[list[str]] = [[] for _ in runners]
        try:
            for runner, lines in zip(runners, output, strict=True):
                assert runner.stdout is not None
                line = runner.stdout.readline()
                if "serving" not in line:
                    raise SystemExit(f"a runner did not start: {line}{runner.stdout.read()}")
                reader = threading.Thread(target=lines.extend, args=(runner.stdout,), daemon=True)
                reader.start()
            aggregator = connect(project, email=AGG, env=env_for(home))
            rpc = aggregator.rpc()
            window = threading.BoundedSemaphore(WINDOW)
            stop = threading.Event()
            lock = threading.Lock()
            pending: dict[str, Any] = {}
            expected: dict[str, bytes] = {}
            sent_bytes = 0

            def send(i: int) -> None:
                nonlocal sent_bytes
                while not window.acquire(timeout=0.5):  # lost requests keep their slot
                    if stop.is_set():
                        return
                body = body_of(i)
                request = Request.new(sender=AGG, recipient=DS, app=APP, endpoint="digest",
                                      body=body, ttl=3600)  # fmt: skip
                handle = rpc.send(request)
                with lock:
                    expected[handle.id] = hashlib.sha256(body).digest()
                    pending[handle.id] = handle
                    sent_bytes += len(body)

            got: dict[str, bytes] = {}
            errors = 0
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as senders:
                futures = [senders.submit(send, i) for i in range(total)]
                progress = time.monotonic()
                while len(got) < total:
                    if time.monotonic() - progress > STALL:
                        break  # the rest are lost (or stuck behind lost ones' window slots)
                    with lock:
                        waiting = list(pending.values())
                    if not waiting:
                        time.sleep(0.005)
                        continue
                    for response in rpc.wait(waiting, timeout=1):
                        progress = time.monotonic()
                        got[response.id] = bytes(response.body) if response.ok else b""
                        errors += not response.ok
                        with lock:
                            handle = pending.pop(response.id)
                        rpc.forget(handle)
                        window.release()
                stop.set()
                for future in futures:
                    future.result()
            elapsed = time.perf_counter() - started
            aggregator.close()
        finally:
            stop_runners(runners, timeout=60)
        per_log = [log.read_text().split() for log in logs]
    counts = Counter(message_id for ids in per_log for message_id in ids)
    lost = len(expected) - len(got)  # sent, never answered
    unsent = total - len(expected)  # stuck behind lost requests' window slots
    corrupted = sum(1 for i, d in got.items() if d and d != expected[i])
    doubled = sum(1 for n in counts.values() if n > 1)
    warnings = [line for lines in output for line in lines if "WARNING" in line]
    split = [len(ids) for ids in per_log]
    result = {
        "benchmark": "shared-state",
        **meta(),
        "runners": RUNNERS,
        "sends": total,
        "sizes": f"{KB:,}-{MB:,} bytes, log-uniform",
        "sent_bytes": sent_bytes,
        "replies": len(got),
        "lost": lost,
        "unsent": unsent,
        "corrupted": corrupted,
        "double_processed": doubled,
        "error_replies": errors,
        "runner_warnings": len(warnings),
        "split": split,
        "total_s": elapsed,
        "sends_per_s": total / elapsed,
    }
    print(
        f"{total} sends ({sent_bytes / MB:.0f} MiB), {len(got)} replies in {elapsed:.1f}s; "
        f"runners handled {' + '.join(map(str, split))}; lost {lost} (unsent {unsent}), "
        f"corrupted {corrupted}, "
        f"double-processed {doubled}, error replies {errors}, runner warnings {len(warnings)}"
    )
    for line in warnings[:5]:
        print(f"  {line.rstrip()}")
    label = f"{total:,}"
    result["ratios"] = [
        ratio(f"shared state: requests lost, three runners sharing one state dir, {label} "
              "sends of 1 KiB-1 MiB", lost + unsent, baseline="(count)", bar=0, absolute=True),
        ratio(f"shared state: corrupted or double-processed in {label} sends",
              corrupted + doubled, baseline="(count)", bar=0, absolute=True),
        ratio(f"shared state: error replies in {label} sends", errors,
              baseline="(count)", bar=0, absolute=True),
    ]  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    return runner_benchmark_main(
        argv,
        doc=__doc__ or "",
        out=RESULTS / "shared-state.json",
        run=run,
        serve=serve,
        serve_args=("PROJECT", "LOG"),
    )


if __name__ == "__main__":
    sys.exit(main())
