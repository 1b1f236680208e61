"""The aggregator never aggregates a reply twice: once an instruction's reply is pulled,
any later copy of it (a datasite that re-published it after a crash) is dropped. Real
memory-transport roles and a real DatasiteRunner in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from syftflwr.flower.grid import TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import DatasiteRunner
from syftflwr.info import TransportContext
from syftflwr.transports import memory

AGG, DS1, APP = "aggregator@example.org", "ds1@example.org", "dupapp"


def _app(message: Message, context: Context) -> Message:
    return Message(RecordDict({"metrics": MetricRecord({"update": 1.0})}), reply_to=message)


class Federation:
    def __init__(self) -> None:
        self.namespace = f"dup-{uuid.uuid4().hex}"
        self.broker = memory.broker(self.namespace)
        agg = self._context(AGG)
        self.rpc = memory.syftflwr_make_rpc(memory.syftflwr_make_client(context=agg), agg)
        ds = self._context(DS1)
        self.events = memory.syftflwr_make_events(memory.syftflwr_make_client(context=ds), ds)
        runner = DatasiteRunner(self.events, _app, email=DS1, node_id=node_id_for(DS1))
        self.thread = threading.Thread(target=runner.run, daemon=True)
        self.thread.start()
        self.grid = TransportGrid(self.rpc, email=AGG, app_name=APP, datasites=[DS1])

    def _context(self, email: str) -> TransportContext:
        return TransportContext(
            transport="memory",
            app_name=APP,
            email=email,
            aggregator=AGG,
            datasites=(DS1,),
            options={"namespace": self.namespace},
        )

    def instruction(self) -> Message:
        content = RecordDict({"config": ConfigRecord({"server-round": 1})})
        return Message(content, node_id_for(DS1), "train")

    def close(self) -> None:
        self.grid.close()
        self.events.close()
        self.thread.join(10)
        self.rpc.close()
        memory.reset(self.namespace)


@pytest.fixture
def fed() -> Iterator[Federation]:
    f = Federation()
    yield f
    f.close()


def _real(replies: list[Message]) -> list[Message]:
    return [r for r in replies if not r.has_error()]


def _wait_for_response(fed: Federation, message_id: str) -> None:
    deadline = time.monotonic() + 30
    while message_id not in fed.broker.responses:
        assert time.monotonic() < deadline, "no reply from the datasite"
        time.sleep(0.01)


def test_a_reply_delivered_again_is_dropped(fed: Federation) -> None:
    (message_id,) = fed.grid.push_messages([fed.instruction()])
    _wait_for_response(fed, message_id)
    copy = fed.broker.responses[message_id]
    (first,) = fed.grid.pull_messages([message_id])
    assert not first.has_error() and first.metadata.reply_to_message_id == message_id
    # The datasite publishes the same reply again (re-answered from its journal).
    fed.broker.post_response(copy)
    again = list(fed.grid.pull_messages([message_id]))
    assert _real(again) == []
    assert "not a pending message" in (again[0].error.reason or "")
    # the next round gets exactly its own reply, never the stale copy
    (second,) = fed.grid.send_and_receive([fed.instruction()], timeout=30)
    assert not second.has_error()
    assert second.metadata.reply_to_message_id != message_id


def test_concurrent_pulls_return_one_reply(fed: Federation) -> None:
    """Two threads pulling the same instruction (the legacy API's thread pool): exactly
    one of them gets the reply; the other gets nothing or an error, never a copy."""
    for _ in range(20):
        (message_id,) = fed.grid.push_messages([fed.instruction()])
        _wait_for_response(fed, message_id)
        barrier = threading.Barrier(2)
        got: list[Message] = []
        lock = threading.Lock()

        def pull(
            mid: str = message_id,
            barrier: threading.Barrier = barrier,
            got: list[Message] = got,
            lock: threading.Lock = lock,
        ) -> None:
            barrier.wait()
            replies = list(fed.grid.pull_messages([mid]))
            with lock:
                got.extend(replies)

        threads = [threading.Thread(target=pull) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(_real(got)) == 1
