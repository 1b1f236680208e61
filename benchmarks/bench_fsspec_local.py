"""fsspec-local transport vs the raw floor, between two OS processes on local disk.

* 1 KB request -> response: p50/p95 of the transport (aggregator here, a datasite runner
  in a child process, real inotify) next to the floor measured in the same run: publish
  with tmp + ``os.replace``, learn of it through the kernel's inotify API (one reader
  thread, no watching library), both ways, nothing else. Bar: transport p50 <= 5 ms.
* 1, 10, 100 MB round trips: transport (fsync on and off) vs the raw cost of writing and reading
  those bytes twice through the page cache; peak RSS of both processes above their
  post-import baseline, as a multiple of the payload. Bars: <= 2x raw, <= 3x payload.
* The watcher alone, in a fresh process (syftflwr's process-wide hub, its default
  backend): threads, inotify instances and RSS while it watches 100 folders; the cost of
  watching and unwatching a folder; arrival latency (alone, right after another arrival,
  and after a name was moved out of the folder) next to the raw inotify floor.

    python benchmarks/bench_fsspec_local.py            # 500 x 1 KB, 3 x 1/10/100 MB
    python benchmarks/bench_fsspec_local.py --quick    # 200 x 1 KB, 1 x 1/10/100 MB

Writes ``benchmarks/results/fsspec-local.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from _common import KB, MB, RESULTS, maxrss, meta, percentile, ratio, write_json

AGG, DS = "agg@example.org", "ds@example.org"
HERE = Path(__file__).resolve()


# --------------------------------------------------------------------------- the floor
IN_MOVED_TO = 0x80
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class _Arrivals:
    """The least a watcher can do: the kernel's inotify API itself (libc through ctypes:
    no library's dispatch threads or batching), one reader thread, one callback."""

    def __init__(self, folder: Path, on_name: Any) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(folder), IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.on_name = on_name
        threading.Thread(target=self._read, name="floor-inotify", daemon=True).start()

    def _read(self) -> None:
        while True:
            buffer, pos = os.read(self.fd, 65536), 0
            while pos < len(buffer):
                _wd, _mask, _cookie, size = _EVENT.unpack_from(buffer, pos)
                pos += _EVENT.size
                self.on_name(os.fsdecode(buffer[pos : pos + size].rstrip(b"\0")))
                pos += size


def publish(tmp: Path, folder: Path, name: str, data: bytes) -> None:
    temp = tmp / f"{uuid.uuid4().hex}.tmp"
    with temp.open("wb") as f:
        f.write(data)
    os.replace(temp, folder / name)  # noqa: PTH105 - the floor is exactly this call


def floor_child(base: Path) -> None:
    inbox, outbox, tmp = base / "in", base / "out", base / "tmp-child"
    tmp.mkdir()
    done = threading.Event()

    def on_name(name: str) -> None:
        if name == "stop":
            done.set()
            return
        data = (inbox / name).read_bytes()
        publish(tmp, outbox, name, data)

    _Arrivals(inbox, on_name)
    print("ready", flush=True)
    done.wait()


