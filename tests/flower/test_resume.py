"""The pieces of ``syftflwr run --resume`` (docs/resume.md): instruction fingerprints, the
run journal, per-round checkpoints, and a Grid that replays a stopped run from its
journal; plus a send that fails for one datasite. Real memory transport, real sqlite,
real files. The kill -9 test is tests/reliability/test_aggregator_resume.py."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _flower_helpers import AGG, APP, DS1, DS2, DS3, MemoryFederation
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from syftflwr.flower import compat
from syftflwr.flower.checkpoint import RoundCheckpoints, write_checkpoint
from syftflwr.flower.fingerprint import (
    describe_instruction,
    differing_parts,
    instruction_fingerprint,
)
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.resume import RunTracker
from syftflwr.flower.run_journal import (
    MIGRATIONS,
    SCHEMA_VERSION,
    PushState,
    RunJournal,
    RunStatus,
)
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.transports import memory

N1, N2, N3 = node_id_for(DS1), node_id_for(DS2), node_id_for(DS3)


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower builds Messages only with a task identity (a Grid sets one)."""
    compat.set_task_identity(1, SUPERLINK_NODE_ID)


def instruction(
    values: list[float] | None = None,
    *,
    dst: int = N1,
    kind: str = "train",
    server_round: int = 1,
    lr: float = 0.1,
) -> Message:
    arrays = ArrayRecord([np.asarray(values or [1.0, 2.0], dtype=np.float32)])
    config = ConfigRecord({"server-round": server_round, "lr": lr})
    return Message(RecordDict({"arrays": arrays, "config": config}), dst, kind,
                   group_id=str(server_round))  # fmt: skip


# ---------------------------------------------------------------------------- fingerprints
def test_fingerprint_is_the_content_not_the_ids_or_times() -> None:
    a, b = instruction(), instruction()
    compat.set_message_id(b, "another-id")
    compat.stamp_instruction(b, run_id=99, src_node_id=SUPERLINK_NODE_ID)
    b.metadata.ttl = 5.0
    assert instruction_fingerprint(a) == instruction_fingerprint(b)
    # and it survives a round trip through Flower's encoding (what a resumed run decodes)
    assert instruction_fingerprint(decode_message(encode_message(a))) == instruction_fingerprint(a)


@pytest.mark.parametrize(
    "change",
    [
        {"values": [1.0, 2.5]},
        {"dst": N2},
        {"kind": "evaluate"},
        {"server_round": 2},  # group id and config
        {"lr": 0.2},
    ],
    ids=["arrays", "dst", "type", "round", "config"],
)
def test_fingerprint_differs_when_the_work_differs(change: dict[str, Any]) -> None:
    assert instruction_fingerprint(instruction(**change)) != instruction_fingerprint(instruction())


def test_fingerprint_is_the_one_journals_of_earlier_versions_hold() -> None:
    """A journal written by 3566330 is resumed by matching its fingerprints: the hash
    must not change (this value is what 3566330's code computes for this message)."""
    arrays = ArrayRecord([np.asarray([1.0, 2.0], dtype=np.float32)])
    config = ConfigRecord({"server-round": 1, "lr": 0.1, "b": b"x", "l": [1, 2]})
    content = RecordDict({"arrays": arrays, "config": config, "m": MetricRecord({"a": 1.5})})
    message = Message(content, 7, "train", group_id="1")
    assert instruction_fingerprint(message) == (
        "78687e1ff4c54ada2916996004953d8e0fb5a32a7503b2cdcc1a7d6e35d83234"
    )


def test_part_digests_name_what_differs() -> None:
    _, base = describe_instruction(instruction())
    assert differing_parts(base, describe_instruction(instruction(lr=0.2))[1]) == [
        "config:config/lr"
    ]
    assert differing_parts(base, describe_instruction(instruction([1.0, 2.5]))[1]) == [
        "arrays:arrays"
    ]
    assert differing_parts(base, describe_instruction(instruction(dst=N2))[1]) == ["dst"]


def test_fingerprint_keeps_int_float_and_bool_apart() -> None:
    def with_value(value: object) -> str:
        content = RecordDict({"config": ConfigRecord({"v": value})})  # type: ignore[dict-item]
        return instruction_fingerprint(Message(content, N1, "train"))

    assert len({with_value(1), with_value(1.0), with_value(True)}) == 3


