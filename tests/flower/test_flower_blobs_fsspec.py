"""Shared model blobs over real files (fsspec-local, inotify), participants connected the
way ``syftflwr run`` connects them (encryption on): what the storage holds, and a sealed
instruction of round r that the storage hands a datasite again in round r+1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _flower_helpers import AGG, APP, DS1, DS2
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from syftflwr.errors import StorageError
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.plugin import StorageWrapper
from syftflwr.session import Participant, connect

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")

PROJECT = f"""[project]
name = "blobs"

[tool.syftflwr]
app_name = "{APP}"
aggregator = "{AGG}"
datasites = ["{DS1}", "{DS2}"]
transport = "fsspec-local"
"""
WAIT = 30.0


def checksum(message: Message, context: Context) -> Message:
    arrays = message.content["arrays"]
    assert isinstance(arrays, ArrayRecord)
    total = float(arrays["w"].numpy().sum())
    return Message(RecordDict({"m": MetricRecord({"sum": total})}), reply_to=message)


class Recording(StorageWrapper):
    """The aggregator's storage, keeping a copy of every request file it writes."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.requests: dict[str, bytes] = {}

    def put_if_absent(self, path: str, parts: Sequence[Any]) -> bool:
        if path.endswith(".request"):
            self.requests[path] = b"".join(bytes(p) for p in parts)
        return bool(self.inner.put_if_absent(path, parts))


class Federation:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.root = tmp_path, tmp_path / "shared"
        self.project = tmp_path / "app"
        self.project.mkdir()
        (self.project / "pyproject.toml").write_text(PROJECT)
        self.opened: list[Participant] = []
        self.runners: dict[str, tuple[DatasiteRunner, threading.Thread]] = {}

    def connect(self, email: str) -> Participant:
        env = {
            "SYFTFLWR_STATE_DIR": str(self.tmp_path / "state" / email),
            "SYFTFLWR_FSSPEC_LOCAL_ROOT": str(self.root),
            "SYFTFLWR_HOME": str(self.tmp_path / "home"),
        }
        participant = connect(self.project, email=email, env=env)
        self.opened.append(participant)
        return participant

    def serve(self, email: str) -> DatasiteRunner:
        events = self.connect(email).events()
        runner = DatasiteRunner(events, checksum, email=email, node_id=node_id_for(email))
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        self.runners[email] = (runner, thread)
        return runner

    def close(self) -> None:
        for runner, thread in self.runners.values():
            runner.stop()
            thread.join(10)
        for participant in self.opened:
            participant.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    federation = Federation(tmp_path)
    yield federation
    federation.close()


def phase(grid: TransportGrid, value: float, server_round: int) -> list[Message]:
    arrays = ArrayRecord({"w": Array(np.full(40_000, value, dtype=np.float32))})
    content = RecordDict({"config": ConfigRecord({"server-round": server_round}),
                          "arrays": arrays})  # fmt: skip
    messages = [Message(content, node_id_for(e), "train") for e in (DS1, DS2)]
    return list(grid.send_and_receive(messages, timeout=WAIT))


def test_a_round_r_instruction_replayed_in_round_r_plus_1_is_refused(fed: Federation) -> None:
    runner = fed.serve(DS1)
    fed.serve(DS2)
    aggregator = fed.connect(AGG)
    rpc = aggregator.rpc()
    recording = Recording(rpc.inner.storage)  # type: ignore[attr-defined]
    rpc.inner.storage = recording  # type: ignore[attr-defined]
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=(DS1, DS2), max_wait=WAIT,
                         blob_threshold=0)  # fmt: skip
    try:
        replies = phase(grid, 1.0, 1)
        assert [r.content["m"]["sum"] for r in replies] == [40_000.0] * 2
        blobs = list(fed.root.rglob("syftflwr_blobs_*/**/*.blob"))
        assert len(blobs) == 1  # one stored copy for both datasites
        assert np.full(16, 1.0, dtype=np.float32).tobytes() not in blobs[0].read_bytes()
        (old_path, old_bytes), *_ = [(p, b) for p, b in recording.requests.items() if DS1 in p]
        assert [r.content["m"]["sum"] for r in phase(grid, 2.0, 2)] == [80_000.0] * 2
        stats = runner.stats
        target = fed.root / old_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(old_bytes)  # the storage hands DS1 round 1's instruction again
        # round 3 goes after it (one watched folder reports in order): when its replies
        # are in, DS1 has considered the replay; its journal knew the id, so the runner
        # never got it (not even as far as the blob check, which would refuse it: gone)
        assert [r.content["m"]["sum"] for r in phase(grid, 3.0, 3)] == [120_000.0] * 2
        after = runner.stats
        assert (after.handled, after.malformed) == (stats.handled + 1, stats.malformed)
    finally:
        grid.close()


