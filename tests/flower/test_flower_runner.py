"""DatasiteRunner: hostile or broken input never stops it; stop and counters work."""

from __future__ import annotations

import logging
import time

import pytest
from _flower_helpers import AGG, APP, DS1, DS2, MemoryFederation
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from syftflwr.envelope import Request
from syftflwr.errors import IdentityMismatchError
from syftflwr.flower import compat
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import DatasiteRunner, error_reason
from syftflwr.flower.serde import decode_message, encode_message


def ok_app(message: Message, context: Context) -> Message:
    return Message(
        RecordDict({"cfg": ConfigRecord({"pid": context.node_config.get("pid", -1)})}),
        reply_to=message,
    )


def start_runner(fed: MemoryFederation, app=ok_app, **kw: object) -> DatasiteRunner:  # type: ignore[no-untyped-def]
    runner = DatasiteRunner(fed.events_for(DS1), app, email=DS1, node_id=node_id_for(DS1), **kw)  # type: ignore[arg-type]
    fed.start(runner.run, "runner")
    return runner


def raw_request(fed: MemoryFederation, body: bytes) -> Request:
    request = Request.new(
        sender=AGG, recipient=DS1, app=APP, endpoint="messages", body=body, ttl=60
    )
    handle = fed.rpc.send(request)
    (response,) = fed.rpc.wait([handle], 30)
    return response  # type: ignore[return-value]


def flower_body(dst: int, run_id: int = 1) -> bytes:
    compat.set_task_identity(run_id)
    message = Message(RecordDict(), dst, "query", ttl=60)
    compat.stamp_instruction(message, run_id=run_id, src_node_id=SUPERLINK_NODE_ID)
    compat.set_message_id(message, "0123456789abcdef")
    return encode_message(message)


def test_malformed_request_gets_an_error_and_runner_keeps_serving(
    federation: MemoryFederation, caplog: pytest.LogCaptureFixture
) -> None:
    runner = start_runner(federation)
    with caplog.at_level(logging.WARNING, logger="syftflwr.flower"):
        response = raw_request(federation, b"\xff\xfe definitely not protobuf")
    assert not response.ok  # type: ignore[attr-defined]
    assert "malformed Flower message" in response.error_text  # type: ignore[attr-defined]
    assert "malformed request" in caplog.text
    good = raw_request(federation, flower_body(node_id_for(DS1)))
    assert good.ok  # type: ignore[attr-defined]
    reply = decode_message(good.body)
    assert reply.metadata.reply_to_message_id == "0123456789abcdef"
    assert runner.stats.malformed == 1 and runner.handled == 1


def test_message_for_another_node_is_refused(federation: MemoryFederation) -> None:
    runner = start_runner(federation)
    response = raw_request(federation, flower_body(node_id_for(DS2)))
    assert not response.ok  # type: ignore[attr-defined]
    assert "reached datasite ds1@example.org" in response.error_text  # type: ignore[attr-defined]
    assert runner.handled == 0


def test_node_and_run_config_reach_the_client_app(federation: MemoryFederation) -> None:
    seen: dict[str, object] = {}

    def app(message: Message, context: Context) -> Message:
        seen.update(
            node=context.node_id, cfg=dict(context.node_config), run=dict(context.run_config)
        )
        return ok_app(message, context)

    start_runner(federation, app, node_config={"pid": 3}, run_config={"lr": 0.1})
    grid = federation.keep(TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1]))
    (reply,) = grid.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    assert reply.content["cfg"]["pid"] == 3
    assert seen == {"node": node_id_for(DS1), "cfg": {"pid": 3}, "run": {"lr": 0.1}}


def test_client_app_returning_garbage_becomes_an_error_reply(federation: MemoryFederation) -> None:
    def wrong(message: Message, context: Context) -> Message:
        return "not a message"  # type: ignore[return-value]

    runner = start_runner(federation, wrong)
    grid = federation.keep(TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1]))
    (reply,) = grid.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert "returned str, not a Message" in reply.error.reason
    assert runner.errors == 1


