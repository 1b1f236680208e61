"""End to end: a Flower round over the transport — core's ``TransportGrid`` on the
aggregator, a ``DatasiteRunner`` with a tiny ``ClientApp`` per datasite — and the stop
message that ends the runners; once on the bare roles, once as participants connect
with default settings (encryption on)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from syftflwr.registry import Registry, Transport
from syftflwr.roles import EventsRole, RPCRole
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DATASITES,
    ContextFactory,
    Federation,
)
from syftflwr.testing.conformance.base import ConformanceBase

WEIGHTS = 64 * 1024
"""float32 values per model (256 KiB): big enough to be a real payload, fast anywhere."""


def tiny_client_app() -> Any:
    """A ClientApp whose ``train`` adds 1 to every array and reports who ran it."""
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()  # type: ignore[untyped-decorator,unused-ignore]
    def train(message: Message, context: Context) -> Message:
        arrays = message.content.array_records["arrays"]
        updated = ArrayRecord({k: _plus_one(v) for k, v in arrays.items()})
        metrics = MetricRecord({"node": float(context.node_id % 1_000_003), "num-examples": 1})
        return Message(RecordDict({"arrays": updated, "metrics": metrics}), reply_to=message)

    return app


def _plus_one(array: Any) -> Any:
    from flwr.app import Array

    return Array.from_numpy_ndarray(array.numpy() + 1)


class FlowerConformance(ConformanceBase):
    """A Flower round trip over the transport: on its bare roles, and as participants
    connect with default settings (encryption on), so a transport passing it trains."""

    def test_flower_round_trip(self, federation: Federation) -> None:
        events = {email: federation.events(email) for email in DATASITES}
        flower_round(federation.rpc(AGGREGATOR), events, federation.timeout)

    def test_trains_with_default_settings(
        self, make_context: ContextFactory, tmp_path: Path, transport: Transport
    ) -> None:
        """Each participant connects as ``syftflwr run`` does (:func:`syftflwr.session.connect`:
        project and participant config, the identity check, and — encryption being on by
        default — its public key published through the client's ``key_directory()`` and
        every message sealed), then trains one Flower round. A transport failing only
        here passes the other checks and still cannot run a default project."""
        from syftflwr.config import ProjectConfig
        from syftflwr.session import Participant, connect

        env = {
            **make_context(AGGREGATOR).env,
            "SYFTFLWR_HOME": str(tmp_path / "default-settings"),
            "SYFTFLWR_MEMORY_NAMESPACE": f"conformance-{uuid.uuid4().hex}",
        }
        env.pop("SYFTFLWR_EMAIL", None)
        participants: list[Participant] = []

        def join(email: str) -> Participant:
            options = {
                key: str(value) if isinstance(value, PurePath) else value
                for key, value in make_context(email).options.items()
                if value is not None
            }
            project = ProjectConfig(
                app_name=APP,
                aggregator=AGGREGATOR,
                datasites=DATASITES,
                transport=transport.name,
                transport_options={transport.name: options},
                configured=True,
            )
            participant = connect(
                project, email=email, env=env, allow_in_process=True, registry=_Only(transport)
            )
            participants.append(participant)
            return participant

        try:
            aggregator = join(AGGREGATOR)
            datasites = [join(email) for email in DATASITES]
            assert aggregator.context.encryption, "encryption is not on by default"
            plain = [p.email for p in (aggregator, *datasites) if not p.encryption]
            assert not plain, f"{plain} run unencrypted with default settings"
            events = {p.email: p.events() for p in datasites}
            flower_round(aggregator.rpc(), events, max(self.timeout, 60.0))
        finally:
            for participant in participants:
                participant.close()


class _Only(Registry):
    """The transport under test, however the suite got it (installed, registered for the
    test, or loaded from a module)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(entry_points=[])
        self.transport = transport

    def load(self, name: str) -> Transport:
        return self.transport if name == self.transport.name else super().load(name)


def flower_round(rpc: RPCRole, events: Mapping[str, EventsRole], timeout: float) -> None:
    """One Flower round: a ``DatasiteRunner`` with :func:`tiny_client_app` per datasite
    over ``events``, core's ``TransportGrid`` over ``rpc``; then the stop message."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    import numpy as np
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

    from syftflwr.flower.grid import TransportGrid
    from syftflwr.flower.node_ids import node_id_for
    from syftflwr.flower.runner import DatasiteRunner

    runners: list[tuple[DatasiteRunner, threading.Thread]] = []
    for email, role in events.items():
        runner = DatasiteRunner(
            role,
            tiny_client_app(),
            email=email,
            node_id=node_id_for(email),
            node_config={"partition-id": DATASITES.index(email)},
        )
        thread = threading.Thread(target=runner.run, name=f"runner-{email}", daemon=True)
        thread.start()
        runners.append((runner, thread))
    grid = TransportGrid(
        rpc, email=AGGREGATOR, app_name=APP, datasites=tuple(events), max_wait=timeout
    )
    try:
        weights = np.arange(WEIGHTS, dtype=np.float32)
        messages = [
            Message(
                RecordDict(
                    {
                        "arrays": ArrayRecord({"w": Array.from_numpy_ndarray(weights)}),
                        "config": ConfigRecord({"server-round": 1}),
                    }
                ),
                node_id,
                "train",
            )
            for node_id in grid.get_node_ids()
        ]
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        assert len(replies) == len(events), grid.report.failures
        by_node = {reply.metadata.src_node_id: reply for reply in replies}
        assert set(by_node) == set(grid.get_node_ids())
        for node_id, reply in by_node.items():
            assert not reply.has_error(), reply.error
            got = reply.content.array_records["arrays"]["w"].numpy()
            np.testing.assert_array_equal(got, weights + 1)
            assert reply.content.metric_records["metrics"]["node"] == float(node_id % 1_000_003)
        acks = grid.stop_datasites(timeout=timeout)
        assert acks == dict.fromkeys(events, True), f"stop not acknowledged: {acks}"
        for runner, thread in runners:
            thread.join(timeout)
            assert not thread.is_alive(), f"runner {runner.email} did not stop"
            assert runner.stats.handled >= 1 and runner.stats.errors == 0
    finally:
        grid.close()
        for runner, thread in runners:
            runner.stop()
            thread.join(timeout)
