"""syftbox in the ``syft-flwr-0.5`` profile: 1 KB request -> response between two
processes sharing one data dir (a datasite's events role echoing in a child process,
the aggregator's RPC role here), p50/p95; encrypted as upstream (syft-crypto X3DH, both
ways) with ``--encrypt``. For comparison, syft-rpc's own ``SyftFuture.wait`` polls every
100 ms.

    FLWR_TELEMETRY_ENABLED=0 python bench_syftflwr05.py [-n 200] [--encrypt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
AGG = "aggregator@openmined.org"
DS = "ds1@openmined.org"
OFFLINE_SERVER = "http://127.0.0.1:1"
WARMUP = 20


def _context(base: Path, email: str, encrypt: bool) -> Any:
    from syftflwr.info import TransportContext

    config = base / "configs" / email / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    data = {"email": email, "data_dir": str(base / "SyftBox"), "server_url": OFFLINE_SERVER}
    config.write_text(json.dumps(data))
    return TransportContext(
        transport="syftbox",
        app_name="bench",
        email=email,
        aggregator=AGG,
        datasites=(DS,),
        options={"encrypt": encrypt, "config_path": str(config)},
        state_dir=base / "state" / email,
        profile="syft-flwr-0.5",
    )


def datasite_child(base: Path, encrypt: bool) -> None:
    from syftflwr_syftbox import plugin

    ctx = _context(base, DS, encrypt)
    events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(ctx), ctx)
    events.on_request("messages", lambda r: b"" if r.body == b"stop" else r.body)
    print("ready", flush=True)
    events.run_forever()


def run(n: int, encrypt: bool) -> dict[str, float]:
    from syftflwr.envelope import Request
    from syftflwr_syftbox import plugin

    base = Path(tempfile.mkdtemp(prefix="bench-syftbox05-"))
    child = subprocess.Popen(
        [sys.executable, str(HERE), "--child", str(base), *(["--encrypt"] if encrypt else [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        ctx = _context(base, AGG, encrypt)
        client = plugin.syftflwr_make_client(ctx)
        rpc = plugin.syftflwr_make_rpc(client, ctx)
        body, times = os.urandom(1024), []
        for i in range(n + WARMUP):
            request = Request.new(
                sender=AGG, recipient=DS, app="bench", endpoint="messages", body=body, ttl=600
            )
            t0 = time.perf_counter()
            handle = rpc.send(request)
            (response,) = rpc.wait([handle], timeout=30)
            if i >= WARMUP:
                times.append(time.perf_counter() - t0)
            assert response.ok and bytes(memoryview(response.body)) == body
            rpc.forget(handle)
        rpc.close()
        client.close()
    finally:
        child.kill()
        child.wait()
    times.sort()
    return {
        "p50_ms": times[len(times) // 2] * 1e3,
        "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))] * 1e3,
        "n": n,
        "encrypted": encrypt,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        datasite_child(Path(args.child), args.encrypt)
        return
    result = run(args.n, args.encrypt)
    print(json.dumps({**result, "load_average": os.getloadavg()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
