"""ServerApp that sends one train instruction per datasite and writes what came back
(one entry per reply) to the file named by the ``out`` run-config value."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    nodes = sorted(grid.get_node_ids())
    sent: dict[str, int] = {}
    messages = []
    for node in nodes:
        content = RecordDict({"config": ConfigRecord({"x": float(node % 1000), "server-round": 1})})
        messages.append(Message(content, dst_node_id=node, message_type="train"))
    replies = list(grid.send_and_receive(messages, timeout=float(cfg["round-timeout"])))
    for message in messages:
        sent[message.metadata.message_id] = message.metadata.dst_node_id
    # Anything a late duplicate could still produce is pulled too, and must be nothing.
    late = list(grid.pull_messages(list(sent)))
    record = {
        "sent": sent,
        "replies": [
            {
                "reply_to": r.metadata.reply_to_message_id,
                "src": r.metadata.src_node_id,
                "error": r.error.reason if r.has_error() else None,
                "update": None if r.has_error() else r.content["metrics"]["update"],
            }
            for r in replies
        ],
        "late": [r.error.reason if r.has_error() else "reply" for r in late],
    }
    Path(str(cfg["out"])).write_text(json.dumps(record), encoding="utf-8")
