"""TransportGrid over the real memory transport, with real DatasiteRunners in threads."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from _flower_helpers import AGG, APP, DS1, DS2, DS3, MemoryFederation
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from syftflwr.envelope import Request
from syftflwr.errors import ConfigError
from syftflwr.flower import compat
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.flower.serde import decode_message, encode_message


def echo_app(message: Message, context: Context) -> Message:
    """Replies with the node id, run id and a per-run call counter kept in context.state."""
    calls = int(context.state["c"]["n"]) + 1 if "c" in context.state else 1
    context.state["c"] = ConfigRecord({"n": calls})
    metrics = MetricRecord({"node": float(context.node_id % 1000), "calls": calls})
    return Message(RecordDict({"metrics": metrics}), reply_to=message)


def make_grid(fed: MemoryFederation, **kw: object) -> TransportGrid:
    return fed.keep(
        TransportGrid(
            fed.rpc,
            email=AGG,
            app_name=APP,
            datasites=fed.datasites,
            clock_skew=0.0,
            **kw,  # type: ignore[arg-type]
        )
    )


def serve(
    fed: MemoryFederation, email: str, app: Callable[[Message, Context], Message] = echo_app
) -> DatasiteRunner:
    runner = DatasiteRunner(fed.events_for(email), app, email=email, node_id=node_id_for(email))
    fed.start(runner.run, f"runner-{email}")
    return runner


def train_messages(grid: TransportGrid, ttl: float | None = None) -> list[Message]:
    return [
        Message(RecordDict({"config": ConfigRecord({"server-round": 1})}), n, "train", ttl=ttl)
        for n in grid.get_node_ids()
    ]


def test_is_a_flower_grid_with_stable_uint64_node_ids(federation: MemoryFederation) -> None:
    grid = make_grid(federation)
    assert isinstance(grid, Grid)
    ids = list(grid.get_node_ids())
    assert ids == [node_id_for(e) for e in (DS1, DS2, DS3)]
    assert all(0 < i < 2**64 for i in ids)
    assert node_id_for(DS1) == node_id_for("DS1@example.org")  # case-insensitive, stable
    assert grid.email_of(ids[1]) == DS2


def test_set_run_accepts_int_and_run_and_sets_task_identity(federation: MemoryFederation) -> None:
    grid = make_grid(federation, run_id=77)
    assert grid.run.run_id == 77
    grid.set_run(compat.make_run(1234))
    assert grid.run_id == 1234 and grid.run.run_id == 1234
    grid.set_run(99)
    assert grid.run_id == 99
    if compat.HAS_TASK_IDENTITY:
        from flwr.supercore.task_identity import TaskIdentity  # type: ignore[import-not-found]

        assert TaskIdentity.run_id == 99
        assert TaskIdentity.node_id == SUPERLINK_NODE_ID


def test_compat_features_match_the_installed_flower() -> None:
    params = list(inspect.signature(Grid.set_run).parameters)
    assert (params[1] != "run_id") == compat.SET_RUN_TAKES_RUN
    assert isinstance(compat.make_run(5), compat.RunType)


def test_round_trip_keeps_flower_reply_semantics(federation: MemoryFederation) -> None:
    for email in federation.datasites:
        serve(federation, email)
    grid = make_grid(federation, run_id=4242)
    sent = train_messages(grid)
    replies = list(grid.send_and_receive(sent, timeout=30))
    assert len(replies) == 3
    by_reply_to = {r.metadata.reply_to_message_id: r for r in replies}
    for message in sent:
        md = message.metadata
        assert md.run_id == 4242 and md.src_node_id == SUPERLINK_NODE_ID
        assert md.message_id  # stamped on push
        reply = by_reply_to[md.message_id].metadata
        assert reply.run_id == 4242
        assert (reply.src_node_id, reply.dst_node_id) == (md.dst_node_id, md.src_node_id)
        assert reply.message_type == "train"
        assert reply.message_id and reply.message_id != md.message_id
    assert grid.pending() == []
    rounds = grid.report.rounds
    assert [r.round for r in rounds] == [1]
    assert sorted(e.info.datasite for e in rounds[0].replies) == [DS1, DS2, DS3]
    assert all(e.metrics["metrics.calls"] == 1.0 for e in rounds[0].replies)


def test_context_persists_across_a_runs_messages(federation: MemoryFederation) -> None:
    runner = serve(federation, DS1)
    grid = make_grid(federation, run_id=1)
    node = node_id_for(DS1)
    for expected in (1, 2, 3):
        (reply,) = grid.send_and_receive([Message(RecordDict(), node, "query")], timeout=30)
        assert reply.content["metrics"]["calls"] == expected
    grid.set_run(2)  # a new run starts from a fresh Context
    (reply,) = grid.send_and_receive([Message(RecordDict(), node, "query")], timeout=30)
    assert reply.content["metrics"]["calls"] == 1
    assert runner.context_for(1).state["c"]["n"] == 3
    assert runner.handled == 4


def test_push_and_pull_separately(federation: MemoryFederation) -> None:
    serve(federation, DS1)
    grid = make_grid(federation)
    (mid,) = grid.push_messages([Message(RecordDict(), node_id_for(DS1), "query")])
    # Event-driven: the transport's wait, not a sleep, tells us the reply is there.
    federation.rpc.wait([grid._pending[mid].handle], 30)
    (reply,) = grid.pull_messages([mid])
    assert reply.metadata.reply_to_message_id == mid
    (again,) = grid.pull_messages([mid])  # pulled once: now unavailable, as in Flower
    assert again.has_error() and again.error.code == ErrorCode.MESSAGE_UNAVAILABLE


def test_push_refuses_unknown_nodes_and_replies(federation: MemoryFederation) -> None:
    grid = make_grid(federation)
    with pytest.raises(ValueError, match="no datasite has node id 12345"):
        grid.push_messages([Message(RecordDict(), 12345, "train")])
    ins = Message(RecordDict(), node_id_for(DS1), "train")
    compat.set_message_id(ins, "abcdef123456")
    with pytest.raises(ValueError, match="is a reply"):
        grid.push_messages([Message(RecordDict(), reply_to=ins)])


def test_missing_reply_at_timeout_is_reported_and_round_goes_on(
    federation: MemoryFederation, caplog: pytest.LogCaptureFixture
) -> None:
    serve(federation, DS1)
    serve(federation, DS2)  # DS3 never answers
    grid = make_grid(federation)
    with caplog.at_level(logging.WARNING, logger="syftflwr.flower"):
        replies = list(grid.send_and_receive(train_messages(grid), timeout=1.0))
    assert sorted(grid.email_of(r.metadata.src_node_id) for r in replies) == [DS1, DS2]
    (failure,) = grid.report.failures
    assert failure.kind == "timeout" and failure.info.datasite == DS3
    assert failure.info.round == 1 and failure.waited >= 1.0
    assert DS3 in caplog.text and "no reply" in caplog.text
    assert [p.datasite for p in grid.pending()] == [DS3]  # may still answer before its TTL


def test_max_wait_caps_a_wait_without_timeout(federation: MemoryFederation) -> None:
    grid = make_grid(federation, max_wait=0.3)
    # Flower's legacy API passes timeout=None; nobody serves: returns after max_wait.
    assert list(grid.send_and_receive(train_messages(grid)[:1], timeout=None)) == []
    assert grid.report.failures[0].kind == "timeout"


def test_expired_instruction_yields_message_unavailable(federation: MemoryFederation) -> None:
    grid = make_grid(federation)
    ttl = 0.3
    replies = list(grid.send_and_receive(train_messages(grid, ttl=ttl)[:2], timeout=None))
    assert len(replies) == 2
    for reply in replies:
        assert reply.has_error()
        assert reply.error.code == ErrorCode.MESSAGE_UNAVAILABLE
        assert reply.metadata.message_type == compat.SYSTEM_MESSAGE_TYPE
        assert "expired" in (reply.error.reason or "")
    assert {f.kind for f in grid.report.failures} == {"expired"}
    # Expired instructions are not delivered: a runner starting now gets nothing.
    runner = serve(federation, DS1)
    grid.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    assert runner.handled == 1


def test_expired_request_is_not_delivered_to_the_client_app(federation: MemoryFederation) -> None:
    calls: list[str] = []

    def app(message: Message, context: Context) -> Message:
        calls.append(message.metadata.message_id)
        return echo_app(message, context)

    grid = make_grid(federation)
    stale = Message(RecordDict(), node_id_for(DS1), "train", ttl=5.0)
    stale.metadata.created_at = time.time() - 60  # sent a minute ago with a 5 s TTL
    (stale_id,) = grid.push_messages([stale])
    serve(federation, DS1, app)
    fresh = grid.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    assert len(list(fresh)) == 1
    assert stale_id not in calls and len(calls) == 1


def test_client_app_exception_reaches_the_strategy_as_error(federation: MemoryFederation) -> None:
    def broken(message: Message, context: Context) -> Message:
        raise ZeroDivisionError("model exploded")

    runner = serve(federation, DS1, broken)
    grid = make_grid(federation)
    (reply,) = grid.send_and_receive(train_messages(grid)[:1], timeout=30)
    assert reply.has_error()
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert "ZeroDivisionError" in reply.error.reason and "model exploded" in reply.error.reason
    assert "broken" in reply.error.reason  # the traceback summary names the frame
    assert runner.errors == 1
    (failure,) = grid.report.failures
    assert failure.kind == "error" and failure.info.datasite == DS1 and failure.info.round == 1


def test_reply_with_wrong_metadata_is_not_aggregated(federation: MemoryFederation) -> None:
    """A datasite answering for another message/run must not slip into aggregation."""

    def liar(request: Request) -> bytes:
        message = decode_message(request.body)
        reply = Message(RecordDict(), reply_to=message)
        reply.metadata.__dict__["_run_id"] = 999  # another run
        compat.set_message_id(reply, "feedbeef0001")
        return encode_message(reply)

    events = federation.events_for(DS1)
    events.on_request("messages", liar)
    federation.start(events.run_forever, "liar")
    grid = make_grid(federation, run_id=5)
    (reply,) = grid.send_and_receive(train_messages(grid)[:1], timeout=30)
    assert reply.has_error() and "run_id 999" in (reply.error.reason or "")
    assert grid.report.failures[0].kind == "invalid"


def test_concurrent_send_and_receive_from_a_thread_pool(federation: MemoryFederation) -> None:
    for email in federation.datasites:
        serve(federation, email)
    grid = make_grid(federation)

    def one(i: int) -> Message:
        node = list(grid.get_node_ids())[i % 3]
        (reply,) = grid.send_and_receive([Message(RecordDict(), node, "query")], timeout=30)
        return reply

    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(one, range(60)))
    assert len({r.metadata.reply_to_message_id for r in replies}) == 60
    assert not any(r.has_error() for r in replies)
    assert len(grid.report.replies) == 60


def test_stop_datasites_ends_every_runner(federation: MemoryFederation) -> None:
    runners = {email: serve(federation, email) for email in federation.datasites}
    grid = make_grid(federation)
    assert len(list(grid.send_and_receive(train_messages(grid), timeout=30))) == 3
    acks = grid.stop_datasites(timeout=30)
    assert acks == {DS1: True, DS2: True, DS3: True}
    for thread in federation.threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert all(r.stats.stopped_by == AGG for r in runners.values())
    assert all(r.stopped.is_set() for r in runners.values())
    assert [r.round for r in grid.report.rounds] == [1]  # the stop is not round progress


def test_stop_reports_a_datasite_that_is_down(federation: MemoryFederation) -> None:
    serve(federation, DS1)
    grid = make_grid(federation)
    assert grid.stop_datasites(timeout=1.0) == {DS1: True, DS2: False, DS3: False}


def test_node_id_collisions_and_duplicates_are_config_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from syftflwr.flower import node_ids

    with pytest.raises(ConfigError, match="listed twice"):
        node_ids.node_ids_for([DS1, DS1.upper()])
    # A real SHA-256 collision cannot be produced: replace the hash for this check only.
    monkeypatch.setattr(node_ids, "node_id_for", lambda email: 42)
    with pytest.raises(ConfigError, match=f"{DS1} and {DS2} hash to the same node id 42"):
        node_ids.node_ids_for([DS1, DS2])
    monkeypatch.setattr(node_ids, "node_id_for", lambda email: SUPERLINK_NODE_ID)
    with pytest.raises(ConfigError, match="Flower reserves"):
        node_ids.node_ids_for([DS1])


def test_thread_safety_of_runner_counters(federation: MemoryFederation) -> None:
    lock = threading.Lock()
    seen: list[int] = []

    def app(message: Message, context: Context) -> Message:
        with lock:
            seen.append(1)
        return echo_app(message, context)

    runner = serve(federation, DS1, app)
    grid = make_grid(federation)
    node = node_id_for(DS1)
    replies = grid.send_and_receive(
        [Message(RecordDict(), node, "query") for _ in range(20)], timeout=30
    )
    assert len(list(replies)) == 20
    assert runner.handled == len(seen) == 20
