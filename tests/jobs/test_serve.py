"""``syftflwr serve``'s approved code (``syftflwr.jobs.serve.ApprovedCode``), with a real
jobs store, real FABs and the ClientApp in a real child process: a request runs on the
code of exactly the hash it names, and only if this data owner approved that hash last.

The app's modules write marker files when imported: receiving and approving a job runs
nothing of it; the first request on the approved hash does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _bundle_apps import markers_written, write_app
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.flower import compat
from syftflwr.flower.runner import NotApprovedError
from syftflwr.jobs.fab import BuiltFab, build_fab
from syftflwr.jobs.serve import ApprovedCode, ServedApp, approved_jobs
from syftflwr.jobs.statements import JobOffer, fab_digest, sign_offer
from syftflwr.jobs.store import JobStore
from syftflwr.names import new_message_id

AGG, DS1, DS2 = "agg@example.org", "ds1@example.org", "ds2@example.org"
NODE = 42
CLIENT = b"""from flwr.app import Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from marker_app.task import steps

app = ClientApp()


@app.train()
def train(msg, context):
    return Message(
        RecordDict({"metrics": MetricRecord({"steps": steps(), "lr": context.run_config["lr"]})}),
        reply_to=msg,
    )
"""


def build(tmp: Path, version: str, steps: int, markers: Path) -> BuiltFab:
    task = f"def steps() -> int:\n    return {steps}\n".encode()
    root = write_app(
        tmp / f"app-{version}",
        version=version,
        markers=markers,
        extra={"marker_app/client_app.py": CLIENT, "marker_app/task.py": task},
    )
    return build_fab(root)


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.agg = SigningIdentity.load_or_create(tmp / "agg", AGG)
        self.ds = SigningIdentity.load_or_create(tmp / "ds", DS1)
        self.store = JobStore(tmp / "ds", DS1)
        self.markers = tmp / "markers"
        self.markers.mkdir()
        self.served = ServedApp(AGG, "marker")
        self.code = ApprovedCode(self.store, self.served, tmp / "apps", env=dict(os.environ))

    def receive(self, version: str, steps: int, *, rollback: bool = False) -> tuple[str, str]:
        built = build(self.tmp, version, steps, self.markers)
        offer = JobOffer(
            job_id=new_message_id(),
            aggregator=AGG,
            datasite=DS1,
            app=built.name,
            version=built.version,
            fab_hash=built.fab_hash,
            created_at=1.0,
            rollback=rollback,
            signer=self.agg.fingerprint,
            app_name="marker",
            datasites=(DS1, DS2),
        )
        self.store.receive(offer, sign_offer(offer, self.agg), self.agg.public, built.data)
        return offer.job_id, built.fab_hash

    def close(self) -> None:
        self.code.close()
        self.store.close()


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w  # type: ignore[misc]
    w.close()


def train(code: ApprovedCode, app_hash: str) -> dict[str, float]:
    compat.set_task_identity(7)
    message = Message(RecordDict({"config": ConfigRecord({})}), NODE, "train", ttl=60)
    compat.stamp_instruction(message, run_id=7, src_node_id=SUPERLINK_NODE_ID)
    compat.set_message_id(message, new_message_id())
    context: Context = compat.new_context(run_id=7, node_id=NODE, run_config={"lr": 9.0})
    reply = code.app_for(app_hash)(message, context)
    return dict(reply.content["metrics"])  # type: ignore[arg-type]


def refused(code: ApprovedCode, app_hash: str) -> str:
    with pytest.raises(NotApprovedError) as caught:
        code.app_for(app_hash)
    return str(caught.value)


def test_only_the_last_approved_hash_runs_and_nothing_runs_before(world: World) -> None:
    v1_job, v1 = world.receive("1.0.0", steps=1)
    assert "waits for review: `syftflwr jobs approve " + v1_job in refused(world.code, v1)
    world.store.decide(v1_job, "approved", world.ds)
    assert markers_written(world.markers) == []  # received, approved: nothing ran yet

    assert train(world.code, v1) == {"steps": 1, "lr": 0.1}  # the approved run config
    assert markers_written(world.markers) == ["imported-__init__"]  # the package ran

    assert "names no app" in refused(world.code, "")
    assert "never received it; approved here: 1.0.0" in refused(world.code, "f" * 64)

    v2_job, v2 = world.receive("1.1.0", steps=2)
    assert "waits for review" in refused(world.code, v2)
    assert train(world.code, v1) == {"steps": 1, "lr": 0.1}  # still v1 until approved
    world.store.decide(v2_job, "approved", world.ds)
    assert train(world.code, v2) == {"steps": 2, "lr": 0.1}
    assert "replaced by a later approved version; approved here: 1.1.0" in refused(world.code, v1)

    v3_job, v3 = world.receive("1.2.0", steps=3)
    world.store.decide(v3_job, "rejected", world.ds, reason="reads too much")
    why = refused(world.code, v3)
    assert "was rejected by ds1@example.org" in why and "(reads too much)" in why
    assert train(world.code, v2)["steps"] == 2
    assert list(approved_jobs(world.store)) == [world.served]


@pytest.mark.parametrize("when", ["the clock stepped back", "a rollback at the same instant"])
def test_serve_runs_the_version_the_store_approved_last(world: World, when: str) -> None:
    """The version approved last is the approval recorded last (the store's decision
    order), as the diff base and retention take it: not the latest decision clock."""
    if when == "the clock stepped back":  # 1.1.0 approved after 1.0.0, clock behind it
        replaced_job, replaced = world.receive("1.0.0", steps=1)
        current_job, current = world.receive("1.1.0", steps=2)
        world.store.decide(replaced_job, "approved", world.ds, now=200.0)
        world.store.decide(current_job, "approved", world.ds, now=100.0)
        version, steps = "1.1.0", 2
    else:  # 1.1.0 approved, then the rollback to 1.0.0 that arrived before it
        current_job, current = world.receive("1.0.0", steps=1, rollback=True)
        replaced_job, replaced = world.receive("1.1.0", steps=2)
        world.store.decide(replaced_job, "approved", world.ds, now=50.0)
        world.store.decide(current_job, "approved", world.ds, now=50.0)
        version, steps = "1.0.0", 1
    last = world.store.last_approved(AGG, world.store.received_job(current_job).offer.app)
    assert last is not None and last.job_id == current_job
    why = refused(world.code, replaced)
    assert f"replaced by a later approved version; approved here: {version}" in why
    assert train(world.code, current)["steps"] == steps
    assert approved_jobs(world.store)[world.served].job_id == current_job


def test_a_request_reads_its_app_not_every_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deciding whether a request may run reads the current version of its app and the
    job of the hash it names, however many jobs the store holds."""
    approved_job, _ = world.receive("1.0.0", steps=1)
    world.store.decide(approved_job, "approved", world.ds)
    _, pending = world.receive("1.1.0", steps=2)
    decoded: list[bytes] = []
    decode = JobOffer.decode

    def counting(cls: type[JobOffer], data: bytes) -> JobOffer:
        decoded.append(data)
        return decode(data)

    def decodes_per_refusal() -> list[int]:
        counts = []
        for app_hash in ("f" * 64, pending):
            decoded.clear()
            refused(world.code, app_hash)
            counts.append(len(decoded))
        return counts

    monkeypatch.setattr(JobOffer, "decode", classmethod(counting))
    few = decodes_per_refusal()
    for n in range(40):  # other apps of this aggregator, approved, and pending jobs
        fab = f"stand-in FAB {n}".encode()
        offer = JobOffer(
            job_id=new_message_id(),
            aggregator=AGG,
            datasite=DS1,
            app=f"other{n % 2}" if n % 4 else "marker-app",
            version=f"2.{n}",
            fab_hash=fab_digest(fab),
            created_at=1.0,
            rollback=False,
            signer=world.agg.fingerprint,
            app_name=f"other{n % 2}" if n % 4 else "marker",
            datasites=(DS1, DS2),
        )
        world.store.receive(offer, sign_offer(offer, world.agg), world.agg.public, fab)
        if n % 4:
            world.store.decide(offer.job_id, "approved", world.ds)
    assert decodes_per_refusal() == few
    assert max(few) <= 4  # the current version and the job named, each with its decision


