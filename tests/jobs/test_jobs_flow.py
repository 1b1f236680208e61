"""Issue 19's round over the jobs channel with encryption on: submit -> the datasite
lists it -> review -> approve -> the aggregator sees it approved -> a changed version is
pending with its diff -> reject with a reason -> the aggregator sees the reason. Nothing
of the app is imported on the way (its modules write marker files when imported).

``test_the_core_path`` runs it in this process over a real fsspec-local mailbox (files,
inotify) through the Python API, so ``tests_python`` covers it; ``test_the_full_flow_in
_separate_processes`` (slow) runs the ``syftflwr`` command, one process per step, with
two homes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _bundle_apps import markers_written, stored_fab
from _jobs_world import AGG, DS1, DS2, World, send_job, signed_job
from syftflwr.jobs.review import collect, decide, review
from syftflwr.jobs.submit import submit


def test_the_core_path(tmp_path: Path) -> None:
    world = World(tmp_path, datasites=(DS1, DS2))
    ds1, agg = world.who(DS1), world.who(AGG, accept=())
    collect(ds1)  # ds1 has run `syftflwr jobs` once: its key is out; ds2 never

    first = submit(world.app(), env=world.env, participant=agg.settings)
    by_datasite = {s.datasite: s for s in first.sent}
    assert by_datasite[DS1].delivery.sent
    assert not by_datasite[DS2].delivery.sent
    assert f"no key published by {DS2} yet" in str(by_datasite[DS2].delivery.problem)
    job1 = by_datasite[DS1].job_id

    got = collect(ds1)
    assert got.stored == [job1] and got.refused == []
    shown = review(ds1, job1[:8])
    assert shown.job.status == "pending"
    assert shown.info.entry_points == {
        "serverapp": "marker_app.server_app:app",
        "clientapp": "marker_app.client_app:app",
    }
    assert shown.info.run_config == {"num-server-rounds": 2, "lr": 0.1}
    assert shown.signer_status == "known"  # trusted on first use, when the job arrived
    assert shown.previous is None

    approved = decide(ds1, job1, "approved")
    assert approved.new and approved.delivery.sent
    collect(agg)
    status = {(j.job_id, j.offer.datasite): j.status for j in _submitted(world)}
    assert status == {(job1, DS1): "approved"}

    second = submit(
        world.app("1.1.0", "num-server-rounds = 2\nlr = 0.2\n"),
        env=world.env,
        participant=agg.settings,
    )
    job2 = next(s.job_id for s in second.sent if s.datasite == DS1)
    assert collect(ds1).stored == [job2]
    changed = review(ds1, job2)
    assert changed.job.status == "pending"
    assert changed.previous is not None and changed.previous.job_id == job1
    assert "-lr = 0.1\n+lr = 0.2" in changed.diff
    assert not changed.same_files

    decide(ds1, job2, "rejected", reason="lr too high")
    collected = collect(agg)
    assert [d.verdict for d in collected.decisions] == ["rejected"]
    jobs = {j.job_id: j for j in _submitted(world)}
    assert jobs[job2].status == "rejected"
    assert jobs[job2].decision is not None
    assert jobs[job2].decision.decision.reason == "lr too high"
    assert markers_written(world.markers) == []


def test_review_says_same_files_other_build(tmp_path: Path) -> None:
    """The same source built by flwr 1.26.1 (approved) then by 1.42.0: two hashes, and
    review says so instead of an empty diff."""
    world = World(tmp_path)
    ds1 = world.who(DS1)
    collect(ds1)
    old = send_job(world, signed_job(world, built=stored_fab("1.26.1")))
    collect(ds1)
    decide(ds1, old, "approved")
    new = send_job(world, signed_job(world, built=stored_fab("1.42.0")))
    assert collect(ds1).stored == [new]
    shown = review(ds1, new)
    assert shown.previous is not None and shown.previous.job_id == old
    assert shown.same_files
    assert shown.job.offer.fab_hash != shown.previous.offer.fab_hash


def _submitted(world: World) -> list:  # type: ignore[type-arg]
    from syftflwr.jobs.store import JobStore

    agg = world.who(AGG, accept=())
    with JobStore(agg.state_root, AGG) as store:
        return store.submitted_jobs()


@pytest.mark.slow
def test_the_full_flow_in_separate_processes(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write_settings(AGG)
    world.write_settings(DS1, accept=(AGG,))
    app = world.app()

    seen = world.cli(DS1, "jobs")  # publishes ds1's key for the aggregator
    assert seen.returncode == 0, seen.stderr
    assert f"no jobs yet for {DS1}" in seen.stdout

    sent = world.cli(AGG, "submit", str(app))
    assert sent.returncode == 0, sent.stderr
    assert "built marker-app 1.0.0 with flwr" in sent.stdout
    assert "sent (not yet seen)" in sent.stdout
    assert sent.stderr == ""

    listed = world.cli(DS1, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    [job] = json.loads(listed.stdout)["received"]
    assert (job["from"], job["app"], job["version"], job["status"]) == (
        AGG,
        "marker-app",
        "1.0.0",
        "pending",
    )
    assert job["size"] > 0 and len(job["fab_hash"]) == 64

    shown = world.cli(DS1, "jobs", "show", job["job"][:10])
    assert shown.returncode == 0, shown.stderr
    assert "  serverapp  marker_app.server_app:app" in shown.stdout
    assert "lr                 0.1" in shown.stdout
    assert "(trusted since first seen)" in shown.stdout
    assert "no earlier version of marker-app" in shown.stdout
    assert "locked: no pylock.toml: the app runs with the packages installed here" in shown.stdout

    before = world.cli(AGG, "jobs", "--json")
    assert [j["status"] for j in json.loads(before.stdout)["submitted"]] == ["pending"]

    approved = world.cli(DS1, "jobs", "approve", job["job"])
    assert approved.returncode == 0, approved.stderr
    assert f"decision sent to {AGG}" in approved.stdout

    after = world.cli(AGG, "jobs")
    assert after.returncode == 0, after.stderr
    assert "approved" in after.stdout.splitlines()[-1]

    world.app("1.1.0", "num-server-rounds = 2\nlr = 0.2\n")
    assert world.cli(AGG, "submit", str(app)).returncode == 0
    listed = world.cli(DS1, "jobs", "--json")
    new = [j for j in json.loads(listed.stdout)["received"] if j["status"] == "pending"]
    assert [j["version"] for j in new] == ["1.1.0"]
    diff = world.cli(DS1, "jobs", "show", new[0]["job"])
    assert f"changes since the approved 1.0.0 (job {job['job']})" in diff.stdout
    assert "-lr = 0.1\n+lr = 0.2" in diff.stdout

    rejected = world.cli(DS1, "jobs", "reject", new[0]["job"], "--reason", "lr too high")
    assert rejected.returncode == 0, rejected.stderr
    again = world.cli(DS1, "jobs", "approve", new[0]["job"])
    assert again.returncode == 1
    assert "was already rejected by ds1@example.org" in again.stderr
    assert "a decision is final" in again.stderr

    final = world.cli(AGG, "jobs", "--json")
    submitted = json.loads(final.stdout)["submitted"]
    statuses = {j["version"]: (j["status"], j["reason"]) for j in submitted}
    assert statuses == {"1.0.0": ("approved", ""), "1.1.0": ("rejected", "lr too high")}
    assert markers_written(world.markers) == []


@pytest.mark.slow
def test_live_shows_each_answer_as_it_arrives_and_ends_when_all_are_decided(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.write_settings(AGG)
    world.write_settings(DS1, accept=(AGG,))
    assert world.cli(DS1, "jobs").returncode == 0
    sent = world.cli(AGG, "submit", str(world.app()), "--json")
    [job] = [d["job"] for d in json.loads(sent.stdout)["datasites"]]
    env = {**world.env, "SYFTFLWR_HOME": str(world.home(AGG))}
    live = subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "jobs", "--live"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        assert live.stdout.readline() == f"{job}  {DS1}  not yet seen\n"
        assert world.cli(DS1, "jobs").returncode == 0  # stored: seen
        assert live.stdout.readline() == f"{job}  {DS1}  pending\n"
        assert world.cli(DS1, "jobs", "approve", job).returncode == 0
        assert live.stdout.readline() == f"{job}  {DS1}  approved\n"
        assert live.wait(timeout=60) == 0
        assert live.stderr is not None and live.stderr.read() == ""
    finally:
        live.kill()
        live.wait()


def test_receiving_deletes_the_fabs_no_job_needs(tmp_path: Path) -> None:
    world = World(tmp_path)
    ds1, agg = world.who(DS1), world.who(AGG, accept=())
    collect(ds1)
    first = submit(world.app(), env=world.env, participant=agg.settings)
    collect(ds1)
    decide(ds1, first.sent[0].job_id, "approved")
    second = submit(
        world.app("1.1.0", "num-server-rounds = 2\nlr = 0.2\n"),
        env=world.env,
        participant=agg.settings,
    )
    collect(ds1)
    assert sorted(world.fabs(DS1)) == sorted(f"{s.built.fab_hash}.fab" for s in (first, second))
    decide(ds1, second.sent[0].job_id, "rejected", reason="no")
    collect(ds1)  # the rejected version's FAB goes; the approved one stays
    assert world.fabs(DS1) == [f"{first.built.fab_hash}.fab"]
