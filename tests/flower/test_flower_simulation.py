"""End to end: whole federations in threads over the memory transport (both strategy APIs)."""

from __future__ import annotations

import dataclasses
import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from _flower_helpers import QUICKSTART
from flwr.app import Context, Message
from syftflwr.flower.progress import BaseReporter, FailureEvent, MessageInfo, ReplyEvent
from syftflwr.flower.simulation import simulate_in_threads
from syftflwr.session import as_project

QS_DATASITES = ("ds1@openmined.org", "ds2@openmined.org", "ds3@openmined.org")


class Collector(BaseReporter):
    def __init__(self) -> None:
        self.sent: list[MessageInfo] = []
        self.replies: list[ReplyEvent] = []
        self.failures: list[FailureEvent] = []
        self.metrics: list[tuple[int, dict[str, float]]] = []

    def on_sent(self, info: MessageInfo) -> None:
        self.sent.append(info)

    def on_reply(self, event: ReplyEvent) -> None:
        self.replies.append(event)

    def on_failure(self, event: FailureEvent) -> None:
        self.failures.append(event)

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        self.metrics.append((server_round, dict(metrics)))


def test_quickstart_trains_to_095_accuracy_in_threads() -> None:
    reporter = Collector()
    result = simulate_in_threads(QUICKSTART, timeout=60, reporter=reporter)
    assert result.error is None, result.error
    assert result.ok, result.describe_failures()
    assert result.datasites == QS_DATASITES
    assert result.app_name == "quickstart"
    assert result.accuracy is not None and result.accuracy >= 0.95
    trained = [r for r in result.rounds if r.round >= 1]
    assert [r.round for r in trained] == [1, 2, 3]
    for info in trained:
        assert info.replies_by_type() == {"train": 3, "evaluate": 3}
        assert "accuracy" in info.metrics
        assert all("metrics.num-examples" in e.metrics for e in info.replies)
    assert result.stop_acks == dict.fromkeys(QS_DATASITES, True)
    assert all(s.handled == 6 and s.errors == 0 for s in result.runner_stats.values())
    # the live reporter saw the same run
    assert len(reporter.sent) == len(reporter.replies) == 18
    assert [m[0] for m in reporter.metrics] == [0, 1, 2, 3]


def test_rounds_and_datasites_overrides() -> None:
    result = simulate_in_threads(QUICKSTART, datasites=2, rounds=1, timeout=60)
    assert result.ok
    assert result.datasites == QS_DATASITES[:2]
    assert [r.round for r in result.rounds if r.round] == [1]


def test_raising_client_app_is_a_failure_the_strategy_survives() -> None:
    def broken(message: Message, context: Context) -> Message:
        raise RuntimeError("disk full on ds2")

    result = simulate_in_threads(
        QUICKSTART, rounds=2, timeout=60, client_apps={QS_DATASITES[1]: broken}
    )
    assert result.error is None and not result.ok
    assert {(f.info.datasite, f.kind) for f in result.failures} == {(QS_DATASITES[1], "error")}
    assert sorted({f.info.round for f in result.failures}) == [1, 2]
    assert all("disk full on ds2" in f.detail for f in result.failures)
    assert result.runner_stats[QS_DATASITES[1]].errors == 4  # train + evaluate, 2 rounds
    assert result.accuracy is not None and result.accuracy >= 0.95  # aggregated from the others
    assert any("ds2@openmined.org (round 1, train): error" in d for d in result.describe_failures())


@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "plaintext"])
def test_datasite_that_never_answers_is_reported_and_rounds_go_on(encryption: bool) -> None:
    # Encrypted, the datasite that never ran never published its key: each send to it
    # fails ("unsent", after the key wait bounded by the round timeout); in plaintext
    # the send succeeds and the wait for its reply times out.
    down = QS_DATASITES[2]
    project = dataclasses.replace(as_project(QUICKSTART), encryption=encryption)
    result = simulate_in_threads(project, rounds=2, timeout=1.0, offline={down})
    assert result.error is None
    assert [r.round for r in result.rounds if r.round] == [1, 2]
    assert {f.info.datasite for f in result.failures} == {down}
    assert {f.kind for f in result.failures} == {"unsent" if encryption else "timeout"}
    if encryption:
        assert all("no public key of ds3@openmined.org" in f.detail for f in result.failures)
    assert all(f.waited >= 1.0 for f in result.failures)
    assert {(f.info.round, f.info.message_type) for f in result.failures} == {
        (1, "train"),
        (1, "evaluate"),
        (2, "train"),
        (2, "evaluate"),
    }
    assert result.stop_acks[down] is False
    assert result.accuracy is not None and result.accuracy >= 0.95


