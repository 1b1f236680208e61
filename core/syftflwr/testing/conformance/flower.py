"""End to end: a Flower round over the transport — core's ``TransportGrid`` on the
aggregator, a ``DatasiteRunner`` with a tiny ``ClientApp`` per datasite — and the stop
message that ends the runners."""

from __future__ import annotations

import os
import threading
from typing import Any

from syftflwr.testing.conformance._federation import AGGREGATOR, APP, DATASITES, Federation
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
    """A Flower round trip over the transport."""

    def test_flower_round_trip(self, federation: Federation) -> None:
        os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
        import numpy as np
        from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

        from syftflwr.flower.grid import TransportGrid
        from syftflwr.flower.node_ids import node_id_for
        from syftflwr.flower.runner import DatasiteRunner

        runners: list[tuple[DatasiteRunner, threading.Thread]] = []
        for email in DATASITES:
            runner = DatasiteRunner(
                federation.events(email),
                tiny_client_app(),
                email=email,
                node_id=node_id_for(email),
                node_config={"partition-id": DATASITES.index(email)},
            )
            thread = threading.Thread(target=runner.run, name=f"runner-{email}", daemon=True)
            thread.start()
            runners.append((runner, thread))
        grid = TransportGrid(
            federation.rpc(AGGREGATOR),
            email=AGGREGATOR,
            app_name=APP,
            datasites=DATASITES,
            max_wait=federation.timeout,
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
            replies = list(grid.send_and_receive(messages, timeout=federation.timeout))
            assert len(replies) == len(DATASITES), grid.report.failures
            by_node = {reply.metadata.src_node_id: reply for reply in replies}
            assert set(by_node) == set(grid.get_node_ids())
            for node_id, reply in by_node.items():
                assert not reply.has_error(), reply.error
                got = reply.content.array_records["arrays"]["w"].numpy()
                np.testing.assert_array_equal(got, weights + 1)
                assert reply.content.metric_records["metrics"]["node"] == float(node_id % 1_000_003)
            acks = grid.stop_datasites(timeout=federation.timeout)
            assert acks == dict.fromkeys(DATASITES, True), f"stop not acknowledged: {acks}"
            for runner, thread in runners:
                thread.join(federation.timeout)
                assert not thread.is_alive(), f"runner {runner.email} did not stop"
                assert runner.stats.handled >= 1 and runner.stats.errors == 0
        finally:
            grid.close()
            for runner, thread in runners:
                runner.stop()
                thread.join(federation.timeout)
