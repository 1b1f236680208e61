"""One syftflwr datasite runner of the ``syft-flwr-0.5`` profile on syftbox, in its own OS
process (the three-runner take-over test).

    python _sb_syftflwr05_runner.py CONFIG_JSON

CONFIG: ``context`` (the TransportContext's fields), ``calls`` (a folder: each handled
request id is appended, fsynced, to ``{calls}/{pid}``), ``block`` (the handler never
returns once it has recorded its call: the runner is then killed mid-request),
``go`` (a file to wait for before serving, so several runners start at once) and
``slow_claim_reads`` (seconds each read of a claim marker takes, as on a loaded machine
or a slow disk: it widens the window between reading a dead runner's claim and taking
it over; the runner's own code is unchanged). Prints ``ready`` once its roles are built.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from syftflwr.plugin import Request, TransportContext
from syftflwr_syftbox import plugin


def main() -> None:
    config = json.loads(sys.argv[1])
    fields: dict[str, Any] = config["context"]
    context = TransportContext(
        **{
            **fields,
            "state_dir": Path(fields["state_dir"]),
            "datasites": tuple(fields["datasites"]),
        }
    )
    client = plugin.syftflwr_make_client(context)
    events = plugin.syftflwr_make_events(client, context)
    calls = Path(config["calls"]) / str(os.getpid())
    block = bool(config.get("block"))

    def handle(request: Request) -> bytes:
        fd = os.open(calls, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, f"{request.id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if block:
            threading.Event().wait()  # killed here
        return b"echo:" + bytes(memoryview(request.body))

    events.on_request("messages", handle)
    delay = float(config.get("slow_claim_reads", 0))
    storage: Any = events.storage  # type: ignore[attr-defined]
    if delay:
        read = storage.get

        def slow_get(path: str, *, max_size: int | None = None) -> Any:
            data = read(path, max_size=max_size)
            if "/claims/" in f"/{path}":
                time.sleep(delay)  # what was read is handed back late
            return data

        storage.get = slow_get
    print("ready", flush=True)
    go = config.get("go")
    while go and not Path(go).exists():
        time.sleep(0.005)
    events.run_forever()


if __name__ == "__main__":
    main()
