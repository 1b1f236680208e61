"""One process hammering a shared journal from threads, the way runners do: for each
request ``state_of`` -> ``claimed`` -> ``state_of`` -> ``answered``.

usage: python _journal_worker.py PREFIX JOURNAL THREADS REQUESTS

Prints one JSON line: ``{"errors": [...first few...], "error_count": n, "answered": n}``.
"""

from __future__ import annotations

import json
import sys
import threading

from syftflwr.errors import StorageError
from syftflwr.mailbox import Journal
from syftflwr.mailbox.journal import InboundState


def main() -> None:
    prefix, path, threads, requests = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5])
    journal = Journal(path)
    errors: list[str] = []
    answered = 0
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        nonlocal answered
        start.wait()
        for i in range(requests):
            mid = f"{prefix}-{t:02d}-{i:06d}"
            try:
                if journal.state_of(mid) is not None:
                    raise AssertionError(f"{mid} exists before it was claimed")
                if not journal.claimed(
                    mid, sender="agg@example.org", app="app", endpoint="ep", owner=prefix
                ):
                    raise AssertionError(f"{mid}: claim refused")
                entry = journal.state_of(mid)
                if entry is None or entry.state is not InboundState.CLAIMED:
                    raise AssertionError(f"{mid}: not claimed after claiming: {entry}")
                journal.answered(mid, status="ok")
            except (StorageError, AssertionError) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                answered += 1

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    journal.close()
    print(json.dumps({"errors": errors[:5], "error_count": len(errors), "answered": answered}))


if __name__ == "__main__":
    main()
