"""ClientApp: trains and evaluates on this datasite's partition (Flower message API)."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from syftflwr_quickstart.task import Array, load_partition
from syftflwr_quickstart.task import evaluate as evaluate_model
from syftflwr_quickstart.task import train as train_model

app = ClientApp()


def _partition(context: Context) -> tuple[Array, Array, Array, Array]:
    return load_partition(
        int(context.node_config["partition-id"]),
        int(context.node_config["num-partitions"]),
        seed=int(context.run_config.get("seed", 42)),
    )


@app.train()
def train(msg: Message, context: Context) -> Message:
    x_train, y_train, _, _ = _partition(context)
    weights = msg.content["arrays"].to_numpy_ndarrays()
    cfg = context.run_config
    new_weights, loss = train_model(
        weights,
        x_train,
        y_train,
        epochs=int(cfg["local-epochs"]),
        lr=float(cfg["learning-rate"]),
        l2=float(cfg["l2"]),
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord(new_weights),
            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y_train)}),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, _, x_test, y_test = _partition(context)
    weights = msg.content["arrays"].to_numpy_ndarrays()
    loss, accuracy = evaluate_model(weights, x_test, y_test)
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy, "num-examples": len(y_test)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
