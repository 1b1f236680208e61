"""A datasite runner process for the kill -9 tests: ``MailboxEvents`` of ds1 over a local
directory (real files, a real poller), serving ``echo``.

usage: python _inbox_runner.py ROOT STATE_DIR MARKERS [--fast]

The handler writes ``MARKERS/{id}.{pid}.started``; the FIRST runner to start a request
then sleeps (so a test can kill it mid-handling), any later one finishes at once and
writes ``{id}.{pid}.finished``. With ``--fast`` it only appends the id to
``MARKERS/{pid}.handled`` and answers at once (throughput tests). Sweeps run every 0.2 s.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mailbox"))

from _mailbox_helpers import DS1, Client, context
from syftflwr.envelope import Request
from syftflwr.info import Capabilities
from syftflwr.mailbox import LocalDirStorage, MailboxEvents, Poller


def main() -> None:
    root, state, markers = (Path(a) for a in sys.argv[1:4])
    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(message)s", stream=sys.stdout)
    storage = LocalDirStorage(root)
    poller = Poller(storage, interval=0.02, max_interval=0.05)
    events = MailboxEvents(
        Client(DS1),
        context(DS1, state),
        Capabilities(notifies_arrivals=True),
        storage=storage,
        arrivals=poller,
        retention_interval=0.2,
    )

    def handler(request: Request) -> bytes:
        first = not list(markers.glob(f"{request.id}.*.started"))
        (markers / f"{request.id}.{os.getpid()}.started").write_text("", encoding="utf-8")
        if first:
            time.sleep(600)
        (markers / f"{request.id}.{os.getpid()}.finished").write_text("", encoding="utf-8")
        return bytes(request.body)

    handled = (markers / f"{os.getpid()}.handled").open("a", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def fast(request: Request) -> bytes:
        with lock:
            handled.write(request.id + "\n")
        return bytes(request.body)

    events.on_request("echo", fast if "--fast" in sys.argv[4:] else handler)
    print("serving", flush=True)
    events.run_forever()


if __name__ == "__main__":
    main()
