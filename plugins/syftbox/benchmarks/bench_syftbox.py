"""syftbox transport between two OS processes sharing one local SyftBox data dir (no
daemon, no network: SyftBox's local simulation; what a sync client adds is not here).

* 1 KB request -> response: p50/p95, encrypted (the default: sealed by core, as a run
  does) and plaintext (``encryption = false``), with arrivals
  learnt through inotify (``watch = "auto"``, the default) and, for comparison, through
  listing (``watch = "poll"``, what the plugin did before). Bar: encrypted p50 <= 10 ms.
* 100 MB round trip (8 MiB objects: chunked, as SyftBox's size limit demands), encrypted
  and plaintext, each in a fresh aggregator process; peak RSS of both processes above
  their post-import baseline, as a multiple of the payload; the raw AEAD cost of the
  same bytes (AES-256-GCM seal + open, request and response) as the baseline of what
  encryption adds. Bar from the brief: encryption adds <= 1.3x the raw AEAD cost.

Prints numbers and writes JSON; asserts nothing about time::

    FLWR_TELEMETRY_ENABLED=0 python plugins/syftbox/benchmarks/bench_syftbox.py [--quick]

Writes ``plugins/syftbox/benchmarks/results.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

HERE = Path(__file__).resolve()
KB, MB = 1024, 1024 * 1024
AGG, DS = "agg@example.org", "ds@example.org"
ENCRYPTION = "encryption"
"""The benchmark's own key in a variant's options: False runs as ``encryption = false``
(the transport gets the other keys)."""
OFFLINE_SERVER = "http://127.0.0.1:1"
"""Nothing listens there: a stray network call fails at once instead of hanging."""


def maxrss() -> int:
    """Peak RSS of this process so far (``VmHWM``: not inherited across fork)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- participants
def _context(base: Path, email: str, options: dict[str, Any]) -> Any:
    from syftflwr.plugin import TransportContext

    config = base / "configs" / email / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {"email": email, "data_dir": str(base / "SyftBox"), "server_url": OFFLINE_SERVER}
        )
    )
    return TransportContext(
        transport="syftbox",
        app_name="bench",
        email=email,
        aggregator=AGG,
        datasites=(DS,),
        options={"retention_interval": 5.0, **options, "config_path": str(config)},
        state_dir=base / "state" / email,
    )


def _keyring(base: Path, client: Any, email: str, peer: str) -> Any:
    """``email``'s core keyring, its key published through the client's key directory:
    what a run with ``encryption`` on (the default) wraps the roles with."""
    from syftflwr.crypto.directory import key_directory_of
    from syftflwr.crypto.keyring import Keyring
    from syftflwr.crypto.keys import KeyStore
    from syftflwr.crypto.trust import TrustStore

    state = base / "state" / email
    directory = key_directory_of(client, "bench")
    keyring = Keyring(
        email, KeyStore(state, email), TrustStore(state, {}), directory, peers=(peer,)
    )
    keyring.publish()
    return keyring


def datasite_child(base: Path, options: dict[str, Any]) -> None:
    from syftflwr.crypto.roles import SealedEvents
    from syftflwr_syftbox import plugin

    encryption = options.pop(ENCRYPTION, True)
    ctx = _context(base, DS, options)
    client = plugin.syftflwr_make_client(ctx)
    events = plugin.syftflwr_make_events(client, ctx)
    if encryption:
        events = SealedEvents(events, _keyring(base, client, DS, AGG))  # key published
    baseline = maxrss()
    events.on_request("echo", lambda r: r.body)  # zero-copy echo: the body is a view
    events.on_request(
        "rss", lambda r: json.dumps({"baseline": baseline, "peak": maxrss()}).encode()
    )
    events.on_request("stop", lambda r: (events.stop(), b"")[1])
    print("ready", flush=True)
    events.run_forever()
    events.close()


