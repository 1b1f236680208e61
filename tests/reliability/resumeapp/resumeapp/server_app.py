"""FedAvg (Flower's message API) over a 4-float model, then the final arrays to ``out``.

The train config carries a number drawn from Python's and numpy's generators when the
run starts: a resumed run sends the same instructions only if syftflwr seeded them with
the stopped run's seed.
"""

from __future__ import annotations

import random

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    tag = random.random() + float(np.random.rand())
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(4, dtype=np.float64)]),
        num_rounds=int(cfg["num-server-rounds"]),
        timeout=float(cfg["round-timeout"]),
        train_config=ConfigRecord({"tag": tag}),
    )
    np.save(str(cfg["out"]), result.arrays.to_numpy_ndarrays()[0])
