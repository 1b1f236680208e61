"""The jobs store (issue 19): received and submitted jobs, append-only decisions, the
rollback rule, trusted submitters and retention — and, in real processes, many writers
and readers at once and SIGKILL in the middle of writes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _jobstore_worker import AGG, DS1, SHARED_JOB, fab_of, identities, make_offer, receive
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.jobs import store as store_module
from syftflwr.jobs.statements import (
    Decision,
    fab_digest,
    sign_decision,
    sign_offer,
    verify_decision,
)
from syftflwr.jobs.store import ORPHAN_AGE, DecisionConflictError, JobError, JobStore

WORKER = Path(__file__).with_name("_jobstore_worker.py")
DS2 = "ds2@clinic.org"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[SigningIdentity, SigningIdentity]:
    return identities(tmp_path)


@pytest.fixture
def ds(tmp_path: Path) -> JobStore:
    with JobStore(tmp_path / "ds1", DS1) as store:
        yield store  # type: ignore[misc]


def job_id(n: int) -> str:
    return f"job{n:029d}"


def test_a_received_job_is_kept_with_its_fab_and_listed_pending(
    tmp_path: Path, ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, _ = keys
    fab = fab_of(1)
    offer = make_offer(agg, job_id(1), fab)
    job, new = ds.receive(offer, sign_offer(offer, agg), agg.public, fab, fab_record=b"rec")
    assert new and job.status == "pending" and job.fab_size == len(fab)
    assert job.signer_key == agg.public and job.fab_record == b"rec"
    assert [j.job_id for j in ds.received_jobs()] == [job_id(1)]
    assert ds.fab(job_id(1)) == fab
    assert ds.fab_path(offer.fab_hash).stat().st_mode & 0o077 == 0
    # delivered again: the same job, not a new one
    again, new = ds.receive(offer, sign_offer(offer, agg), agg.public, fab)
    assert not new and again == job
    # another offer under that id is refused
    other = make_offer(agg, job_id(1), fab, version="2.0")
    with pytest.raises(JobError, match="taken by another offer"):
        ds.receive(other, sign_offer(other, agg), agg.public, fab)
    with pytest.raises(JobError, match="not the one its offer signs"):
        fresh = make_offer(agg, job_id(2), fab)
        ds.receive(fresh, sign_offer(fresh, agg), agg.public, fab + b"!")
    with (
        JobStore(tmp_path / "ds2", DS2) as elsewhere,
        pytest.raises(JobError, match=f"is for {DS1}, not {DS2}"),
    ):
        elsewhere.receive(offer, sign_offer(offer, agg), agg.public, fab)
    assert [j.job_id for j in ds.received_jobs()] == [job_id(1)]


def test_a_fab_altered_on_disk_is_refused(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, _ = keys
    receive(ds, agg, job_id(1), fab_of(1))
    path = ds.fab_path(ds.received_job(job_id(1)).offer.fab_hash)
    path.write_bytes(fab_of(2))
    with pytest.raises(JobError, match="altered after it was received"):
        ds.fab(job_id(1))


def test_decisions_are_final_and_signed(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    receive(ds, agg, job_id(1), fab_of(1))
    rejected, new = ds.decide(job_id(1), "rejected", me, reason="reads /etc/passwd", now=100.0)
    assert new and ds.received_job(job_id(1)).status == "rejected"
    verify_decision(
        rejected.decision.encode(),
        rejected.signature,
        me.public,
        sender=DS1,
        offer=ds.received_job(job_id(1)).offer,
    )
    same, new = ds.decide(job_id(1), "rejected", me, reason="another reason")
    assert not new and same == rejected
    with pytest.raises(DecisionConflictError) as refused:
        ds.decide(job_id(1), "approved", me)
    assert refused.value.earlier == rejected
    assert f"already rejected by {DS1} at 1970-01-01 00:01:40 UTC (reads /etc/passwd)" in str(
        refused.value
    )
    with pytest.raises(JobError, match="cannot decide the jobs of"):
        ds.decide(job_id(1), "approved", agg)
    with pytest.raises(JobError, match="no job"):
        ds.decide(job_id(9), "approved", me)


def test_nothing_updates_or_deletes_a_decision(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    receive(ds, agg, job_id(1), fab_of(1))
    ds.decide(job_id(1), "rejected", me)
    raw = sqlite3.connect(ds.folder / "jobs.sqlite")
    try:
        for statement in ("UPDATE decisions SET verdict = 'approved'", "DELETE FROM decisions"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)
        raw.commit()
    finally:
        raw.close()
    assert ds.received_job(job_id(1)).status == "rejected"
    source = Path(store_module.__file__).read_text()
    assert not re.search(r"(UPDATE|DELETE\s+FROM|REPLACE\s+INTO)\s+decisions", source)


def test_an_older_version_than_an_approved_one_needs_a_rollback(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    receive(ds, agg, job_id(1), fab_of(1), version="1.0")
    receive(ds, agg, job_id(2), fab_of(2), version="1.10")
    ds.decide(job_id(2), "approved", me)
    with pytest.raises(JobError, match=r"1\.0 from agg@uni\.org is older than the approved 1\.10"):
        ds.decide(job_id(1), "approved", me)  # pending since before 1.10 was approved
    ds.decide(job_id(1), "rejected", me)  # rejecting it is fine
    with pytest.raises(JobError, match="--rollback"):
        receive(ds, agg, job_id(3), fab_of(3), version="1.9")
    assert job_id(3) not in {j.job_id for j in ds.received_jobs()}
    receive(ds, agg, job_id(4), fab_of(4), version="1.9", rollback=True)
    assert ds.decide(job_id(4), "approved", me)[1]
    # the current version is the one approved last: after a rollback, the older one
    assert ds.last_approved(AGG, "quickstart").job_id == job_id(4)  # type: ignore[union-attr]
    receive(ds, agg, job_id(5), fab_of(5), version="1.10")  # same version, other build
    ds.decide(job_id(5), "approved", me)
    assert ds.last_approved(AGG, "quickstart").job_id == job_id(5)  # type: ignore[union-attr]
    assert ds.last_approved(AGG, "another-app") is None


def test_the_aggregator_side_follows_each_datasite(
    tmp_path: Path, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    with JobStore(tmp_path / "agg", AGG) as sent:
        to_ds1 = make_offer(agg, job_id(1), fab_of(1))
        to_ds2 = dataclasses.replace(to_ds1, datasite=DS2)
        for offer in (to_ds1, to_ds2, to_ds1):  # the same offer again: still the first
            sent.record_sent(offer, sign_offer(offer, agg), now=1.0)
        other = dataclasses.replace(to_ds1, version="9.0")
        with pytest.raises(JobError, match=f"already sent to {DS1} with another offer"):
            sent.record_sent(other, sign_offer(other, agg))
        assert [j.status for j in sent.submitted_jobs()] == ["not yet seen", "not yet seen"]
        sent.mark_seen(job_id(1), DS1, now=2.0)
        assert [j.status for j in sent.submitted_jobs(job_id(1))] == ["pending", "not yet seen"]
        decision = Decision(to_ds1, "rejected", "too many epochs", DS1, 3.0, False)
        signature = sign_decision(decision, me)
        stored, new = sent.record_answer(decision, signature, now=4.0)
        assert new and stored.verdict == "rejected"
        assert sent.record_answer(decision, signature) == (stored, False)
        [first, second] = sent.submitted_jobs()
        assert (first.status, first.decision.decision.reason) == ("rejected", "too many epochs")  # type: ignore[union-attr]
        assert second.status == "not yet seen"
        flipped = Decision(to_ds1, "approved", "", DS1, 5.0, False)
        with pytest.raises(DecisionConflictError):
            sent.record_answer(flipped, sign_decision(flipped, me))
        unknown = Decision(make_offer(agg, job_id(7), fab_of(7)), "approved", "", DS1, 5.0, False)
        with pytest.raises(JobError, match="not sent to it from here"):
            sent.record_answer(unknown, sign_decision(unknown, me))


def test_trusted_submitters(ds: JobStore) -> None:
    assert ds.trusted_submitters() == {}
    assert ds.trust_submitter(AGG, now=5.0)
    assert not ds.trust_submitter(AGG, now=6.0)
    assert ds.trusted_submitters() == {AGG: 5.0}


def test_retention_deletes_fabs_no_job_needs_and_keeps_every_decision(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    for n, version in enumerate(("1.0", "1.1", "1.2", "1.3"), start=1):
        receive(ds, agg, job_id(n), fab_of(n), version=version)
    ds.decide(job_id(1), "approved", me)  # superseded by 1.2
    ds.decide(job_id(2), "rejected", me)
    ds.decide(job_id(3), "approved", me)  # the current one; 1.3 is pending
    orphan, young = ds.fabs / f"{'e' * 64}.fab", ds.fabs / f".{'f' * 64}.fab.123.tmp"
    orphan.write_bytes(b"left by a kill")
    young.write_bytes(b"being written")
    os.utime(orphan, (time.time() - ORPHAN_AGE - 1,) * 2)
    deleted = ds.prune()
    hashes = {n: ds.received_job(job_id(n)).offer.fab_hash for n in range(1, 5)}
    assert set(deleted) == {ds.fab_path(hashes[1]), ds.fab_path(hashes[2]), orphan}
    assert ds.fab(job_id(3)) == fab_of(3) and ds.fab(job_id(4)) == fab_of(4)
    assert young.exists()
    with pytest.raises(JobError, match="deleted"):
        ds.fab(job_id(2))
    statuses = [(j.job_id, j.status) for j in ds.received_jobs()]
    assert statuses == [
        (job_id(1), "approved"),
        (job_id(2), "rejected"),
        (job_id(3), "approved"),
        (job_id(4), "pending"),
    ]
    assert ds.prune() == []
    # a rollback approved later is the current version: the newer one's FAB may go
    receive(ds, agg, job_id(5), fab_of(5), version="1.1.5", rollback=True)
    ds.decide(job_id(5), "approved", me)
    assert ds.prune() == [ds.fab_path(hashes[3])]
    assert ds.fab(job_id(5)) == fab_of(5) and ds.fab(job_id(4)) == fab_of(4)
    # a rejected job sharing its FAB with a pending one keeps it readable
    receive(ds, agg, job_id(6), fab_of(4), version="1.3")
    ds.decide(job_id(6), "rejected", me)
    assert ds.prune() == [] and ds.fab(job_id(6)) == fab_of(4)


def test_the_current_version_is_the_approval_recorded_last_whatever_its_clock(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    """One rule for the diff base, retention and serve: the decision order of the store
    (a clock stepped back, or two approvals at one instant, change nothing)."""
    agg, me = keys
    receive(ds, agg, job_id(1), fab_of(1), version="1.0", rollback=True)
    receive(ds, agg, job_id(2), fab_of(2), version="1.1")
    receive(ds, agg, job_id(3), fab_of(3), version="1.2")
    ds.decide(job_id(2), "approved", me, now=300.0)
    ds.decide(job_id(3), "approved", me, now=100.0)  # the clock stepped back
    assert ds.last_approved(AGG, "quickstart").job_id == job_id(3)  # type: ignore[union-attr]
    assert [j.job_id for j in ds.served_versions()] == [job_id(3)]
    ds.decide(job_id(1), "approved", me, now=100.0)  # a rollback, at the same instant
    assert ds.last_approved(AGG, "quickstart").job_id == job_id(1)  # type: ignore[union-attr]
    assert [j.job_id for j in ds.served_versions(AGG, "quickstart")] == [job_id(1)]
    assert ds.served_versions(AGG, "elsewhere") == ds.served_versions("x@y.org") == []
    assert ds.received_with_hash(AGG, fab_digest(fab_of(3))).job_id == job_id(3)  # type: ignore[union-attr]
    assert ds.received_with_hash(AGG, "0" * 64) is None


def test_serve_runs_the_version_approved_last_in_each_mailbox_and_retention_keeps_it(
    ds: JobStore, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    """One FAB app served in two mailboxes (``app_name``): each serves its own version
    approved last, and retention keeps both FABs though only one is the app's latest."""
    agg, me = keys
    for n, (version, app_name) in enumerate((("1.0", "site-a"), ("1.1", "site-b")), start=1):
        offer = dataclasses.replace(
            make_offer(agg, job_id(n), fab_of(n), version=version), app_name=app_name
        )
        ds.receive(offer, sign_offer(offer, agg), agg.public, fab_of(n))
        ds.decide(job_id(n), "approved", me)
    assert [(j.offer.app_name, j.job_id) for j in ds.served_versions()] == [
        ("site-a", job_id(1)),
        ("site-b", job_id(2)),
    ]
    assert ds.last_approved(AGG, "quickstart").job_id == job_id(2)  # type: ignore[union-attr]
    assert ds.prune() == []
    assert ds.fab(job_id(1)) == fab_of(1)


