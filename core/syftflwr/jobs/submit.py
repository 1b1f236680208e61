"""``syftflwr submit APP``: the aggregator's side of a job — build the app's FAB, sign it
and one offer per datasite, and send each datasite its job over the jobs channel.

A job's id is the id of the request that carries it (one per datasite), and the offer
binds it: a copy of the job under another id is refused by the datasite. A datasite
whose jobs key is not published yet gets nothing (never a plaintext job): the command
says so for that datasite (submit again once it ran ``syftflwr jobs``), and fails only
when no datasite got the job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from syftflwr.config import (
    ParticipantSettings,
    ProjectConfig,
    load_participant,
    load_project,
    resolve_email,
    resolve_state_dir,
)
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.errors import ConfigError
from syftflwr.jobs.channel import JOBS_ENDPOINT, Delivery, connect_jobs
from syftflwr.jobs.fab import BuiltFab, build_fab
from syftflwr.jobs.fabsig import sign_fab
from syftflwr.jobs.messages import JobMessage
from syftflwr.jobs.statements import JobOffer, sign_offer
from syftflwr.jobs.store import JobStore
from syftflwr.names import new_message_id
from syftflwr.registry import Registry


@dataclass(frozen=True)
class Sent:
    """One datasite's job: its id, and whether it left (the delivery)."""

    datasite: str
    job_id: str
    delivery: Delivery


@dataclass(frozen=True)
class Submitted:
    """What ``syftflwr submit`` did."""

    project: ProjectConfig
    aggregator: str
    built: BuiltFab
    signer: str
    """The fingerprint of the aggregator's signing key."""
    rollback: bool
    sent: tuple[Sent, ...]

    @property
    def any_sent(self) -> bool:
        return any(s.delivery.sent for s in self.sent)


def submit(
    project_dir: str | Path,
    *,
    email: str | None = None,
    rollback: bool = False,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    participant: ParticipantSettings | None = None,
    allow_in_process: bool = False,
    registry: Registry | None = None,
) -> Submitted:
    """Build, sign and send the app in ``project_dir`` to each of its datasites.

    :raises ConfigError: not the aggregator, an app flwr would refuse, a profile that
        cannot carry jobs, encryption turned off.
    :raises PluginError: the transport cannot be used.
    """
    project = load_project(project_dir)
    project.require_federation()
    settings = participant if participant is not None else load_participant(env)
    who, source = resolve_email(settings, email=email, env=env)
    me = project.participant_email(who) if who else project.aggregator
    if me != project.aggregator:
        raise ConfigError(
            f"{me} ({source}) is not the aggregator of this project ({project.aggregator}); "
            "only the aggregator submits its app",
            source=str(project.path),
            key="tool.syftflwr.aggregator",
            fix=f"run as {project.aggregator} (--as {project.aggregator})",
        )
    assert me is not None  # require_federation
    built = build_fab(project_dir if isinstance(project_dir, Path) else Path(project_dir))
    state_root, _ = resolve_state_dir(settings, env=env)
    identity = SigningIdentity.load_or_create(state_root, me)
    record = sign_fab(built.data, identity.private, signed_at=int(time.time()))
    created_at = time.time()
    results: list[Sent] = []
    with (
        connect_jobs(
            me,
            project.datasites,
            project=project,
            transport=transport,
            env=env,
            participant=settings,
            allow_in_process=allow_in_process,
            registry=registry,
        ) as channel,
        JobStore(state_root, me) as store,
    ):
        for datasite in project.datasites:
            offer = JobOffer(
                job_id=new_message_id(),
                aggregator=me,
                datasite=datasite,
                app=built.name,
                version=built.version,
                fab_hash=built.fab_hash,
                created_at=created_at,
                rollback=rollback,
                signer=identity.fingerprint,
                app_name=project.app_name,
                datasites=project.datasites,
            )
            problem = channel.unreachable(datasite)
            if problem is not None:
                results.append(Sent(datasite, offer.job_id, Delivery(datasite, None, problem)))
                continue
            signature = sign_offer(offer, identity)
            store.record_sent(offer, signature)  # first: a decision on it is then believed
            body = JobMessage(offer.encode(), signature, record, identity.public, built.data)
            delivery = channel.send(datasite, JOBS_ENDPOINT, body.encode(), request_id=offer.job_id)
            results.append(Sent(datasite, offer.job_id, delivery))
    return Submitted(
        project=project,
        aggregator=me,
        built=built,
        signer=identity.fingerprint,
        rollback=rollback,
        sent=tuple(results),
    )
