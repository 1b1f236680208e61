"""Helpers of tests/jobs/test_store.py, also run as a script in separate processes:

python _jobstore_worker.py race  STATE_ROOT NAME      # 4 threads decide one job, list
python _jobstore_worker.py churn STATE_ROOT START     # receive + decide until killed
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from pathlib import Path

from syftflwr.crypto.signing import SigningIdentity
from syftflwr.jobs.statements import JobOffer, sign_offer
from syftflwr.jobs.store import DecisionConflictError, JobStore

AGG, DS1 = "agg@uni.org", "ds1@hospital.org"
SHARED_JOB = "sharedjob00000000000000000000000"


def fab_of(n: int, size: int = 2048) -> bytes:
    """A distinct stand-in FAB (the store never opens it)."""
    return (f"fab {n} ".encode() * (size // 8 + 1))[:size]


def make_offer(
    agg: SigningIdentity, job_id: str, fab: bytes, *, version: str = "1.0", rollback: bool = False
) -> JobOffer:
    return JobOffer(
        job_id=job_id,
        aggregator=AGG,
        datasite=DS1,
        app="quickstart",
        version=version,
        fab_hash=hashlib.sha256(fab).hexdigest(),
        created_at=1_765_000_000.0,
        rollback=rollback,
        signer=agg.fingerprint,
        app_name="quickstart",
        datasites=(DS1, "ds2@clinic.org"),
    )


def receive(store: JobStore, agg: SigningIdentity, job_id: str, fab: bytes, **kw: object) -> None:
    offer = make_offer(agg, job_id, fab, **kw)  # type: ignore[arg-type]
    store.receive(offer, sign_offer(offer, agg), agg.public, fab)


def identities(root: Path) -> tuple[SigningIdentity, SigningIdentity]:
    return (
        SigningIdentity.load_or_create(root / "agg", AGG),
        SigningIdentity.load_or_create(root / "ds1", DS1),
    )


def race(root: Path, name: str) -> dict[str, object]:
    """4 threads: each receives 5 jobs of its own and decides them, decides the shared
    job (approve or reject by parity), and lists the store between writes."""
    agg, me = identities(root)
    store = JobStore(root / "ds1", DS1)
    start = threading.Barrier(4)
    outcomes: list[str] = []
    listed: list[int] = []
    errors: list[str] = []

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(5):
                job = f"{name}t{t}job{i:04d}"
                receive(store, agg, job, fab_of(hash((name, t, i)) % 10_000))
                store.decide(job, "approved" if i % 2 else "rejected", me, reason="r")
                listed.append(len(store.received_jobs()) - (i + 2))
                if i == 2:
                    verdict = "approved" if t % 2 else "rejected"
                    try:
                        stored, new = store.decide(SHARED_JOB, verdict, me)  # type: ignore[arg-type]
                        outcomes.append(f"{'new' if new else 'same'} {stored.verdict}")
                    except DecisionConflictError as exc:
                        outcomes.append(f"conflict {exc.earlier.verdict}")
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    return {"outcomes": outcomes, "listed": listed, "errors": errors}


def churn(root: Path, start: int) -> None:
    """Receive and decide jobs with 256 KiB FABs as fast as possible, forever: the
    process is killed with SIGKILL while it writes."""
    agg, me = identities(root)
    store = JobStore(root / "ds1", DS1)
    n = start
    while True:
        job = f"churnjob{n:08d}"
        receive(store, agg, job, fab_of(n, 256 * 1024))
        store.decide(job, "approved" if n % 2 else "rejected", me, reason=f"n={n}")
        n += 1
        print(n, flush=True)


if __name__ == "__main__":
    mode, root = sys.argv[1], Path(sys.argv[2])
    if mode == "race":
        print(json.dumps(race(root, sys.argv[3])))
    else:
        churn(root, int(sys.argv[3]))
