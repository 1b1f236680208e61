"""Request -> response between separate OS processes over a temp dir with real inotify;
hostile files dropped into a serving datasite's inbox; two runners on one inbox."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from _fsl_helpers import AGG, DS1, Datasite, make_context, wait_for
from syftflwr.envelope import Request, encode
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.rpc import MailboxRPC
from syftflwr.names import new_message_id
from syftflwr.roles import RequestHandle
from syftflwr_fsspec_local import plugin

INBOX = Route(AGG, DS1, "app", "echo")


def _aggregator(root: Path, **options: object) -> MailboxRPC:
    ctx = make_context(AGG, root, **options)
    rpc = plugin.syftflwr_make_rpc(plugin.syftflwr_make_client(ctx), ctx)
    assert isinstance(rpc, MailboxRPC)
    return rpc


def _ask(rpc: MailboxRPC, body: bytes, to: str = DS1) -> bytes:
    handle = rpc.send(
        Request.new(sender=AGG, recipient=to, app="app", endpoint="echo", body=body, ttl=60)
    )
    responses = rpc.wait([handle], timeout=30)
    assert responses and responses[0].ok, responses and responses[0].error_text
    rpc.forget(handle)
    return bytes(responses[0].body)


def test_round_trips_between_processes(
    tmp_path: Path, spawn_datasite: Callable[..., Datasite]
) -> None:
    root = tmp_path / "root"
    spawn_datasite(DS1, root, state_dir=str(tmp_path / "ds1-state"))
    rpc = _aggregator(root, state_dir=tmp_path / "agg-state")
    try:
        assert rpc.capabilities.notifies_arrivals
        for i in range(20):
            body = os.urandom(1000 + i)
            assert _ask(rpc, body) == body
    finally:
        rpc.close()


def _response_text(rpc: MailboxRPC, message_id: str) -> str:
    handle = RequestHandle(message_id, DS1, "app", "echo", 0.0, None)
    got: list[str] = []

    def answered() -> bool:
        response = rpc.fetch(handle)
        if response is not None:
            got.append("ok" if response.ok else response.error_text)
        return bool(got)

    assert wait_for(answered), f"no reply to {message_id}"
    return got[0]


def test_hostile_files_are_rejected_and_serving_continues(
    tmp_path: Path, spawn_datasite: Callable[..., Datasite]
) -> None:
    root = tmp_path / "root"
    datasite = spawn_datasite(DS1, root, options={"watch": "auto"})
    rpc = _aggregator(root)
    folder = root / INBOX.folder
    folder.mkdir(parents=True, exist_ok=True)
    good = Request.new(sender=AGG, recipient=DS1, app="app", endpoint="echo", body=b"z" * 500)
    ids = {k: new_message_id() for k in ("garbage", "empty", "truncated", "forged", "link")}
    (folder / f"{ids['garbage']}.request").write_bytes(os.urandom(300))
    (folder / f"{ids['empty']}.request").write_bytes(b"")
    (folder / f"{ids['truncated']}.request").write_bytes(
        encode(replace(good, id=ids["truncated"]))[:-50]
    )
    forged = replace(good, id=ids["forged"], sender="ds2@example.org")
    (folder / f"{ids['forged']}.request").write_bytes(encode(forged))
    outside = tmp_path / "outside-secret"
    outside.write_bytes(encode(replace(good, id=ids["link"])))
    (folder / f"{ids['link']}.request").symlink_to(outside)
    for name in ("..request", "x.request", "a%2F..%2Fb.request"):
        (folder / name).write_bytes(encode(good))
    mallory = root / Route("mallory@evil.example", DS1, "app", "echo").folder
    mallory.mkdir(parents=True)
    (mallory / f"{new_message_id()}.request").write_bytes(encode(good))
    try:
        assert "not a syftflwr envelope" in _response_text(rpc, ids["garbage"])
        assert "truncated" in _response_text(rpc, ids["empty"])
        assert "truncated" in _response_text(rpc, ids["truncated"])
        assert "forged sender" in _response_text(rpc, ids["forged"])
        assert "symbolic link" in _response_text(rpc, ids["link"])
        assert _ask(rpc, b"still here") == b"still here"
    finally:
        rpc.close()
        datasite.stop()
    log = datasite.log
    for key in ("garbage", "empty", "truncated", "forged", "link"):
        assert f"rejected request {ids[key]}" in log, key
    assert "rejected '..request'" in log and "rejected 'x.request'" in log
    assert "Traceback" not in log
    assert outside.read_bytes() == encode(replace(good, id=ids["link"]))
    # nothing was ever written into the foreign sender's folder or back to it
    assert not (root / Route(DS1, "mallory@evil.example", "app", "echo").folder).exists()


def test_two_runner_processes_answer_each_of_300_requests_once(
    tmp_path: Path, spawn_datasite: Callable[..., Datasite]
) -> None:
    root = tmp_path / "root"
    counts = tmp_path / "counts"
    counts.mkdir()
    runners = [
        spawn_datasite(DS1, root, count_dir=str(counts), state_dir=str(tmp_path / f"s{n}"))
        for n in range(2)
    ]
    rpc = _aggregator(root)
    try:
        handles: list[RequestHandle] = []
        for _ in range(300):
            payload = os.urandom(2048)
            body = payload + hashlib.sha256(payload).digest()
            handles.append(
                rpc.send(
                    Request.new(
                        sender=AGG, recipient=DS1, app="app", endpoint="echo", body=body, ttl=120
                    )
                )
            )
        answered: dict[str, bool] = {}
        while len(answered) < len(handles):
            pending = [h for h in handles if h.id not in answered]
            got = rpc.wait(pending, timeout=60)
            assert got, f"{len(pending)} requests never answered"
            for response in got:
                answered[response.id] = response.ok
        assert all(answered.values())
    finally:
        rpc.close()
        for runner in runners:
            runner.stop()
    invocations = [p.name for p in counts.iterdir()]
    assert not [n for n in invocations if n.startswith("partial-")]  # 0 partial reads
    per_request: dict[str, int] = {}
    for name in invocations:
        per_request[name.rsplit("-", 1)[0]] = per_request.get(name.rsplit("-", 1)[0], 0) + 1
    assert len(per_request) == 300
    assert set(per_request.values()) == {1}  # exactly once
    logs = "".join(r.log for r in runners)
    assert "Traceback" not in logs