# ---------------------------------------------------------------------------- journal
def test_journal_round_trip_and_cleanup(tmp_path: Path) -> None:
    journal = RunJournal.in_state_dir(tmp_path)
    run = journal.start(42, seed=7, config_hash="h")
    assert journal.latest() == run and run.resumable and run.status is RunStatus.RUNNING
    journal.pushing(42, "m1", fingerprint="f1", datasite=DS1, message_type="train",
                    server_round=1, expires_at=123.0)  # fmt: skip
    journal.pushing(42, "m2", fingerprint="f2", datasite=DS2, message_type="train",
                    server_round=1, expires_at=123.0)  # fmt: skip
    journal.mark(42, "m2", PushState.SENT)
    journal.store_reply(42, "m1", b"reply bytes", reply_seq=1, batch=1)
    journal.set_round(42, 1)
    journal.close()

    reopened = RunJournal.in_state_dir(tmp_path)  # another process, later
    pushes = reopened.pushes(42)
    assert [(p.message_id, p.seq, p.fingerprint, p.state, p.reply_seq) for p in pushes] == [
        ("m1", 1, "f1", PushState.RETURNED, 1),
        ("m2", 2, "f2", PushState.SENT, None),
    ]
    assert reopened.load_reply(42, "m1") == b"reply bytes"
    again = reopened.reopen(42)
    assert (again.resumes, again.last_round, again.seed) == (1, 1, 7)
    reopened.end(42, RunStatus.FINISHED)
    assert reopened.load_reply(42, "m1") is None  # a finished run keeps no replies
    assert reopened.pushes(42) == []
    latest = reopened.latest()
    assert latest is not None and not latest.resumable
    reopened.close()


# ---------------------------------------------------------------------------- checkpoints
def test_checkpoint_files_open_with_np_load(tmp_path: Path) -> None:
    arrays = {"arrays": ArrayRecord([np.arange(6, dtype=np.float64).reshape(2, 3)])}
    manifest = write_checkpoint(tmp_path, 3, arrays, source="test", metrics={"acc": 0.5},
                                run_id=9)  # fmt: skip
    with np.load(tmp_path / "round-3.npz") as npz:
        (key,) = npz.files
        assert key.startswith("arrays/")
        np.testing.assert_array_equal(npz[key], np.arange(6).reshape(2, 3))
    data = json.loads(manifest.read_text())
    assert (data["round"], data["run_id"], data["metrics"]) == (3, 9, {"acc": 0.5})


def test_round_checkpoint_holds_the_aggregate_the_next_round_sends(tmp_path: Path) -> None:
    written: list[int] = []
    ckpt = RoundCheckpoints(tmp_path, run_id=1, summary=lambda r: {"r": r},
                            on_written=written.append)  # fmt: skip
    ckpt.observe(1, instruction([0.0, 0.0], server_round=1))
    ckpt.observe(1, instruction([1.0, 1.0], kind="evaluate", server_round=1))  # round 1's result
    assert written == []  # round 1 is not over until round 2 starts
    ckpt.observe(2, instruction([1.0, 1.0], server_round=2))
    ckpt.observe(2, instruction([2.0, 2.0], kind="evaluate", server_round=2))
    ckpt.finish()
    assert written == [1, 2]
    for r in (1, 2):
        with np.load(tmp_path / f"round-{r}.npz") as npz:
            np.testing.assert_array_equal(npz[npz.files[0]], [float(r), float(r)])


