"""ServerApp: FedAvg over every datasite, centralised evaluation on a held-out split."""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from syftflwr_quickstart.task import evaluate, initial_weights, load_holdout

try:  # optional: live metrics when run by syftflwr; a no-op under `flwr run`
    from syftflwr.flower.progress import report_metrics
except ImportError:  # pragma: no cover

    def report_metrics(server_round: int, metrics: dict[str, float], source: str = "") -> None:
        pass


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    x_holdout, y_holdout = load_holdout(seed=int(cfg.get("seed", 42)))

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        loss, accuracy = evaluate(arrays.to_numpy_ndarrays(), x_holdout, y_holdout)
        report_metrics(server_round, {"accuracy": accuracy, "loss": loss})
        return MetricRecord({"accuracy": accuracy, "loss": loss})

    strategy = FedAvg(
        fraction_train=float(cfg.get("fraction-train", 1.0)),
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=1,
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial_weights()),
        num_rounds=int(cfg["num-server-rounds"]),
        timeout=float(cfg.get("round-timeout", 3600.0)),
        train_config=ConfigRecord({"lr": float(cfg["learning-rate"])}),
        evaluate_fn=central_evaluate,
    )