def test_a_fab_altered_on_disk_after_approval_never_runs(world: World) -> None:
    job, app_hash = world.receive("1.0.0", steps=1)
    world.store.decide(job, "approved", world.ds)
    path = world.store.fab_path(app_hash)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(Exception, match="altered after it was received"):
        world.code.app_for(app_hash)
    assert markers_written(world.markers) == []


def test_serve_receives_jobs_and_serves_what_a_rule_approved(tmp_path: Path) -> None:
    """Nobody runs `syftflwr jobs`: serve's own reception applies the data owner's
    [auto_approve] rules, and the app approved that way is served."""
    import dataclasses

    from _jobs_world import World as JobsWorld
    from syftflwr.config.participant import AutoApprove
    from syftflwr.jobs.serve import Server
    from syftflwr.jobs.submit import submit

    world = JobsWorld(tmp_path)
    agg = world.who(AGG, accept=())
    trusted = SigningIdentity.load_or_create(agg.state_root, AGG).fingerprint
    who = world.who(DS1)
    who = dataclasses.replace(
        who,
        settings=dataclasses.replace(who.settings, auto_approve=AutoApprove(signers=(trusted,))),
    )
    started: list[str] = []
    with Server(who, on_serving=lambda served, job: started.append(job.offer.version)) as server:
        first = server.collect()  # publishes ds1's jobs key; nothing has arrived
        assert first is not None and first.stored == []
        sent = submit(world.app(), env=world.env, participant=agg.settings)
        got = server.collect()
        assert got is not None
        assert got.automatic == [
            (sent.sent[0].job_id, f"automatic: signed by a trusted key ({trusted})")
        ]
        assert server.refresh() == [ServedApp(AGG, "marker")]
        assert started == ["1.0.0"]
        submit(world.app("1.1.0"), env=world.env, participant=agg.settings)
        server.collect()  # approved by the same rule
        assert server.refresh() == [] and started == ["1.0.0", "1.1.0"]  # announced
        assert server.refresh() == [] and started == ["1.0.0", "1.1.0"]  # once
    assert markers_written(world.markers) == []  # approved, served, no request yet


def test_serve_receives_nothing_when_it_accepts_jobs_from_nobody(tmp_path: Path) -> None:
    from _jobs_world import World as JobsWorld
    from syftflwr.jobs.serve import Server

    with Server(JobsWorld(tmp_path).who(DS1, accept=())) as server:
        assert server.collect() is None
        assert server.refresh() == []
