"""A datasite process reading one blob from many threads.

usage: python _blob_reader.py ROOT EMAIL NAME SHA256 SIZE THREADS READS

Each thread opens its own events role (no shared cache) and reads the blob READS times.
Prints one line: ``ok N`` (N reads verified), or the first error.
"""

from __future__ import annotations

import sys
import threading

from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import Journal, LocalDirStorage, MailboxEvents, Poller
from syftflwr.roles import BlobRef

AGG = "agg@example.org"


class Client:
    def __init__(self, email: str) -> None:
        self.email = email

    def datasite_url(self, email: str) -> str:
        return email

    def close(self) -> None:
        pass


def main() -> None:
    root, email, name, sha256 = sys.argv[1:5]
    size, threads, reads = map(int, sys.argv[5:8])
    storage = LocalDirStorage(root)
    caps = Capabilities(notifies_arrivals=True, max_object_size=64 * 1024, shares_objects=True)
    ref = BlobRef(name=name, sha256=sha256, size=size)
    context = TransportContext(
        transport="test-mailbox", app_name="app", email=email, aggregator=AGG, datasites=(email,)
    )
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()

    def work() -> None:
        events = MailboxEvents(
            Client(email), context, caps, storage=storage,
            arrivals=Poller(storage, interval=1.0), journal=Journal(None), retention_interval=0,
        )  # fmt: skip
        try:
            for _ in range(reads):
                events.blob_cache.clear()  # every read goes to the files
                events.get_blob(ref, sender=AGG, app="app")
                with lock:
                    done[0] += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            events.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(errors[0] if errors else f"ok {done[0]}", flush=True)


if __name__ == "__main__":
    main()
