"""The message lifecycle on Drive: after a round trip, the requester deletes its request
and the responder's retention deletes its response and claim — each side only what it
owns, which is all Drive allows — so nothing piles up."""

from __future__ import annotations

import threading
from pathlib import Path

from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.envelope import Request
from syftflwr.info import TransportContext
from syftflwr.registry import get_registry

AGG, DS1 = "agg@example.org", "ds1@example.org"


def test_nothing_is_left_behind(drive: tuple[DriveState, str], tmp_path: Path) -> None:
    state, url = drive
    transport = get_registry().load("gdrive")

    def context(email: str) -> TransportContext:
        token = write_token(tmp_path / f"{email}.json", state.add_user(email))
        return TransportContext(
            transport="gdrive", app_name="app", email=email, aggregator=AGG, datasites=(DS1,),
            options={"token_file": str(token), "api_root_url": url, "poll_interval": 0.02,
                     "retention_interval": 3600, "max_object_size": 300 * 1024},
            state_dir=tmp_path / email,
        )  # fmt: skip

    agg_ctx, ds_ctx = context(AGG), context(DS1)
    rpc = transport.make_rpc(transport.make_client(agg_ctx), agg_ctx)
    events = transport.make_events(transport.make_client(ds_ctx), ds_ctx)
    events.on_request("echo", lambda request: bytes(request.body))
    server = threading.Thread(target=events.run_forever, daemon=True)
    server.start()
    try:
        for body in (b"small", bytes(700 * 1024)):  # one plain, one chunked message
            handle = rpc.send(Request.new(sender=AGG, recipient=DS1, app="app",
                                          endpoint="echo", body=body, ttl=600))  # fmt: skip
            got = []
            while not got:
                got = rpc.wait([handle], timeout=30)
            assert got[0].ok and bytes(got[0].body) == body
            rpc.forget(handle)  # the requester deletes its request (and parts)
    finally:
        events.stop()
        server.join(30)
        events.close()  # a final retention sweep: responses, parts and claims go
        rpc.close()
    left = sorted(
        f.name
        for f in state.files.values()
        if f.mime_type != "application/vnd.google-apps.folder" and f.name != "layout.json"
    )
    assert left == [], f"left on Drive: {left}"
