"""Benchmarks of the gdrive transport over the loopback Drive server (real client):

* API calls per idle poll as peers grow (2 -> 50): syftflwr's changes feed next to the
  polling pattern of syft-flwr 0.5 (per sender: a folder lookup plus a listing of its
  inbox folder, every poll), counted by the server;
* request -> response round trips of 1 KB and 100 MB (opaque bytes, in one process).

Prints numbers; asserts nothing about time. The loopback server is Python
(http.server), so MB/s figures are a floor for this machine, not Drive's speed.

    FLWR_TELEMETRY_ENABLED=0 python plugins/gdrive/benchmarks/bench_gdrive.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from _gd_tokens import write_token  # noqa: E402
from drive_server import FOLDER, DriveState, running_drive  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402
from syftflwr.envelope import Request  # noqa: E402
from syftflwr.info import TransportContext  # noqa: E402
from syftflwr.mailbox.layout import Route  # noqa: E402
from syftflwr.registry import get_registry  # noqa: E402
from syftflwr_gdrive.api import DriveAPI, RetryPolicy  # noqa: E402
from syftflwr_gdrive.changes import ChangesFeed  # noqa: E402
from syftflwr_gdrive.client import forget_sessions  # noqa: E402
from syftflwr_gdrive.storage import DriveStorage, quote  # noqa: E402

AGG = "agg@example.org"


def idle_calls(peers_list: list[int], polls: int = 5) -> list[dict[str, float]]:
    rows = []
    for peers in peers_list:
        with running_drive() as (state, url):

            def api(email: str, state: DriveState = state, url: str = url) -> DriveAPI:
                token = state.add_user(email)
                return DriveAPI(Credentials(token=token), root_url=url, policy=RetryPolicy())

            agg = DriveStorage(api(AGG), AGG)
            folders = []
            for i in range(peers):
                email = f"ds{i}@example.org"
                route = Route(email, AGG, "app", "messages")
                DriveStorage(api(email), email).makedirs(route.folder)
                folders.append(route.folder)
            # syftflwr: one changes feed
            feed = ChangesFeed(agg, interval=1, background=False)
            feed.subscribe(lambda folder, name: None).watch(folders)
            feed.poll_once()
            before = state.calls_by(AGG).total()
            for _ in range(polls):
                feed.poll_once()
            ours = (state.calls_by(AGG).total() - before) / polls
            # syft-flwr 0.5's pattern: per sender, look the inbox folder up, list it
            with agg.api.session() as svc:
                before = state.calls_by(AGG).total()
                for _ in range(polls):
                    for i in range(peers):
                        top = f"syft_outbox_inbox_ds{i}@example.org_to_{AGG}"
                        q = (f"name = {quote(top)} and mimeType = {quote(FOLDER)} "
                             "and trashed = false")  # fmt: skip
                        found = svc.files().list(q=q).execute()["files"]
                        if found:
                            svc.files().list(q=f"{quote(found[0]['id'])} in parents").execute()
                upstream = (state.calls_by(AGG).total() - before) / polls
            rows.append({"peers": peers, "syftflwr": ours, "syft-flwr 0.5 pattern": upstream})
            feed.close()
    return rows


def round_trips(sizes: list[int], repeats: int) -> list[dict[str, float]]:
    rows = []
    with running_drive() as (state, url), tempfile.TemporaryDirectory() as tmp:
        transport = get_registry().load("gdrive")

        def context(email: str) -> TransportContext:
            token = write_token(Path(tmp) / f"{email}.json", state.add_user(email))
            return TransportContext(
                transport="gdrive", app_name="app", email=email, aggregator=AGG,
                datasites=("ds1@example.org",), state_dir=Path(tmp) / email,
                options={"token_file": str(token), "api_root_url": url,
                         "poll_interval": 0.01, "max_poll_interval": 0.05},
            )  # fmt: skip

        agg_ctx, ds_ctx = context(AGG), context("ds1@example.org")
        rpc = transport.make_rpc(transport.make_client(agg_ctx), agg_ctx)
        events = transport.make_events(transport.make_client(ds_ctx), ds_ctx)
        events.on_request("echo", lambda request: bytes(request.body))
        server = threading.Thread(target=events.run_forever, daemon=True)
        server.start()
        try:
            for size in sizes:
                body = bytes(size)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    handle = rpc.send(Request.new(sender=AGG, recipient="ds1@example.org",
                                                  app="app", endpoint="echo", body=body,
                                                  ttl=600))  # fmt: skip
                    got = []
                    while not got:
                        got = rpc.wait([handle], timeout=120)
                    times.append(time.perf_counter() - start)
                    assert got[0].body_size == size
                    rpc.forget(handle)
                rows.append({"size": size, "p50_s": statistics.median(times),
                             "min_s": min(times), "repeats": repeats})  # fmt: skip
        finally:
            events.stop()
            server.join(30)
            events.close()
            rpc.close()
            forget_sessions()  # stop the Drive feeds before their state folder goes
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    peers = [2, 10] if args.quick else [2, 10, 25, 50]
    sizes = [1024, 10 * 2**20] if args.quick else [1024, 100 * 2**20]
    result = {
        "idle_calls_per_poll": idle_calls(peers),
        "round_trips": round_trips(sizes, 3 if args.quick else 5),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