# ---------------------------------------------------------------------------- replay
class Counting:
    """A ClientApp that counts its calls per node and echoes the config's lr."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def __call__(self, message: Message, context: Context) -> Message:
        lr = float(message.content["config"]["lr"])  # type: ignore[arg-type]
        self.calls.append((context.node_id, lr))
        metrics = MetricRecord({"lr": lr, "num-examples": 1})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)


def _grid(fed: MemoryFederation, tracker: RunTracker) -> TransportGrid:
    return fed.keep(TransportGrid(fed.rpc, email=AGG, app_name=APP, datasites=fed.datasites,
                                  clock_skew=0.0, max_wait=10.0, tracker=tracker))  # fmt: skip


def _round(grid: TransportGrid, server_round: int, lr: float = 0.1) -> list[Message]:
    messages = [instruction(dst=n, server_round=server_round, lr=lr) for n in (N1, N2)]
    return list(grid.send_and_receive(messages, timeout=10.0))


def test_a_resumed_grid_answers_completed_instructions_from_the_journal(
    federation: MemoryFederation, tmp_path: Path
) -> None:
    fed = dataclasses.replace(federation, datasites=(DS1, DS2))
    app = Counting()
    runners = []
    for email in fed.datasites:
        runner = DatasiteRunner(fed.events_for(email), app, email=email, node_id=node_id_for(email))
        fed.start(runner.run, f"runner-{email}")
        runners.append(runner)
    journal = RunJournal.in_state_dir(tmp_path)
    run = journal.start(5, seed=1, config_hash="h")
    first = _round(_grid(fed, RunTracker(journal, run)), 1)  # then the aggregator "dies"
    assert len(app.calls) == 2

    resumed = RunTracker(journal, journal.reopen(5), replay=True)
    grid = _grid(fed, resumed)
    assert grid.run_id == 5
    again = _round(grid, 1)
    assert len(app.calls) == 2  # no datasite was asked again
    assert sorted(m.metadata.reply_to_message_id for m in again) == sorted(
        m.metadata.reply_to_message_id for m in first
    )
    assert (resumed.replayed, resumed.reattached, resumed.diverged_at) == (2, 0, None)
    assert not resumed.replaying  # replay over: round 2 goes to the datasites
    assert len(_round(grid, 2)) == 2 and len(app.calls) == 4

    for runner in runners:
        runner.stop()


def test_a_replay_that_diverges_is_sent_anew_and_says_why(
    federation: MemoryFederation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fed = dataclasses.replace(federation, datasites=(DS1, DS2))
    app = Counting()
    runners = []
    for email in fed.datasites:
        runner = DatasiteRunner(fed.events_for(email), app, email=email, node_id=node_id_for(email))
        fed.start(runner.run, f"runner-{email}")
        runners.append(runner)
    journal = RunJournal.in_state_dir(tmp_path)
    run = journal.start(6, seed=1, config_hash="h")
    tracker = RunTracker(journal, run)
    grid = _grid(fed, tracker)
    _round(grid, 1)
    _round(grid, 2)

    resumed = RunTracker(journal, journal.reopen(6), replay=True)
    with caplog.at_level(logging.WARNING, "syftflwr.flower"):
        replies = _round(_grid(fed, resumed), 1, lr=0.5)  # not what the stopped run sent
    assert resumed.diverged_at == 1
    # the cause is named: which instruction, which part, and what that part means
    assert "round 1's train instruction to ds1@example.org: config/metric entries " in caplog.text
    assert "'config/lr' differ" in caplog.text and "the clock" in caplog.text
    assert resumed.divergence is not None and "'config/lr'" in resumed.divergence
    assert sorted(float(m.content["metrics"]["lr"]) for m in replies) == [0.5, 0.5]  # type: ignore[arg-type]
    assert len(app.calls) == 6
    # the abandoned instructions leave the journal: a second resume replays the new ones
    assert sorted((p.round, p.state) for p in journal.pushes(6)) == [(1, PushState.RETURNED)] * 2
    for runner in runners:
        runner.stop()


# ---------------------------------------------------------------------------- send failures
def test_a_send_that_fails_for_one_datasite_fails_that_node_only(
    federation: MemoryFederation, caplog: pytest.LogCaptureFixture
) -> None:
    fed = dataclasses.replace(federation, datasites=(DS1, DS2))
    for email in fed.datasites:
        runner = DatasiteRunner(fed.events_for(email), Counting(), email=email,
                                node_id=node_id_for(email))  # fmt: skip
        fed.start(runner.run, f"runner-{email}")
    ctx = dataclasses.replace(fed.context(AGG), max_message_size=4096)
    rpc = memory.syftflwr_make_rpc(client=memory.syftflwr_make_client(context=ctx), context=ctx)
    grid = fed.keep(TransportGrid(rpc, email=AGG, app_name=APP, datasites=fed.datasites,
                                  clock_skew=0.0))  # fmt: skip
    big = instruction([0.0] * 10_000, dst=N1)  # too large for DS1: refused before sending
    with caplog.at_level(logging.WARNING, "syftflwr.flower"):
        replies = list(grid.send_and_receive([big, instruction(dst=N2)], timeout=10.0))
    by_node = {m.metadata.src_node_id: m for m in replies}
    assert set(by_node) == {N1, N2}
    assert by_node[N1].has_error() and "could not send to ds1@example.org" in (
        by_node[N1].error.reason or ""
    )
    assert not by_node[N2].has_error()
    (failure,) = grid.report.failures
    assert (failure.kind, failure.info.datasite) == ("unsent", DS1)
    assert caplog.text.count("could not send to ds1@example.org") == 1  # logged once
    grid.stop_datasites(timeout=5)
    rpc.close()


# ---------------------------------------------------------------------------- reply order
class Staggered:
    """A ClientApp whose datasites answer in the reverse of the order they are asked:
    ds3 first, ds1 last. Its reply is the instruction's arrays plus a per-node offset
    that is not exact in binary (so a sum depends on its order)."""

    def __init__(self, step: float = 0.15) -> None:
        self.step = step
        self.calls: list[int] = []

    def __call__(self, message: Message, context: Context) -> Message:
        node = context.node_id
        self.calls.append(node)
        rank = {N1: 2, N2: 1, N3: 0}[node]
        time.sleep(self.step * rank)
        arrays = message.content["arrays"].to_numpy_ndarrays()  # type: ignore[union-attr]
        offset = {N1: 0.1, N2: 0.2, N3: 0.7}[node]
        content = RecordDict({"arrays": ArrayRecord([a + offset for a in arrays]),
                              "metrics": MetricRecord({"num-examples": 1})})  # fmt: skip
        return Message(content, reply_to=message)


def _serve(fed: MemoryFederation, app: Staggered) -> list[DatasiteRunner]:
    runners = []
    for email in fed.datasites:
        runner = DatasiteRunner(fed.events_for(email), app, email=email, node_id=node_id_for(email))
        fed.start(runner.run, f"runner-{email}")
        runners.append(runner)
    return runners


def _three_rounds(grid: TransportGrid) -> list[list[list[int]]]:
    """Round 1 with send_and_receive, round 2 with push + pull in a loop; the senders of
    each batch of replies, in the order the ServerApp got them."""
    nodes = (N1, N2, N3)
    first = grid.send_and_receive([instruction(dst=n) for n in nodes], timeout=10.0)
    batches = [[[m.metadata.src_node_id for m in first]]]
    waiting = list(grid.push_messages([instruction(dst=n, server_round=2) for n in nodes]))
    pulled: list[list[int]] = []
    while waiting:  # as Flower's own grids do: pull what is still missing
        got = list(grid.pull_messages(waiting))
        if got:
            pulled.append([m.metadata.src_node_id for m in got])
            answered = {m.metadata.reply_to_message_id for m in got}
            waiting = [i for i in waiting if i not in answered]
        else:
            time.sleep(0.02)
    batches.append(pulled)
    return batches


def test_a_replay_hands_replies_over_in_their_order_and_batches(
    federation: MemoryFederation, tmp_path: Path
) -> None:
    """The stopped run got ds3's reply first and ds1's last; its replay hands them over
    in that order (not in push order) and in the same batches, so a strategy's float sums
    come out the same and the next instruction matches the journal."""
    app = Staggered()
    runners = _serve(federation, app)
    journal = RunJournal.in_state_dir(tmp_path)
    run = journal.start(8, seed=1, config_hash="h")
    live = _three_rounds(_grid(federation, RunTracker(journal, run)))
    assert live[0] == [[N3, N2, N1]]  # arrival order, not push order
    assert len(live[1]) >= 2  # pulls saw replies come in over time
    calls = len(app.calls)

    resumed = RunTracker(journal, journal.reopen(8), replay=True)
    assert _three_rounds(_grid(federation, resumed)) == live
    assert len(app.calls) == calls  # every reply came from the journal
    assert (resumed.replayed, resumed.diverged_at) == (6, None)
    for runner in runners:
        runner.stop()


def test_a_run_journal_of_schema_1_is_migrated(tmp_path: Path) -> None:
    """A journal written by 3566330 (schema 1) opens; its runs keep their rows; the
    replies it returned without an order are counted, so --resume can refuse them."""
    folder = tmp_path / "runs"
    folder.mkdir()
    with sqlite3.connect(folder / "runs.sqlite") as db:
        for statement in MIGRATIONS[1]:  # 3566330's schema, verbatim
            db.execute(statement)
        db.execute("INSERT INTO runs (run_id, seed, config_hash, status, pid, started_at, "
                   "updated_at) VALUES (3, 1, 'h', 'running', 1, 0, 0)")  # fmt: skip
        for seq, state in enumerate(("returned", "sent"), start=1):
            db.execute("INSERT INTO pushes VALUES (3, ?, ?, 'f', 'ds1@example.org', 'train', "
                       "1, 0, ?)", (f"m{seq}", seq, state))  # fmt: skip
        db.execute("PRAGMA user_version = 1")
    journal = RunJournal.in_state_dir(tmp_path)
    record = journal.get(3)
    assert record is not None and record.resumable and not record.stops_sent
    assert [(p.message_id, p.state, p.reply_seq) for p in journal.pushes(3)] == [
        ("m1", PushState.RETURNED, None),
        ("m2", PushState.SENT, None),
    ]
    assert journal.unordered_replies(3) == 1
    journal.close()
    with sqlite3.connect(folder / "runs.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