def bench_floor(n: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="floor-"))
    for sub in ("in", "out", "tmp"):
        (base / sub).mkdir()
    child = subprocess.Popen(
        [sys.executable, str(HERE), "--child", "floor", str(base)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    arrived: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def on_name(name: str) -> None:
        with lock:
            event = arrived.get(name)
        if event is not None:
            event.set()

    _Arrivals(base / "out", on_name)
    body = os.urandom(KB)
    times = []
    for i in range(n + 20):
        name = f"{i}.msg"
        event = threading.Event()
        with lock:
            arrived[name] = event
        t0 = time.perf_counter()
        publish(base / "tmp", base / "in", name, body)
        event.wait(10)
        (base / "out" / name).read_bytes()
        if i >= 20:
            times.append(time.perf_counter() - t0)
    publish(base / "tmp", base / "in", "stop", b"")
    child.wait(10)
    return {"p50_ms": percentile(times, 0.5) * 1e3, "p95_ms": percentile(times, 0.95) * 1e3}


# --------------------------------------------------------------------------- the watcher
WATCHED = 100


def _process_counts() -> dict[str, int]:
    """Threads, inotify instances and resident KiB of this process (Linux /proc)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    instances = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            instances += str(fd.readlink()) == "anon_inode:inotify"
    return {
        "threads": int(status["Threads"]),
        "inotify_instances": instances,
        "rss_kib": int(status["VmRSS"].split()[0]),
    }


class _Waiter:
    """A hub subscriber (or floor callback) that records when each name arrived."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()

    def deliver(self, folder: str, name: str) -> None:
        with self.changed:
            self.seen.setdefault(name, time.perf_counter())
            self.changed.notify_all()

    def resync(self, folder: str) -> None:
        pass

    def on_name(self, name: str) -> None:
        self.deliver("", name)

    def wait(self, name: str, since: float) -> float:
        with self.changed:
            self.changed.wait_for(lambda: name in self.seen, timeout=10)
        return self.seen[name] - since


def _arrivals(tmp: Path, folder: Path, waiter: _Waiter, n: int, *, after: float | None) -> float:
    """p50 seconds from ``os.replace`` into ``folder`` to the callback; ``after``: another
    name arrives that many seconds earlier (a claim marker just before a reply)."""
    times = []
    for _ in range(n):
        names = [f"{uuid.uuid4().hex}.msg" for _ in range(2)]
        temps = [tmp / name for name in names]
        for temp in temps:
            temp.write_bytes(b"x")
        time.sleep(0.005)  # idle between samples
        if after is not None:
            os.replace(temps[0], folder / names[0])  # noqa: PTH105
            end = time.perf_counter() + after
            while time.perf_counter() < end:
                pass
        start = time.perf_counter()
        os.replace(temps[1], folder / names[1])  # noqa: PTH105
        times.append(waiter.wait(names[1], start))
        for name in names:
            (folder / name).unlink(missing_ok=True)
        temps[0].unlink(missing_ok=True)
    return statistics.median(times)


def watcher_child(n: int) -> None:
    """syftflwr's process-wide watcher (its default backend) next to raw inotify."""
    from syftflwr.mailbox import watcher

    base = Path(tempfile.mkdtemp(prefix="bench-watcher-"))
    tmp, out = base / "tmp", base / "out"
    folders = [base / f"f{i}" for i in range(WATCHED)]
    for folder in [tmp, out, base / "floor", base / "churn", *folders]:
        folder.mkdir()
    idle = _process_counts()
    hub = watcher.WatchHub()
    waiter = _Waiter()
    hub.add(str(folders[0]), waiter, "f0")
    one = _process_counts()
    for i, folder in enumerate(folders[1:], 1):
        hub.add(str(folder), _Waiter(), f"f{i}")
    many = _process_counts()
    floor = _Waiter()
    _Arrivals(base / "floor", floor.on_name)
    churn, add_remove = _Waiter(), []
    for _ in range(n):
        start = time.perf_counter()
        hub.add(str(base / "churn"), churn, "churn")
        hub.remove(str(base / "churn"), churn)
        add_remove.append(time.perf_counter() - start)
    moved_out = []
    for _ in range(3):
        gone = f"{uuid.uuid4().hex}.msg"
        (tmp / gone).write_bytes(b"x")
        os.replace(tmp / gone, folders[0] / gone)  # noqa: PTH105
        waiter.wait(gone, 0.0)
        os.replace(folders[0] / gone, out / gone)  # noqa: PTH105 - moved out of the folder
        moved_out.append(_arrivals(tmp, folders[0], waiter, 1, after=None))
    result = {
        "watched": WATCHED,
        "idle": idle,
        "one_folder": one,
        "many_folders": many,
        "add_remove_p50_ms": statistics.median(add_remove) * 1e3,
        "arrival_p50_ms": _arrivals(tmp, folders[0], waiter, n, after=None) * 1e3,
        "arrival_after_another_p50_ms": _arrivals(tmp, folders[0], waiter, n, after=2e-4) * 1e3,
        "floor_arrival_p50_ms": _arrivals(tmp, base / "floor", floor, n, after=None) * 1e3,
        "floor_arrival_after_another_p50_ms": (
            _arrivals(tmp, base / "floor", floor, n, after=2e-4) * 1e3
        ),
        "after_moved_out_ms": statistics.median(moved_out) * 1e3,
    }
    hub.close()
    print(json.dumps(result), flush=True)


def bench_watcher(n: int) -> dict[str, Any]:
    """In a fresh process, so its thread and inotify counts are the watcher's own."""
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", "watcher", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- transport
def _context(email: str, root: Path, fsync: bool) -> Any:
    from syftflwr.plugin import TransportContext

    return TransportContext(
        transport="fsspec-local",
        app_name="bench",
        email=email,
        aggregator=AGG,
        datasites=(DS,),
        options={"root": str(root), "fsync": fsync, "retention_interval": 5.0},
        state_dir=root.parent / f"state-{email}",
    )


def datasite_child(root: Path, fsync: bool) -> None:
    from syftflwr_fsspec_local import plugin

    ctx = _context(DS, root, fsync)
    events = plugin.syftflwr_make_events(plugin.syftflwr_make_client(ctx), ctx)
    baseline = maxrss()
    events.on_request("echo", lambda r: r.body)  # zero-copy echo: the body is a view
    events.on_request(
        "rss", lambda r: json.dumps({"baseline": baseline, "peak": maxrss()}).encode()
    )
    events.on_request("stop", lambda r: (events.stop(), b"")[1])
    print("ready", flush=True)
    events.run_forever()


class Aggregator:
    def __init__(self, fsync: bool) -> None:
        from syftflwr_fsspec_local import plugin

        self.base = Path(tempfile.mkdtemp(prefix="bench-fsl-"))
        self.root = self.base / "root"
        self.child = subprocess.Popen(
            [sys.executable, str(HERE), "--child", "datasite", str(self.root), str(int(fsync))],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        assert self.child.stdout.readline().strip() == "ready"
        ctx = _context(AGG, self.root, fsync)
        self.rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)

    def ask(self, body: Any, endpoint: str = "echo") -> Any:
        from syftflwr.plugin import Request

        handle = self.rpc.send(
            Request.new(
                sender=AGG, recipient=DS, app="bench", endpoint=endpoint, body=body, ttl=600
            )
        )
        (response,) = self.rpc.wait([handle], timeout=600)
        assert response.ok, response.error_text
        self.rpc.forget(handle)
        return response

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(b"", "stop")
        self.child.wait(30)
        self.rpc.close()


def bench_transport_1kb(n: int, fsync: bool) -> dict[str, float]:
    agg = Aggregator(fsync)
    body = os.urandom(KB)
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        agg.ask(body)
        if i >= 20:
            times.append(time.perf_counter() - t0)
    agg.close()
    return {"p50_ms": percentile(times, 0.5) * 1e3, "p95_ms": percentile(times, 0.95) * 1e3}


def bench_raw(size: int, repeat: int, fsync: bool = False) -> dict[str, float]:
    """Write the bytes to a file and read them back, twice (request + response);
    ``fsync``: flush each write to disk first (the durable floor)."""
    data = os.urandom(size)
    folder = Path(tempfile.mkdtemp(prefix="raw-"))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for k in range(2):
            path = folder / f"{k}.bin"
            with path.open("wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            buffer = bytearray(size)
            with path.open("rb", buffering=0) as f:
                f.readinto(buffer)
            path.unlink()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def bench_transport_large(size: int, repeat: int, fsync: bool) -> dict[str, Any]:
    """Run in a fresh aggregator process, so its RSS baseline is clean."""
    out = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "--child",
            "aggregator-large",
            str(size),
            str(repeat),
            str(int(fsync)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def aggregator_large_child(size: int, repeat: int, fsync: bool) -> None:
    agg = Aggregator(fsync)
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


def run(quick: bool) -> dict[str, Any]:
    """1 KB: ``n`` round trips (quick 200, full 500); 1, 10, 100 MB: ``repeat`` each
    (quick 1, full 3), fsync on (the default), and 100 MB with fsync off too."""
    n, repeat = (200, 1) if quick else (500, 3)
    sizes = [1, 10, 100]
    print(f"fsspec-local, two processes: 1 KB round trips x {n}, {sizes} MB x {repeat}")
    floor = bench_floor(n)
    print(f"  floor      1 KB  p50 {floor['p50_ms']:.2f} ms  p95 {floor['p95_ms']:.2f} ms")
    small = {}
    for fsync in (True, False):
        small[f"fsync={fsync}"] = r = bench_transport_1kb(n, fsync)
        p50, p95 = r["p50_ms"], r["p95_ms"]
        print(f"  transport  1 KB  p50 {p50:.2f} ms  p95 {p95:.2f} ms  (fsync={fsync})")
    rows = []
    for size_mb in sizes:
        size = size_mb * MB
        raw = bench_raw(size, max(repeat, 3))  # cheap: a steadier baseline
        durable = bench_raw(size, max(repeat, 3), fsync=True)
        configs = (True, False) if size_mb == 100 else (True,)
        row: dict[str, Any] = {
            "size_mb": size_mb,
            "raw_write_read_twice": raw,
            "raw_write_fsync_read_twice": durable,
            "transport": {},
        }
        for fsync in configs:
            row["transport"][f"fsync={fsync}"] = r = bench_transport_large(size, repeat, fsync)
            r["ratio_vs_raw"] = r["median_s"] / raw["median_s"]
            r["ratio_vs_durable_raw"] = r["median_s"] / durable["median_s"]
            print(
                f"  {size_mb:>3} MB round trip: {r['median_s']:.3f} s "
                f"({r['ratio_vs_raw']:.2f}x raw {raw['median_s']:.3f} s, "
                f"{r['ratio_vs_durable_raw']:.2f}x raw+fsync), peak RSS "
                f"{r['aggregator_peak_rss_x_payload']:.2f}x / "
                f"{r['datasite_peak_rss_x_payload']:.2f}x payload (fsync={fsync})"
            )
        rows.append(row)
    watch = bench_watcher(min(n, 300))
    many = watch["many_folders"]
    print(
        f"  watcher: {many['threads']} threads, {many['inotify_instances']} inotify "
        f"instance(s) at {watch['watched']} folders; arrival p50 "
        f"{watch['arrival_p50_ms']:.2f} ms (raw inotify {watch['floor_arrival_p50_ms']:.2f} ms), "
        f"{watch['arrival_after_another_p50_ms']:.2f} ms right after another arrival, "
        f"{watch['after_moved_out_ms']:.0f} ms after a name moved out"
    )
    default = small["fsync=True"]
    big = rows[-1]["transport"]
    rss = max(
        big["fsync=True"]["aggregator_peak_rss_x_payload"],
        big["fsync=True"]["datasite_peak_rss_x_payload"],
    )
    return {
        "benchmark": "fsspec-local",
        **meta(),
        "one_kb": {
            "n": n,
            "floor": floor,
            "transport": small,
            "p50_vs_floor": default["p50_ms"] / floor["p50_ms"],
            "bar_p50_ms": 5.0,
            "meets_bar": default["p50_ms"] <= 5.0,
        },
        "large": {"repeat": repeat, "rows": rows, "bar_ratio": 2.0, "bar_rss_x_payload": 3.0},
        "watcher": watch,
        "ratios": [
            ratio(
                "fsspec-local: 1 KB p50 vs publish + raw inotify floor",
                default["p50_ms"] / floor["p50_ms"],
                baseline="tmp + os.replace, the kernel's inotify read by one thread, both ways",
            ),
            ratio(
                "fsspec-local: 1 KB p50, ms",
                default["p50_ms"],
                absolute=True,
                baseline="(absolute)",
                bar=5.0,
            ),
            ratio(
                "fsspec-local: 100 MB round trip vs raw write+read twice",
                big["fsync=True"]["ratio_vs_raw"],
                baseline="page-cache write+read twice",
                bar=2.0,
            ),
            ratio(
                "fsspec-local: 100 MB round trip vs raw write+fsync+read twice",
                big["fsync=True"]["ratio_vs_durable_raw"],
                baseline="durable write+read twice",
                bar=2.0,
            ),
            ratio(
                "fsspec-local: 100 MB round trip, fsync off, vs raw write+read twice",
                big["fsync=False"]["ratio_vs_raw"],
                baseline="page-cache write+read twice",
                bar=2.0,
            ),
            ratio(
                "fsspec-local: 100 MB peak RSS per process, x payload",
                rss,
                baseline="post-import RSS",
                bar=3.0,
            ),
            ratio(
                f"fsspec-local watcher: threads of a process watching {WATCHED} folders",
                many["threads"],
                absolute=True,
                baseline="(count)",
            ),
            ratio(
                f"fsspec-local watcher: inotify instances at {WATCHED} folders",
                many["inotify_instances"],
                absolute=True,
                baseline="(count)",
            ),
            ratio(  # absolute: a wake-up latency of ~0.1-0.4 ms moves too much to compare
                "fsspec-local watcher: arrival p50, ms",
                watch["arrival_p50_ms"],
                absolute=True,
                baseline="(absolute; raw inotify in the watcher table)",
            ),
            ratio(
                "fsspec-local watcher: arrival 0.2 ms after another arrival, p50, ms",
                watch["arrival_after_another_p50_ms"],
                absolute=True,
                baseline="(absolute; raw inotify in the watcher table)",
            ),
            ratio(
                "fsspec-local watcher: arrival after a name moved out of the folder, ms",
                watch["after_moved_out_ms"],
                absolute=True,
                baseline="(absolute)",
            ),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "fsspec-local.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "floor":
            floor_child(Path(rest[0]))
        elif kind == "watcher":
            watcher_child(int(rest[0]))
        elif kind == "aggregator-large":
            aggregator_large_child(int(rest[0]), int(rest[1]), rest[2] == "1")
        else:
            datasite_child(Path(rest[0]), rest[1] == "1")
        return
    write_json(args.out, run(args.quick))


if __name__ == "__main__":
    main()
