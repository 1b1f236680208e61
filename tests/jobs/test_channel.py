"""The jobs channel (issue 19, item 1): jobs and decisions travel as sealed requests of
the reserved app over the participant's own transport, in-process here (memory, and the
real fsspec-local mailbox with inotify); the multi-process flow is test_jobs_flow.py."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from syftflwr.config import ParticipantSettings, ProjectConfig
from syftflwr.envelope import Request
from syftflwr.errors import ConfigError
from syftflwr.jobs import JOB_TTL, JOBS_APP
from syftflwr.jobs.channel import (
    DECISIONS_ENDPOINT,
    JOBS_ENDPOINT,
    JobsChannel,
    connect_jobs,
)
from syftflwr.mailbox.events import MailboxEvents
from syftflwr.mailbox.layout import outbox
from syftflwr.session import connect
from syftflwr.transports import memory

AGG = "ds@university.org"
ALICE = "alice@hospital-a.org"
MALLORY = "mallory@elsewhere.org"
_namespaces = itertools.count()


class World:
    """Participants with their own homes (settings + state) on one transport."""

    def __init__(self, tmp: Path, transport: str) -> None:
        self.tmp = tmp
        self.transport = transport
        self.env = {"HOME": str(tmp / "home"), "PATH": os.environ.get("PATH", "")}
        if transport == "memory":
            self.namespace = f"jobs-{os.getpid()}-{next(_namespaces)}"
            self.env["SYFTFLWR_MEMORY_NAMESPACE"] = self.namespace
        else:
            self.env["SYFTFLWR_FSSPEC_LOCAL_ROOT"] = str(tmp / "mailbox")

    def connect(self, me: str, peers: list[str], **env: str) -> JobsChannel:
        home = self.tmp / me
        settings = ParticipantSettings(
            path=home / "settings.toml", email=me, default_state_dir=home / "state"
        )
        return connect_jobs(
            me,
            peers,
            transport=self.transport,
            env={**self.env, **env},
            participant=settings,
            allow_in_process=self.transport == "memory",
        )

    def close(self) -> None:
        if self.transport == "memory":
            memory.reset(self.namespace)


@pytest.fixture(params=["memory", "fsspec-local"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path, request.param)
    yield made
    made.close()


def test_a_job_is_sealed_delivered_and_its_reply_means_seen(world: World) -> None:
    with world.connect(ALICE, [AGG]):  # the datasite runs `syftflwr jobs` once: key out
        pass
    with world.connect(AGG, [ALICE]) as agg:
        sent = agg.send(ALICE, JOBS_ENDPOINT, b"job bytes")
        assert sent.sent and sent.handle is not None
        assert sent.handle.app == JOBS_APP
        assert sent.handle.expires_at is not None
        assert sent.handle.expires_at - sent.handle.sent_at == pytest.approx(JOB_TTL, abs=5)
        handle = sent.handle
    got: list[Request] = []

    def on_job(request: Request) -> bytes:
        got.append(request)
        return b"seen"

    with world.connect(ALICE, [AGG]) as alice:
        drained = alice.collect({JOBS_ENDPOINT: on_job, DECISIONS_ENDPOINT: on_job})
    assert drained.complete
    assert [(r.sender, r.endpoint, bytes(r.body)) for r in got] == [
        (AGG, JOBS_ENDPOINT, b"job bytes")
    ]
    with world.connect(ALICE, [AGG]) as alice:  # handled once: the next look is empty
        assert alice.collect({JOBS_ENDPOINT: on_job}).complete
    assert len(got) == 1
    with world.connect(AGG, [ALICE]) as agg:  # a later process of the aggregator
        replies = agg.replies([handle])
        assert replies[handle.id].ok
        assert bytes(replies[handle.id].body) == b"seen"


def test_no_key_yet_means_not_sent_and_says_who_must_run_jobs(world: World) -> None:
    with world.connect(AGG, [ALICE]) as agg:
        sent = agg.send(ALICE, JOBS_ENDPOINT, b"job")
    assert not sent.sent
    assert sent.problem is not None
    assert f"no key published by {ALICE} yet" in sent.problem
    assert "syftflwr jobs" in sent.problem


def test_a_sender_that_is_no_peer_is_never_read(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with world.connect(ALICE, [AGG, MALLORY]):  # alice's key reachable by both
        pass
    with world.connect(MALLORY, [ALICE]) as mallory:
        assert mallory.send(ALICE, JOBS_ENDPOINT, b"evil").sent
    seen: list[Request] = []
    with world.connect(ALICE, [AGG]) as alice, caplog.at_level(logging.WARNING):
        drained = alice.collect({JOBS_ENDPOINT: lambda r: seen.append(r) or b"seen"})
    assert seen == []
    assert drained.complete
    assert drained.ignored == {MALLORY: 1}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_jobs_never_travel_in_plaintext(world: World) -> None:
    with pytest.raises(ConfigError, match="never sent in plaintext"):
        world.connect(AGG, [ALICE], SYFTFLWR_ENCRYPTION="false")


def test_a_datasite_with_nobody_to_accept_is_told_how_to_add_someone(world: World) -> None:
    with pytest.raises(ConfigError, match="accept_jobs_from") as caught:
        world.connect(ALICE, [])
    assert caught.value.fix is not None


def test_a_jobs_peer_never_makes_an_apps_runner_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Alice accepts jobs from a submitter who is not her app's aggregator: his outbox to
    her holds only the jobs endpoint's folder, which is no business of her app's runner
    (a WARNING in a healthy run is a bug). A sender writing into her app's folder is
    still warned about."""
    world = World(tmp_path, "fsspec-local")
    other = "bob@elsewhere.org"
    with world.connect(ALICE, [other]):  # alice accepts jobs from bob...
        pass
    with world.connect(other, [ALICE]):  # ...who publishes his jobs key to her
        pass
    app = ProjectConfig(app_name="quickstart", aggregator=AGG, datasites=(ALICE,))
    settings = ParticipantSettings(
        path=tmp_path / ALICE / "settings.toml", email=ALICE,
        default_state_dir=tmp_path / ALICE / "state",
    )  # fmt: skip
    with (
        connect(
            app, email=ALICE, transport="fsspec-local", env=world.env, participant=settings
        ) as alice,
        caplog.at_level(logging.WARNING, logger="syftflwr"),
    ):
        events = alice.events()
        events.on_request("messages", lambda r: b"")
        assert cast(MailboxEvents, events).sweep() == 0
        assert caplog.records == []
        (tmp_path / "mailbox" / outbox(other, ALICE) / "quickstart").mkdir()
        cast(MailboxEvents, events).sweep()
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring syft_outbox_inbox_{other}_to_{ALICE}: {other} is not an allowed sender "
        f"for {ALICE} (allowed: {ALICE}, {AGG})"
    ]