class HeldUpload(StorageWrapper):
    """The aggregator's storage: a blob's upload waits until both datasites claimed the
    messages naming it (they got them, and wait for the blob), then goes on or fails."""

    def __init__(self, inner: Any, root: Path, *, fail: bool = False) -> None:
        super().__init__(inner)
        self.root, self.fail = root, fail
        self.claimed_first: bool | None = None

    def put_if_absent(self, path: str, parts: Sequence[Any]) -> bool:
        if path.endswith(".blob"):
            deadline = time.monotonic() + 10
            while len(list(self.root.rglob("*.claim"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.claimed_first = len(list(self.root.rglob("*.claim"))) >= 2
            if self.fail:
                raise StorageError("the disk is full (a test)")
        return bool(self.inner.put_if_absent(path, parts))


def held_grid(fed: Federation, *, fail: bool = False) -> tuple[TransportGrid, HeldUpload]:
    fed.serve(DS1)
    fed.serve(DS2)
    rpc = fed.connect(AGG).rpc()
    held = HeldUpload(rpc.inner.storage, fed.root, fail=fail)  # type: ignore[attr-defined]
    rpc.inner.storage = held  # type: ignore[attr-defined]
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=(DS1, DS2), max_wait=WAIT,
                         blob_threshold=0)  # fmt: skip
    return grid, held


def test_the_messages_travel_while_the_model_blob_uploads(fed: Federation) -> None:
    """Issue 20's send phase: the datasites get their (sealed) instructions while the
    model uploads, wait for it, and answer with the right model."""
    grid, held = held_grid(fed)
    try:
        replies = phase(grid, 1.0, 1)
        assert held.claimed_first is True, "the messages went only after the upload"
        assert [r.content["m"]["sum"] for r in replies] == [40_000.0] * 2
        assert [r.content["m"]["sum"] for r in phase(grid, 2.0, 2)] == [80_000.0] * 2
    finally:
        grid.close()


def test_a_blob_failing_after_its_messages_went_withdraws_them(fed: Federation) -> None:
    """The upload fails once the datasites hold its messages: they are taken back from
    storage and reported as not sent, with the storage's reason; the next round works."""
    grid, held = held_grid(fed, fail=True)
    try:
        replies = phase(grid, 1.0, 1)
        assert held.claimed_first is True
        assert all(r.has_error() for r in replies)
        assert all("the disk is full (a test)" in r.error.reason for r in replies)
        assert list(fed.root.rglob("*.request")) == []  # withdrawn
        assert list(fed.root.rglob("*.blob")) == []  # and the unfinished blob deleted
        held.fail = False
        assert [r.content["m"]["sum"] for r in phase(grid, 2.0, 2)] == [80_000.0] * 2
    finally:
        grid.close()


class FailsTheFirst(StorageWrapper):
    """The first blob's upload fails once the second one's has started."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.lock, self.count, self.second = threading.Lock(), 0, threading.Event()

    def put_if_absent(self, path: str, parts: Sequence[Any]) -> bool:
        if path.endswith(".blob"):
            with self.lock:
                self.count += 1
                first = self.count == 1
            if first:
                self.second.wait(10)
                raise StorageError("the first upload failed (a test)")
            self.second.set()
        return bool(self.inner.put_if_absent(path, parts))


def test_concurrent_pushes_each_settle_their_own_blob(fed: Federation) -> None:
    """Flower's legacy strategies push from a thread pool: a blob failing in one push
    withdraws that push's messages, not the other's."""
    fed.serve(DS1)
    fed.serve(DS2)
    rpc = fed.connect(AGG).rpc()
    rpc.inner.storage = FailsTheFirst(rpc.inner.storage)  # type: ignore[attr-defined]
    grid = TransportGrid(rpc, email=AGG, app_name=APP, datasites=(DS1, DS2), max_wait=WAIT,
                         blob_threshold=0)  # fmt: skip
    replies: dict[str, Message] = {}

    def push(email: str, value: float) -> None:
        arrays = ArrayRecord({"w": Array(np.full(40_000, value, dtype=np.float32))})
        content = RecordDict({"config": ConfigRecord({"server-round": 1}), "arrays": arrays})
        (reply,) = grid.send_and_receive([Message(content, node_id_for(email), "train")],
                                         timeout=WAIT)  # fmt: skip
        replies[email] = reply

    try:
        threads = [threading.Thread(target=push, args=(e, v)) for e, v in ((DS1, 1.0), (DS2, 2.0))]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(2 * WAIT)
        failed = [r for r in replies.values() if r.has_error()]
        answered = [r for r in replies.values() if not r.has_error()]
        assert len(failed) == 1 and "the first upload failed (a test)" in failed[0].error.reason
        assert [r.content["m"]["sum"] for r in answered] in ([40_000.0], [80_000.0])
        assert time.monotonic() - started < WAIT, "a failed push waited out its round"
    finally:
        grid.close()