class Aggregator:
    """This process sends; a datasite runner in a child process echoes."""

    def __init__(self, options: dict[str, Any]) -> None:
        from syftflwr.crypto.roles import SealedRPC
        from syftflwr_syftbox import plugin

        self.base = Path(tempfile.mkdtemp(prefix="bench-syftbox-"))
        self.child = subprocess.Popen(
            [sys.executable, str(HERE), "--child", "datasite", str(self.base), json.dumps(options)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        assert self.child.stdout.readline().strip() == "ready"
        options = dict(options)
        encryption = options.pop(ENCRYPTION, True)
        ctx = _context(self.base, AGG, options)
        self.client = plugin.syftflwr_make_client(ctx)
        self.rpc = plugin.syftflwr_make_rpc(self.client, ctx)
        if encryption:
            self.rpc = SealedRPC(self.rpc, _keyring(self.base, self.client, AGG, DS))

    def ask(self, body: Any, endpoint: str = "echo") -> Any:
        from syftflwr.plugin import Request

        request = Request.new(
            sender=AGG, recipient=DS, app="bench", endpoint=endpoint, body=body, ttl=600
        )
        handle = self.rpc.send(request)
        (response,) = self.rpc.wait([handle], timeout=600)
        assert response.ok, response.error_text
        self.rpc.forget(handle)
        return response

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(b"", "stop")
        self.child.wait(30)
        self.rpc.close()
        self.client.close()


def bench_1kb(n: int, options: dict[str, Any]) -> dict[str, float]:
    agg = Aggregator(options)
    body = os.urandom(KB)
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        agg.ask(body)
        if i >= 20:  # warm-up: folders watched, keys cached
            times.append(time.perf_counter() - t0)
    agg.close()
    p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
    return {"p50_ms": p50 * 1e3, "p95_ms": p95 * 1e3, "n": n}


def bench_large(size: int, repeat: int, options: dict[str, Any]) -> dict[str, Any]:
    """In a fresh aggregator process, so its RSS baseline is clean."""
    command = [sys.executable, str(HERE), "--child", "aggregator-large", str(size), str(repeat)]
    out = subprocess.run(
        [*command, json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def aggregator_large_child(size: int, repeat: int, options: dict[str, Any]) -> None:
    agg = Aggregator(options)
    agg.ask(b"warm-up")
    baseline = maxrss()
    body = os.urandom(size)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = agg.ask(body)
        times.append(time.perf_counter() - t0)
        assert response.body_size == size
        del response
    peak = maxrss()
    child = json.loads(bytes(agg.ask(b"", "rss").body))
    agg.close()
    result = {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "aggregator_peak_rss_x_payload": (peak - baseline) / size,
        "datasite_peak_rss_x_payload": (child["peak"] - child["baseline"]) / size,
    }
    print(json.dumps(result), flush=True)


def bench_raw_aead(size: int, repeat: int) -> dict[str, float]:
    """AES-256-GCM seal + open of ``size`` bytes, twice (request and response): the
    least encryption can cost."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = os.urandom(size)
    aead = AESGCM(AESGCM.generate_key(256))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(2):
            nonce = os.urandom(12)
            aead.decrypt(nonce, aead.encrypt(nonce, data, b""), b"")
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times)}


# --------------------------------------------------------------------------- the run
def run(quick: bool) -> dict[str, Any]:
    n, n_poll, repeat = (200, 40, 1) if quick else (500, 100, 3)
    size = 100 * MB
    print(f"syftbox, two processes, one data dir: 1 KB x {n}, 100 MB x {repeat}")
    one_kb: dict[str, Any] = {}
    for label, options in (
        ("encrypted", {}),
        ("plaintext", {ENCRYPTION: False}),
        ("encrypted, watch=poll", {"watch": "poll"}),
    ):
        count = n_poll if "poll" in label else n
        one_kb[label] = r = bench_1kb(count, options)
        print(f"  1 KB  p50 {r['p50_ms']:6.2f} ms  p95 {r['p95_ms']:6.2f} ms  ({label}, n={count})")
    raw = bench_raw_aead(size, 5)
    print(f"  raw AES-256-GCM seal+open of 100 MB, twice: {raw['median_s']:.3f} s")
    large: dict[str, Any] = {}
    for label, options in (("encrypted", {}), ("plaintext", {ENCRYPTION: False})):
        large[label] = r = bench_large(size, repeat, options)
        print(
            f"  100 MB round trip {r['median_s']:.3f} s (min {r['min_s']:.3f}), peak RSS "
            f"{r['aggregator_peak_rss_x_payload']:.2f}x aggregator / "
            f"{r['datasite_peak_rss_x_payload']:.2f}x datasite payload ({label})"
        )
    added = large["encrypted"]["median_s"] - large["plaintext"]["median_s"]
    added_x = added / raw["median_s"]
    print(f"  encryption adds {added:.3f} s at 100 MB = {added_x:.2f}x the raw AEAD cost")
    p50 = one_kb["encrypted"]["p50_ms"]
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return {
        "benchmark": "syftbox",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "one_kb": {
            **one_kb,
            "encrypted_vs_plaintext": p50 / one_kb["plaintext"]["p50_ms"],
            "poll_vs_watch": one_kb["encrypted, watch=poll"]["p50_ms"] / p50,
            "bar_p50_ms": 10.0,
            "meets_bar": p50 <= 10.0,
        },
        "large": {
            "size_mb": size // MB,
            "repeat": repeat,
            "max_object_size": 8 * MB,
            **large,
            "raw_aead_twice": raw,
            "encryption_added_s": added,
            "encryption_added_x_raw_aead": added_x,
            "bar_added_x_raw_aead": 1.3,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE.parent / "results.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "aggregator-large":
            aggregator_large_child(int(rest[0]), int(rest[1]), json.loads(rest[2]))
        else:
            datasite_child(Path(rest[0]), json.loads(rest[1]))
        return
    result = run(args.quick)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