def test_jobs_received_before_schema_2_are_served_by_their_mailbox(
    tmp_path: Path, keys: tuple[SigningIdentity, SigningIdentity]
) -> None:
    agg, me = keys
    with JobStore(tmp_path / "ds1", DS1) as ds:
        receive(ds, agg, job_id(1), fab_of(1))
        ds.decide(job_id(1), "approved", me)
        path = ds.folder / "jobs.sqlite"
    raw = sqlite3.connect(path)  # back to schema 1, as an older syftflwr left it
    raw.executescript(
        "DROP INDEX received_by_app_name; ALTER TABLE received DROP COLUMN app_name; "
        "PRAGMA user_version = 1;"
    )
    raw.close()
    with JobStore(tmp_path / "ds1", DS1) as ds:
        assert [j.job_id for j in ds.served_versions(AGG, "quickstart")] == [job_id(1)]


def run_worker(*args: str) -> subprocess.Popen[str]:
    # the code under test too (a source tree on PYTHONPATH), not only the installed one
    path = [str(WORKER.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def test_processes_and_threads_share_one_store(tmp_path: Path) -> None:
    agg, _ = identities(tmp_path)
    with JobStore(tmp_path / "ds1", DS1) as store:
        receive(store, agg, SHARED_JOB, fab_of(0))
    procs = [run_worker("race", str(tmp_path), f"p{n}") for n in range(4)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        results.append(json.loads(out))
    assert [r["errors"] for r in results] == [[]] * 4
    outcomes = [o for r in results for o in r["outcomes"]]
    assert len(outcomes) == 16
    [winner] = [o.split()[1] for o in outcomes if o.startswith("new ")]
    # every other decider got the one decision: the same verdict back, or refused with it
    assert all(o in (f"same {winner}", f"conflict {winner}") for o in outcomes if o[:3] != "new")
    with JobStore(tmp_path / "ds1", DS1) as store:
        jobs = store.received_jobs()
        assert len(jobs) == 1 + 4 * 4 * 5
        assert store.received_job(SHARED_JOB).status == winner
        assert all(j.status != "pending" for j in jobs)
    # every listing saw at least the jobs its own thread had stored (and the shared one)
    assert all(n >= 0 for r in results for n in r["listed"])


def test_sigkill_during_writes_leaves_the_store_readable(tmp_path: Path) -> None:
    """The writer spends nearly all its time writing (a 256 KiB FAB file, then two
    transactions per job), so each SIGKILL lands in the middle of one."""
    _, me = identities(tmp_path)
    kills = 4
    done = 0
    for round_ in range(kills):
        proc = run_worker("churn", str(tmp_path), str(done))
        assert proc.stdout is not None
        lines = 0
        deadline = time.monotonic() + 120
        while lines < 3 + round_ * 2 and time.monotonic() < deadline:  # a few writes in
            if not proc.stdout.readline():
                break
            lines += 1
        assert lines, "the writer made no progress"
        time.sleep(0.01 * round_)  # a different moment of the write cycle each round
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with JobStore(tmp_path / "ds1", DS1) as store:
            assert store.db.one("PRAGMA integrity_check")[0] == "ok"  # type: ignore[index]
            jobs = store.received_jobs()
            for job in jobs:  # no row without its file, and no file torn
                if job.fab_deleted_at is None:
                    assert store.fab(job.job_id)
                if job.decision is not None:
                    verify_decision(
                        job.decision.decision.encode(),
                        job.decision.signature,
                        me.public,
                        sender=DS1,
                        offer=job.offer,
                    )
            done = len(jobs) + 1  # the next writer starts after the last stored job
            store.prune(now=time.time() + ORPHAN_AGE + 1)  # sweeps what a kill left
            assert not [p for p in store.fabs.iterdir() if p.name.endswith(".tmp")]
    assert done > kills
    print(f"{kills} kills, {done - 1} jobs stored")
