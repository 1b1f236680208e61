"""STAND-IN for a syft-flwr 0.5 datasite, in its own OS process, for the interop tests.

syft-flwr 0.5 is not on PyPI (0.4.3 is the newest there), so it cannot be installed
here: this script re-implements, from upstream's source, what its datasite does on the
wire (``P2PFileEvents._poll_loop`` / ``_process_request`` and ``RequestProcessor.process``;
see ``_upstream.py`` for the files it follows). It uses nothing of syftflwr — only flwr,
the file layout and upstream's encodings — and, like upstream, it keeps what it has
processed in memory only, writes its replies in place (not atomically), and answers a
stop message or an unparsable request with no reply at all.

    python _syftflwr05_datasite.py CONFIG_JSON

CONFIG: root, email, app_name, project (folder holding the ClientApp's package),
client_app ("module:attr"), partition_id, num_partitions, run_config, poll_interval.
Prints ``ready`` once polling and ``stopped`` when the aggregator's stop message came.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).parent))

import _upstream as up
from flwr.common import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode

SYSTEM = "system"  # upstream: MessageType.SYSTEM (gone from newer flwr; same value)


def is_stop_signal(message: Message) -> bool:
    if message.metadata.message_type != SYSTEM:
        return False
    if "config" in message.content and "action" in message.content["config"]:
        return message.content["config"]["action"] == "stop"
    return message.metadata.group_id == "final"


def main() -> None:
    config = json.loads(sys.argv[1])
    root, me, app_name = Path(config["root"]), config["email"], config["app_name"]
    sys.path.insert(0, config["project"])
    module, _, attr = config["client_app"].partition(":")
    client_app = getattr(importlib.import_module(module), attr)
    context = Context(
        run_id=0,
        node_id=up.str_to_int(me),
        node_config={
            "partition-id": config["partition_id"],
            "num-partitions": config["num_partitions"],
        },
        state=RecordDict(),
        run_config=config["run_config"],
    )
    processed: set[str] = set()
    print("ready", flush=True)
    while True:
        for sender in up.inbox_senders(root, me):
            folder = up.endpoint_dir(root, sender, me, app_name)
            for path in sorted(folder.glob("*.request")) if folder.is_dir() else ():
                key = f"{sender}:{up.ENDPOINT}:{path.name}"
                if key in processed:
                    continue
                future_id = path.name.rsplit(".", 1)[0]
                outbox = up.endpoint_dir(root, me, sender, app_name)
                try:
                    try:
                        message = up.from_bytes(path.read_bytes())
                    except Exception:
                        print(f"cannot parse {path.name}: no reply", flush=True)
                        processed.add(key)
                        continue
                    if is_stop_signal(message):  # type: ignore[arg-type]
                        print("stopped", flush=True)
                        return
                    try:
                        reply = client_app(message=message, context=context)
                    except Exception as exc:
                        reason = f"Client: '{me}'. Error: {exc}. {traceback.format_exc()}"
                        error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason)
                        reply = Message(error, reply_to=message)
                    data = up.to_bytes(reply)
                except Exception as exc:  # what upstream writes when processing raised
                    data = up.error_bytes(str(exc))
                outbox.mkdir(parents=True, exist_ok=True)
                (outbox / f"{future_id}.response").write_bytes(data)
                processed.add(key)
                print(f"answered {future_id} ({message.metadata.message_type})", flush=True)
        time.sleep(config.get("poll_interval", 0.1))


if __name__ == "__main__":
    main()
