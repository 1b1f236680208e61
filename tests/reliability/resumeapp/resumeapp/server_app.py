"""FedAvg (Flower's message API) over a 4-float model, then the final arrays to ``out``.

The train config carries a number drawn from Python's and numpy's generators when the
run starts: a resumed run sends the same instructions only if syftflwr seeded them with
the stopped run's seed. With ``RESUMEAPP_PAUSE`` set, the centralised evaluation after
each round logs ``server <round> between - -`` to ``RESUMEAPP_CALLS`` and sleeps that
long: a moment between rounds a test can kill the aggregator in.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    tag = random.random() + float(np.random.rand())
    pause = float(os.environ.get("RESUMEAPP_PAUSE", "0"))

    def between_rounds(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if pause and server_round > 0:
            line = f"server {server_round} between - -\n".encode()
            fd = os.open(os.environ["RESUMEAPP_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            time.sleep(pause)
        return None

    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord([np.zeros(int(cfg.get("size", 4)), dtype=np.float64)]),
        num_rounds=int(cfg["num-server-rounds"]),
        timeout=float(cfg["round-timeout"]),
        train_config=ConfigRecord({"tag": tag}),
        evaluate_fn=between_rounds,
    )
    np.save(str(cfg["out"]), result.arrays.to_numpy_ndarrays()[0])
