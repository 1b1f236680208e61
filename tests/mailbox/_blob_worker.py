"""A sender storing one chunked blob, to be killed with SIGKILL by the test.

usage: python _blob_worker.py ROOT STATE_DIR MOMENT TTL

MOMENT ``stored``: store the blob, print ``stored NAME`` and wait to be killed.
MOMENT ``writing``: print ``writing NAME`` when the second part is being written, and
hang there (a crash mid-write). Part size 1 KiB; the blob is 10 KiB.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from syftflwr.envelope import Buffer
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import LocalDirStorage, MailboxRPC, Poller

AGG, DS1 = "agg@example.org", "ds1@example.org"


class HangingStorage(LocalDirStorage):
    """Hangs on the second part it writes, after saying which blob it was."""

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        if ".part-00002-" in path:
            name = path.rsplit("/", 1)[1].split(".", 1)[0]
            print(f"writing {name}", flush=True)
            threading.Event().wait()
        super().put(path, parts)


def main() -> None:
    root, state_dir, moment, ttl = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    storage = HangingStorage(root) if moment == "writing" else LocalDirStorage(root)
    context = TransportContext(
        transport="test-mailbox",
        app_name="app",
        email=AGG,
        aggregator=AGG,
        datasites=(DS1,),
        state_dir=Path(state_dir),
    )
    caps = Capabilities(notifies_arrivals=True, max_object_size=1024, shares_objects=True)

    class Client:
        email = AGG

        def datasite_url(self, email: str) -> str:
            return email

        def close(self) -> None:
            pass

    rpc = MailboxRPC(
        Client(),
        context,
        caps,
        storage=storage,
        arrivals=Poller(storage, interval=0.05),
        retention_interval=0,
    )
    ref = rpc.put_blob(
        [bytes(range(256)) * 40], app="app", recipients=[DS1], expires_at=time.time() + ttl
    )
    print(f"stored {ref.name}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
