"""Refusals are told and counted: 25 hostile files of every kind planted in a real
datasite's inbox, plus a request replayed under its original id after retention cleaned
it up (ds1 is `syftflwr run` in its own process, see ``_quickstart_datasite``). Each
gets one log line; the runner's exit summary counts them by kind."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from _quickstart_datasite import AGG, DS1, Aggregator, aggregator, quickstart_datasite
from syftflwr.envelope import Request, encode
from syftflwr.names import new_message_id

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

DS2 = "ds2@openmined.org"
REFUSAL_LINE = re.compile(
    r"rejected request|refused request|ignored request|not a valid request name"
)


def envelope(**fields: object) -> bytes:
    """An unsealed request to ds1's quickstart endpoint (``fields`` change it)."""
    values: dict[str, object] = {
        "id": new_message_id(), "sender": AGG, "recipient": DS1, "app": "quickstart",
        "endpoint": "messages", "body": b"\x0a\x00", "expires_at": time.time() + 600,
    }  # fmt: skip
    values.update(fields)
    return encode(Request(**values))  # type: ignore[arg-type]


def train_and_keep_the_request(agg: Aggregator, inbox: Path) -> tuple[str, bytes]:
    """A real training round trip; the request's bytes as they lay in ds1's inbox."""
    [message_id] = agg.grid.push_messages([agg.train_message()])
    kept = (inbox / f"{message_id}.request").read_bytes()  # published before push returns
    deadline = time.monotonic() + 120
    replies: list[object] = []
    while not replies and time.monotonic() < deadline:
        replies = list(agg.grid.pull_messages([message_id]))
        time.sleep(0.05)
    assert replies and replies[0].has_content(), replies  # type: ignore[attr-defined]
    return message_id, kept


def test_refusals_get_a_line_each_and_the_exit_summary_counts_them_by_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with quickstart_datasite(
        tmp_path, monkeypatch,
        SYFTFLWR_FSSPEC_LOCAL_RETENTION_INTERVAL="0.3",  # cleans up within a second
        SYFTFLWR_MAX_MESSAGE_SIZE="1MiB",
    ) as ds1:  # fmt: skip
        inbox, outbox = ds1.folder(AGG, DS1), ds1.folder(DS1, AGG)
        with aggregator(ds1.env) as agg:
            message_id, kept = train_and_keep_the_request(agg, inbox)
        deadline = time.monotonic() + 60  # the request is forgotten, then its reply removed
        while (outbox / f"{message_id}.response").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (outbox / f"{message_id}.response").exists()
        time.sleep(1.0)  # a sweep or two: the journal marks it cleaned

        for _ in range(8):  # not an envelope
            (inbox / f"{new_message_id()}.request").write_bytes(b"garbage!" * 64)
        for _ in range(4):  # above max_message_size (1 MiB), refused from its size
            with (inbox / f"{new_message_id()}.request").open("wb") as f:
                f.truncate(2 << 20)
        for _ in range(5):  # a sender other than the folder's owner
            mid = new_message_id()
            (inbox / f"{mid}.request").write_bytes(envelope(id=mid, sender=DS2))
        for _ in range(3):  # well-formed, from the aggregator, but not sealed
            mid = new_message_id()
            (inbox / f"{mid}.request").write_bytes(envelope(id=mid))
        for _ in range(2):  # expired
            mid = new_message_id()
            (inbox / f"{mid}.request").write_bytes(
                envelope(id=mid, created_at=time.time() - 7200, expires_at=time.time() - 3600)
            )
        (inbox / "short.request").write_bytes(b"x")  # ids are 8-128 characters
        (inbox / "not!an!id!at!all.request").write_bytes(b"x")
        (tmp_path / "elsewhere").write_bytes(b"secret")
        (inbox / f"{new_message_id()}.request").symlink_to(tmp_path / "elsewhere")
        planted = 8 + 4 + 5 + 3 + 2 + 2 + 1
        (inbox / f"{message_id}.request").write_bytes(kept)  # the replay

        deadline = time.monotonic() + 60
        while len(REFUSAL_LINE.findall(ds1.log)) < planted + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ds1.proc is not None
        ds1.proc.send_signal(signal.SIGINT)
        assert ds1.proc.wait(60) == 0, ds1.log[-3000:]
    log = ds1.log
    replays = [line for line in log.splitlines() if message_id in line and "replay" in line]
    assert len(replays) == 1, log[-5000:]
    assert len(REFUSAL_LINE.findall(log)) == planted + 1, log[-5000:]
    [summary] = [line for line in log.splitlines() if "stopped (signal)" in line]
    assert summary.endswith(
        "1 messages handled, 0 errors, 0 malformed, 26 refused (8 unreadable, 4 oversized, "
        "1 unsafe, 2 misnamed, 5 forged, 2 expired, 3 unauthenticated, 1 replayed)"
    ), summary
