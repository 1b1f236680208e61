"""The refusals of issue 19 on the way in (items 3 and 5, "Security tests"): a job from
a sender the datasite does not accept is never read or stored; a bundle altered after
signing or in the datasite's store, a job signed by another key than the aggregator's,
and an old job replayed under a new id are each refused with one line — and nothing of
the app is imported by any of it. Over a real fsspec-local mailbox, encryption on."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from _bundle_apps import markers_written, rezip
from _jobs_world import AGG, DS1, MALLORY, World, send_job, signed_job
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.envelope import Request
from syftflwr.jobs import JOBS_APP
from syftflwr.jobs.channel import JOBS_ENDPOINT
from syftflwr.jobs.messages import JobMessage
from syftflwr.jobs.review import collect, review
from syftflwr.jobs.statements import JobOffer
from syftflwr.jobs.store import JobError
from syftflwr.jobs.submit import submit
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.profile import NATIVE
from syftflwr.names import new_message_id


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path)
    collect(made.who(DS1))  # the datasite's jobs key is published
    return made


def _refused_once(
    world: World, caplog: pytest.LogCaptureFixture, job_id: str, *expected: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="syftflwr"):
        got = collect(world.who(DS1))
    assert got.stored == []
    [(refused_id, sender, reason)] = got.refused
    assert (refused_id, sender) == (job_id, AGG)
    for text in expected:
        assert text in reason
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [f"refused job {job_id} from {AGG}: {reason}"]
    assert "\n" not in reason
    assert world.fabs(DS1) == []
    assert markers_written(world.markers) == []


def test_a_bundle_altered_after_signing_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    honest = signed_job(world)
    altered = rezip(honest.fab, add={"marker_app/extra.py": b"import os\n"})
    job_id = JobOffer.decode(honest.offer).job_id
    send_job(world, JobMessage(honest.offer, honest.offer_signature, honest.fab_record,
                            honest.signer, altered), job_id)  # fmt: skip
    _refused_once(world, caplog, job_id, "not the signed", "altered in storage, or another FAB")
    agg = world.who(AGG, accept=())
    # the aggregator recorded nothing for this hand-made job; its reply says refused
    with agg.connect([DS1]) as channel:
        from syftflwr.roles import RequestHandle

        handle = RequestHandle(job_id, DS1, JOBS_APP, JOBS_ENDPOINT, time.time(), None)
        reply = channel.replies([handle])[job_id]
    assert not reply.ok and reply.error_text.startswith("refused: job ")


def test_a_job_signed_by_another_key_than_the_aggregators_is_refused(
    world: World, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    impostor = SigningIdentity.load_or_create(tmp_path / "elsewhere", AGG)
    message = signed_job(world, signer=impostor)
    job_id = JobOffer.decode(message.offer).job_id
    send_job(world, message, job_id)
    _refused_once(world, caplog, job_id, "signed with the key", f"but {AGG} publishes")


def test_an_old_job_replayed_under_a_new_id_is_refused(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    agg = world.who(AGG, accept=())
    first = submit(world.app(), env=world.env, participant=agg.settings)
    assert collect(world.who(DS1)).stored == [first.sent[0].job_id]
    stored = world.fabs(DS1)
    old = signed_job(world, job_id=first.sent[0].job_id)  # the same signed offer, sent again...
    replay = new_message_id()  # ...under another id
    send_job(world, old, replay)
    with caplog.at_level(logging.WARNING, logger="syftflwr"):
        got = collect(world.who(DS1))
    [(refused_id, sender, reason)] = got.refused
    assert (refused_id, sender) == (replay, AGG)
    assert f"arrived as job {replay}; a signed offer replayed under a new id" in reason
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"refused job {replay} from {AGG}: {reason}"
    ]
    assert world.fabs(DS1) == stored
    assert markers_written(world.markers) == []


def test_a_bundle_altered_in_the_datasites_store_is_refused_by_review(world: World) -> None:
    agg = world.who(AGG, accept=())
    job_id = submit(world.app(), env=world.env, participant=agg.settings).sent[0].job_id
    collect(world.who(DS1))
    [name] = world.fabs(DS1)
    path = world.home(DS1) / "state" / JOBS_APP / DS1 / "fabs" / name
    path.write_bytes(rezip(path.read_bytes(), replace={"marker_app/task.py": b"x = 1\n"}))
    with pytest.raises(JobError, match="was altered after it was received") as caught:
        review(world.who(DS1), job_id)
    assert "\n" not in str(caught.value)
    assert markers_written(world.markers) == []


def test_a_sender_that_is_not_accepted_is_never_read_nor_stored(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Mallory writes a job straight into her outbox to DS1 (she has no key of DS1's: it
    is published only to the senders DS1 accepts): DS1 never reads it, says so in one
    INFO line, and nothing lands in its jobs store."""
    request = Request.new(
        sender=MALLORY, recipient=DS1, app=JOBS_APP, endpoint=JOBS_ENDPOINT, body=b"job", ttl=60
    )
    route = Route(MALLORY, DS1, JOBS_APP, JOBS_ENDPOINT)
    path = world.root / route.request_path(request.id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(bytes(b) for b in NATIVE.encode(request)))
    with caplog.at_level(logging.INFO, logger="syftflwr"):
        got = collect(world.who(DS1))
    assert got.ignored == {MALLORY: 1} and got.stored == [] and got.refused == []
    lines = [r for r in caplog.records if MALLORY in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (
            logging.INFO,
            f"left 1 request(s) from {MALLORY} unread: {MALLORY} is not in accept_jobs_from "
            f"(run `syftflwr jobs trust {MALLORY}` to accept jobs from them)",
        )
    ]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert world.fabs(DS1) == []