def test_stop_from_the_aggregator_ends_run_and_local_stop_works(
    federation: MemoryFederation,
) -> None:
    runner = start_runner(federation)
    grid = federation.keep(TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1]))
    grid.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    assert grid.stop_datasites(timeout=30) == {DS1: True}
    federation.threads[0].join(timeout=30)
    assert runner.stopped.is_set() and runner.stats.stopped_by == AGG

    other = DatasiteRunner(federation.events_for(DS2), ok_app, email=DS2, node_id=node_id_for(DS2))
    thread = federation.start(other.run, "other")
    other.stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and other.stats.stopped_by is None


def test_error_reason_uses_flower_format_and_names_the_frame() -> None:
    def inner() -> None:
        raise KeyError("missing")

    try:
        inner()
    except KeyError as exc:
        reason = error_reason(exc)
    assert reason.startswith("<class 'KeyError'>:<''missing''>")
    assert "in inner" in reason


def test_roles_acting_as_someone_else_are_refused(federation: MemoryFederation) -> None:
    with pytest.raises(IdentityMismatchError, match=r"acts as ds1@example\.org"):
        DatasiteRunner(federation.events_for(DS1), ok_app, email=DS2, node_id=node_id_for(DS2))
    with pytest.raises(IdentityMismatchError, match=r"aggregator is ds1@example\.org"):
        TransportGrid(federation.rpc, email=DS1, app_name=APP, datasites=[DS2])


def test_a_stop_ends_only_a_runner_that_served_its_run(
    federation: MemoryFederation, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop names its run: a runner that handled no instruction of that run (it
    serves another one, or the stop was left by an earlier run) acknowledges it, logs
    one INFO line and goes on serving; under the syft-flwr 0.5 profile every stop ends
    the runner, as upstream's does."""
    runner = start_runner(federation)
    old = federation.keep(
        TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1], run_id=7)
    )
    new = federation.keep(
        TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1], run_id=8)
    )
    new.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")], timeout=30)
    with caplog.at_level(logging.INFO, "syftflwr.flower"):
        assert old.stop_datasites(timeout=30) == {DS1: True}  # acknowledged...
    assert not runner.stopped.is_set()  # ...and ignored
    (line,) = [r for r in caplog.records if "ignoring the stop of run 7" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "handled no instruction of that run" in line.getMessage()
    assert len(new.send_and_receive([Message(RecordDict(), node_id_for(DS1), "query")],
                                    timeout=30)) == 1  # fmt: skip
    assert new.stop_datasites(timeout=30) == {DS1: True}
    federation.threads[0].join(timeout=30)
    assert runner.stopped.is_set() and runner.stats.stopped_by == AGG

    upstream = DatasiteRunner(federation.events_for(DS2), ok_app, email=DS2,
                              node_id=node_id_for(DS2), scoped_stops=False)  # fmt: skip
    thread = federation.start(upstream.run, "upstream")
    stranger = federation.keep(
        TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS2], run_id=9)
    )
    assert stranger.stop_datasites(timeout=30) == {DS2: True}
    thread.join(timeout=30)
    assert upstream.stopped.is_set()


def test_a_stop_sent_before_the_runner_started_is_ignored(
    federation: MemoryFederation, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop queued while nobody served (its aggregator died right after sending it) is
    older than the runner that reads it: even once that runner has served the stop's run
    (leftover instructions of it were queued too), the stop does not end it."""
    grid = federation.keep(
        TransportGrid(federation.rpc, email=AGG, app_name=APP, datasites=[DS1], run_id=5)
    )
    grid.push_messages([Message(RecordDict(), node_id_for(DS1), "query")])
    grid.stop_datasites(timeout=0.1)  # nobody serves yet: unacknowledged, still queued
    with caplog.at_level(logging.INFO, "syftflwr.flower"):
        runner = start_runner(federation)
        deadline = time.monotonic() + 30
        while not any("ignoring the stop of run 5" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    assert runner.handled == 1 and not runner.stopped.is_set()
    assert "it was sent before this runner started" in caplog.text
    runner.stop()
