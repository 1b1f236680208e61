"""ClientApp that records every training it starts and finishes as marker files.

``CRASHAPP_MARKERS`` names the marker folder; ``CRASHAPP_SLOW`` (seconds) makes training
sleep after its start marker, so a test can kill the process mid-training. The reply's
``update`` is the instruction's ``x`` plus this datasite's ``offset``: the aggregator can
check that each reply answers its own instruction exactly once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _mark(event: str, name: str) -> None:
    folder = Path(os.environ["CRASHAPP_MARKERS"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.{os.getpid()}.{event}").write_text(str(time.time()), encoding="utf-8")


@app.train()
def train(msg: Message, context: Context) -> Message:
    name = os.environ.get("CRASHAPP_NAME", "datasite")
    _mark("started", name)
    time.sleep(float(os.environ.get("CRASHAPP_SLOW", "0")))
    x = float(msg.content["config"]["x"])  # type: ignore[arg-type]
    offset = float(os.environ.get("CRASHAPP_OFFSET", "0"))
    _mark("finished", name)
    metrics = MetricRecord({"update": x + offset, "num-examples": 1})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)
