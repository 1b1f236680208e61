"""A datasite killed mid-conversation and restarted (same state directory) loses nothing
and answers nothing twice, over the loopback Drive with separate OS processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.envelope import Request, Response
from syftflwr.info import TransportContext
from syftflwr.registry import get_registry
from syftflwr.roles import RequestHandle
from syftflwr.testing.datasite_process import DatasiteProcess, DatasiteSpec, reply_for

AGG, DS1 = "agg@example.org", "ds1@example.org"
OPTIONS = {"poll_interval": 0.02, "max_poll_interval": 0.1, "retention_interval": 0}


@pytest.mark.parametrize(
    "kill_mid_flight",
    [
        False,
        pytest.param(
            True,
            # Drive's multi-request claim makes the claim-then-journal window wide: a
            # kill there leaves a claim without an entry, adopted on restart because the
            # claim names this journal (tests/reliability/test_claim_window.py).
            marks=[pytest.mark.slow],
        ),
    ],
    ids=["killed-idle", "killed-mid-flight"],
)
def test_killed_datasite_restarts_without_losing_or_repeating(
    drive: tuple[DriveState, str], tmp_path: Path, kill_mid_flight: bool
) -> None:
    state, url = drive
    transport = get_registry().load("gdrive")

    def context(email: str) -> TransportContext:
        token = tmp_path / f"{email}.json"
        if not token.exists():
            write_token(token, state.add_user(email))
        return TransportContext(
            transport="gdrive", app_name="app", email=email, aggregator=AGG, datasites=(DS1,),
            options={**OPTIONS, "token_file": str(token), "api_root_url": url},
            state_dir=tmp_path / "state" / email,
        )  # fmt: skip

    agg_ctx = context(AGG)
    rpc = transport.make_rpc(transport.make_client(agg_ctx), agg_ctx)
    spec = DatasiteSpec(transport.entry.name, transport.entry.target, context(DS1), "echo")

    def send(i: int) -> tuple[RequestHandle, bytes]:
        body = f"request-{i}".encode()
        request = Request.new(sender=AGG, recipient=DS1, app="app", endpoint="echo",
                              body=body, ttl=300)  # fmt: skip
        return rpc.send(request), body

    logs: list[DatasiteProcess] = []

    def collect(pending: list[tuple[RequestHandle, bytes]]) -> None:
        responses: dict[str, Response] = {}
        deadline = time.monotonic() + 30
        while len(responses) < len(pending) and time.monotonic() < deadline:
            waiting = [h for h, _ in pending if h.id not in responses]
            responses.update((r.id, r) for r in rpc.wait(waiting, timeout=5))
        for handle, body in pending:
            response = responses.get(handle.id)
            assert response is not None and response.ok, (
                f"request {handle.id} lost; on Drive: "
                + str(
                    {
                        k: [(f.owner, f.content[:60]) for f in state.find(f"{handle.id}.{k}")]
                        for k in ("request", "claim", "response")
                    }
                )
                + "\n"
                + "\n---\n".join(d.log for d in logs)
            )
            assert bytes(response.body) == reply_for(DS1, body)

    first = DatasiteProcess(spec, tmp_path, timeout=60)
    logs.append(first)
    try:
        collect([send(i) for i in range(3)])
        in_flight = [send(i) for i in range(3, 6)]
        if not kill_mid_flight:
            collect(in_flight)
    finally:
        first.proc.kill()  # no clean stop: whatever it was doing is interrupted
        first.proc.wait(10)
    while_down = [send(i) for i in range(6, 9)]
    second = DatasiteProcess(spec, tmp_path, timeout=60)
    logs.append(second)
    try:
        collect(in_flight + while_down)
    finally:
        code = second.stop(timeout=30)
        rpc.close()
    assert code == 0, second.log
    for handle, _ in in_flight + while_down:
        assert len(state.find(f"{handle.id}.response")) == 1, "answered twice"
