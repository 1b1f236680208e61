"""ClientApp whose update is deterministic: the global arrays plus ``RESUMEAPP_OFFSET``.

Every call is appended to ``RESUMEAPP_CALLS`` (``<kind> <round> <name> <event>
<message id>``, one line each, O_APPEND) so a test can count trainings per (round,
datasite) and handlings per message id; ``RESUMEAPP_SLOW_ROUND``/``RESUMEAPP_SLOW`` make
that round's training sleep, so the aggregator can be killed while its replies are
pending; ``RESUMEAPP_DELAY`` makes every training and evaluation take that long (datasites
answering at different times); ``RESUMEAPP_EXAMPLES`` is the weight FedAvg gives it;
``RESUMEAPP_NOISE=1`` adds per-(datasite, round) pseudo-random values instead of the
offset, so FedAvg's float sum depends on the order it adds the replies in.
"""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _log(kind: str, server_round: int, event: str, msg: Message) -> None:
    name = os.environ.get("RESUMEAPP_NAME", "datasite")
    line = f"{kind} {server_round} {name} {event} {msg.metadata.message_id}\n".encode()
    fd = os.open(os.environ["RESUMEAPP_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@app.train()
def train(msg: Message, context: Context) -> Message:
    server_round = int(msg.content["config"]["server-round"])  # type: ignore[arg-type]
    _log("train", server_round, "started", msg)
    if str(server_round) == os.environ.get("RESUMEAPP_SLOW_ROUND"):
        time.sleep(float(os.environ.get("RESUMEAPP_SLOW", "0")))
    time.sleep(float(os.environ.get("RESUMEAPP_DELAY", "0")))
    offset = float(os.environ.get("RESUMEAPP_OFFSET", "0"))
    arrays = [a + offset for a in msg.content["arrays"].to_numpy_ndarrays()]  # type: ignore[union-attr]
    if os.environ.get("RESUMEAPP_NOISE") == "1":
        seed = zlib.crc32(f"{os.environ.get('RESUMEAPP_NAME')} {server_round}".encode())
        arrays = [a + np.random.default_rng(seed).random(a.shape) for a in arrays]
    _log("train", server_round, "finished", msg)
    examples = int(os.environ.get("RESUMEAPP_EXAMPLES", "1"))
    content = RecordDict(
        {"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": examples})}
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    server_round = int(msg.content["config"]["server-round"])  # type: ignore[arg-type]
    time.sleep(float(os.environ.get("RESUMEAPP_DELAY", "0")))
    _log("evaluate", server_round, "finished", msg)
    mean = float(msg.content["arrays"].to_numpy_ndarrays()[0].mean())  # type: ignore[union-attr]
    metrics = MetricRecord({"mean": mean, "num-examples": 1})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