def test_server_app_exception_is_captured_and_datasites_still_stop(tmp_path: Path) -> None:
    pkg = f"boom_{uuid.uuid4().hex[:8]}"
    project = write_project(
        tmp_path,
        pkg,
        server="""
            from flwr.serverapp import ServerApp
            app = ServerApp()

            @app.main()
            def main(grid, context):
                raise RuntimeError("strategy misconfigured")
        """,
        client=QUICKSTART_CLIENT,
    )
    result = simulate_in_threads(project, datasites=2, timeout=30)
    assert result.error is not None and "strategy misconfigured" in result.error
    assert not result.ok
    assert all(result.stop_acks.values())


QUICKSTART_CLIENT = """
    from flwr.clientapp import ClientApp
    app = ClientApp()
"""


def write_project(root: Path, pkg: str, *, server: str, client: str, config: str = "") -> Path:
    (root / pkg).mkdir()
    (root / pkg / "__init__.py").write_text("")
    (root / pkg / "server_app.py").write_text(textwrap.dedent(server))
    (root / pkg / "client_app.py").write_text(textwrap.dedent(client))
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "{pkg}"
            version = "0.1.0"

            [tool.flwr.app.components]
            serverapp = "{pkg}.server_app:app"
            clientapp = "{pkg}.client_app:app"

            [tool.flwr.app.config]
            num-server-rounds = 2
            {config}
            """
        )
    )
    return root


LEGACY_SERVER = """
    import numpy as np
    from flwr.common import ndarrays_to_parameters
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.serverapp import ServerApp

    def server_fn(context):
        strategy = FedAvg(
            min_fit_clients=3, min_evaluate_clients=3, min_available_clients=3,
            initial_parameters=ndarrays_to_parameters([np.zeros(3)]),
        )
        rounds = int(context.run_config["num-server-rounds"])
        return ServerAppComponents(strategy=strategy,
                                   config=ServerConfig(num_rounds=rounds, round_timeout=30))

    app = ServerApp(server_fn=server_fn)
"""

LEGACY_CLIENT = """
    from flwr.client import NumPyClient
    from flwr.clientapp import ClientApp

    class AddOne(NumPyClient):
        def __init__(self, pid):
            self.pid = pid

        def fit(self, parameters, config):
            return [p + 1 for p in parameters], 10, {"pid": self.pid}

        def evaluate(self, parameters, config):
            return 0.5, 10, {"sum": float(parameters[0].sum())}

    def client_fn(context):
        return AddOne(int(context.node_config["partition-id"])).to_client()

    app = ClientApp(client_fn=client_fn)
"""


def test_legacy_server_config_strategy_api_runs_over_the_grid(tmp_path: Path) -> None:
    project = write_project(
        tmp_path, f"legacy_{uuid.uuid4().hex[:8]}", server=LEGACY_SERVER, client=LEGACY_CLIENT
    )
    result = simulate_in_threads(project, datasites=3, timeout=60)
    assert result.error is None, result.error
    assert result.ok, result.describe_failures()
    rounds = [r for r in result.rounds if r.round]
    assert [r.round for r in rounds] == [1, 2]
    for info in rounds:
        assert info.replies_by_type() == {"train": 3, "evaluate": 3}
        sums = {
            v
            for e in info.replies
            if e.info.message_type == "evaluate"
            for k, v in e.metrics.items()
            if k.endswith("sum")
        }
        # FedAvg of "parameters + 1" from zeros: every model element is the round number
        assert sums == {3.0 * info.round}
    assert all(s.handled == 4 for s in result.runner_stats.values())
