"""A datasite runner in its own OS process, for the multi-process tests.

    python _fsl_datasite.py CONFIG_JSON

CONFIG: root, email, aggregator, datasites, endpoint, mode ("echo" | "count"),
count_dir, state_dir, options (extra transport options), fail_inotify (errno name: make
the watcher backend factory raise it — the documented test seam).

``count`` mode records every handler invocation as a new file in ``count_dir`` and
checks the body's embedded SHA-256 (a partial read would fail it and leave a
``partial-*`` file). Prints ``ready`` once serving; SIGTERM stops it cleanly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import signal
import sys
import uuid
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import syftflwr.plugin as watcher
from syftflwr.envelope import Request
from syftflwr.info import TransportContext
from syftflwr_fsspec_local import plugin


def main() -> None:
    config = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if config.get("fail_inotify"):
        code = getattr(errno, config["fail_inotify"])

        def refuse(*args: object) -> watcher.WatchBackend:
            raise OSError(code, os.strerror(code))

        watcher.set_backend_factory(refuse)
    context = TransportContext(
        transport="fsspec-local",
        app_name=config.get("app", "app"),
        email=config["email"],
        aggregator=config["aggregator"],
        datasites=tuple(config["datasites"]),
        options={"root": config["root"], "retention_interval": 1.0, **config.get("options", {})},
        state_dir=Path(config["state_dir"]) if config.get("state_dir") else None,
    )
    client = plugin.syftflwr_make_client(context)
    events = plugin.syftflwr_make_events(client, context)
    count_dir = Path(config["count_dir"]) if config.get("count_dir") else None

    def handler(request: Request) -> bytes:
        body = bytes(request.body)
        if count_dir is not None:
            (count_dir / f"{request.id}-{uuid.uuid4().hex}").touch()
            payload, digest = body[:-32], body[-32:]
            if hashlib.sha256(payload).digest() != digest:
                (count_dir / f"partial-{request.id}").touch()
        return body

    events.on_request(config.get("endpoint", "echo"), handler)
    signal.signal(signal.SIGTERM, lambda *_: events.stop())
    print("ready", flush=True)
    events.run_forever()
    events.close()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
