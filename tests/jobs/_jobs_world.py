"""Participants of the jobs tests: each with its own settings and state, sharing one
real fsspec-local mailbox root (files + inotify), driven through the Python API in this
process (``World``) or the ``syftflwr`` command in separate processes (``World.cli``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _bundle_apps import write_app
from syftflwr.config import ParticipantSettings
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.jobs.channel import JOBS_ENDPOINT
from syftflwr.jobs.fab import build_fab
from syftflwr.jobs.fabsig import sign_fab
from syftflwr.jobs.messages import JobMessage
from syftflwr.jobs.review import Who
from syftflwr.jobs.statements import JobOffer, fab_digest, sign_offer
from syftflwr.names import new_message_id

AGG = "agg@example.org"
DS1 = "ds1@example.org"
DS2 = "ds2@example.org"
MALLORY = "mallory@example.org"


class World:
    def __init__(self, tmp: Path, *, datasites: tuple[str, ...] = (DS1,)) -> None:
        self.tmp = tmp
        self.root = tmp / "mailbox"
        self.markers = tmp / "markers"
        self.datasites = datasites
        self.env = {
            "HOME": str(tmp / "home"),
            "PATH": os.environ.get("PATH", ""),
            "FLWR_TELEMETRY_ENABLED": "0",
            # a source tree under test (PYTHONPATH=core) reaches the processes too
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        }

    def home(self, email: str) -> Path:
        return self.tmp / "homes" / email

    def settings(self, email: str, accept: tuple[str, ...] = ()) -> ParticipantSettings:
        home = self.home(email)
        home.mkdir(parents=True, exist_ok=True)
        return ParticipantSettings(
            path=home / "settings.toml",
            exists=True,
            email=email,
            default_state_dir=home / "state",
            transport_options={"fsspec-local": {"root": str(self.root)}},
            accept_jobs_from=accept,
        )

    def who(self, email: str, accept: tuple[str, ...] = (AGG,)) -> Who:
        settings = self.settings(email, accept)
        return Who(email, settings.default_state_dir, settings, env=self.env)

    def app(
        self, version: str = "1.0.0", config: str = "num-server-rounds = 2\nlr = 0.1\n"
    ) -> Path:
        datasites = ", ".join(f'"{d}"' for d in self.datasites)
        return write_app(
            self.tmp / "app",
            version=version,
            markers=self.markers,
            config=config,
            federation=f'app_name = "marker"\naggregator = "{AGG}"\n'
            f'datasites = [{datasites}]\ntransport = "fsspec-local"\n',
        )

    def fabs(self, email: str) -> list[str]:
        """The FAB files in ``email``'s jobs store."""
        folder = self.home(email) / "state" / "syftflwr-jobs" / email / "fabs"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    # -- separate processes -------------------------------------------------------------
    def write_settings(self, email: str, accept: tuple[str, ...] = ()) -> None:
        home = self.home(email)
        home.mkdir(parents=True, exist_ok=True)
        lines = [f'email = "{email}"']
        if accept:
            lines.append("accept_jobs_from = [" + ", ".join(f'"{a}"' for a in accept) + "]")
        lines += ["[transport.fsspec-local]", f'root = "{self.root}"']
        (home / "settings.toml").write_text("\n".join(lines) + "\n")

    def cli(self, email: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``syftflwr ARGS`` as ``email`` in a process of its own."""
        env = {**self.env, "SYFTFLWR_HOME": str(self.home(email))}
        return subprocess.run(
            [sys.executable, "-m", "syftflwr", *args],
            env=env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def signed_job(
    world: World,
    *,
    signer: SigningIdentity | None = None,
    fab: bytes | None = None,
    built: bytes | None = None,
    job_id: str | None = None,
) -> JobMessage:
    """A job for DS1 (app marker-app 1.0.0) as ``signer`` (default: the aggregator's own
    key) signs it, of the FAB ``built`` (default: built from ``world.app()``); ``fab``
    replaces the FAB after signing."""
    agg = world.who(AGG, accept=())
    data = built if built is not None else build_fab(world.app()).data
    identity = signer or SigningIdentity.load_or_create(agg.state_root, AGG)
    offer = JobOffer(
        job_id=job_id or new_message_id(),
        aggregator=AGG,
        datasite=DS1,
        app="marker-app",
        version="1.0.0",
        fab_hash=fab_digest(data),
        created_at=time.time(),
        rollback=False,
        signer=identity.fingerprint,
        app_name="marker",
        datasites=(DS1,),
    )
    record = sign_fab(data, identity.private, signed_at=int(time.time()))
    return JobMessage(
        offer.encode(), sign_offer(offer, identity), record, identity.public, fab or data
    )


def send_job(world: World, message: JobMessage, request_id: str | None = None) -> str:
    """Send ``message`` through the aggregator's own (sealed, authenticated) channel, as
    request ``request_id`` (default: the offer's job id); returns that id."""
    job_id = request_id or JobOffer.decode(message.offer).job_id
    with world.who(AGG, accept=()).connect([DS1]) as channel:
        assert channel.send(DS1, JOBS_ENDPOINT, message.encode(), request_id=job_id).sent
    return job_id
