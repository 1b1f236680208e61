"""A datasite serving only approved apps refuses any run whose app hash it did not
approve, before the ClientApp sees it; the aggregator's Flower reply says why.

The Grid names the FAB hash of its app in an authenticated request header
(``syftflwr.app-hash``); ``syftflwr serve`` builds each app's runner with an
``approval``, which hands it the ClientApp of each approved hash.
"""

from __future__ import annotations

import threading

import pytest
from _flower_helpers import AGG, APP, DS1, DS2, MemoryFederation
from flwr.app import ConfigRecord, Context, Message, RecordDict
from syftflwr.errors import ConfigError
from syftflwr.flower.grid import APP_HASH_HEADER, TransportGrid
from syftflwr.flower.node_ids import node_id_for
from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, NotApprovedError

APPROVED = "a" * 64
CHANGED = "b" * 64


def counting_app(calls: list[str]):  # type: ignore[no-untyped-def]
    def app(message: Message, context: Context) -> Message:
        calls.append(message.metadata.message_id)
        return Message(RecordDict({"cfg": ConfigRecord({"ok": 1})}), reply_to=message)

    return app


class ApproveOnly:
    def __init__(self, app: ClientAppLike) -> None:
        self.app = app

    def app_for(self, app_hash: str) -> ClientAppLike:
        if app_hash == APPROVED:
            return self.app
        raise NotApprovedError(
            "approve it with `syftflwr jobs approve`" if app_hash else "not a submitted app"
        )


def serve(federation: MemoryFederation, email: str, calls: list[str]) -> DatasiteRunner:
    runner = DatasiteRunner(
        federation.events_for(email),
        None,
        email=email,
        node_id=node_id_for(email),
        approval=ApproveOnly(counting_app(calls)),
    )
    federation.start(runner.run, f"runner-{email}")
    return runner


def push(federation: MemoryFederation, app_hash: str | None) -> list[Message]:
    grid = federation.keep(
        TransportGrid(
            federation.rpc,
            email=AGG,
            app_name=APP,
            datasites=(DS1, DS2),
            max_wait=30,
            app_hash=app_hash,
        )
    )
    messages = [
        Message(RecordDict({"cfg": ConfigRecord({"x": 1})}), node_id_for(ds), "query")
        for ds in (DS1, DS2)
    ]
    return list(grid.send_and_receive(messages, timeout=30))


def test_only_the_approved_hash_reaches_the_client_app(federation: MemoryFederation) -> None:
    calls: list[str] = []
    runners = [serve(federation, ds, calls) for ds in (DS1, DS2)]
    replies = push(federation, APPROVED)
    assert [r.has_error() for r in replies] == [False, False]
    assert len(calls) == 2

    for app_hash, why in ((CHANGED, "approve it with"), (None, "not a submitted app")):
        refused = push(federation, app_hash)
        assert all(r.has_error() for r in refused)
        for reply in refused:
            assert "not approved" in reply.error.reason
            assert why in reply.error.reason
        assert len(calls) == 2  # the ClientApp never saw them
    assert runners[0].stats.refused == {"not approved": 2}
    assert "2 refused (2 not approved)" in runners[0].stats.describe()


def test_the_grid_names_its_app_hash_in_every_request(federation: MemoryFederation) -> None:
    seen: list[str] = []
    gate = threading.Lock()

    class Record:
        def app_for(self, app_hash: str) -> ClientAppLike:
            with gate:
                seen.append(app_hash)
            return counting_app([])  # type: ignore[no-any-return]

    runner = DatasiteRunner(
        federation.events_for(DS1), None, email=DS1, node_id=node_id_for(DS1), approval=Record()
    )
    federation.start(runner.run, "runner")
    grid = federation.keep(
        TransportGrid(
            federation.rpc,
            email=AGG,
            app_name=APP,
            datasites=(DS1,),
            max_wait=30,
            app_hash=APPROVED,
        )
    )
    message = Message(RecordDict(), node_id_for(DS1), "query")
    (reply,) = grid.send_and_receive([message], timeout=30)
    assert not reply.has_error()
    assert seen == [APPROVED]
    assert APP_HASH_HEADER == "syftflwr.app-hash"


def test_the_syft_flwr_05_profile_cannot_carry_an_app_hash(federation: MemoryFederation) -> None:
    with pytest.raises(ConfigError) as refused:
        TransportGrid(
            federation.rpc,
            email=AGG,
            app_name=APP,
            datasites=(DS1,),
            profile="syft-flwr-0.5",
            app_hash=APPROVED,
        )
    assert "cannot carry the hash of an approved app" in str(refused.value)
    assert "fix:" in str(refused.value)


def test_a_runner_takes_a_client_app_or_an_approval(federation: MemoryFederation) -> None:
    events = federation.events_for(DS1)
    for app, approval in ((None, None), (counting_app([]), ApproveOnly(counting_app([])))):
        with pytest.raises(TypeError, match="client_app or an approval"):
            DatasiteRunner(events, app, email=DS1, node_id=node_id_for(DS1), approval=approval)
