"""``syftflwr serve --as EMAIL``: a datasite runs the apps it approved, and nothing else.

For every app an aggregator submitted and this data owner approved (``syftflwr jobs
approve``), one :class:`~syftflwr.flower.runner.DatasiteRunner` serves the app's mailbox
(the offer names its ``app_name`` and datasites: the aggregator's ``[tool.syftflwr]``,
which the FAB does not carry). Each request names the FAB hash of the app its
aggregator runs, authenticated by the seal (``syftflwr.app-hash``); :class:`ApprovedCode`
hands the runner the ClientApp of exactly that hash, or refuses it:

* no hash: the aggregator runs an app it never submitted;
* a hash this datasite never received, still pending, or rejected;
* an approved hash that a later approved version replaced (the aggregator runs old code).

The ClientApp of an approved hash runs in a child process of its own
(:class:`~syftflwr.jobs.isolated.IsolatedClientApp`), from the FAB unpacked under the
participant's state (``<jobs state>/apps/<fab hash>/``), with the run config the data owner
approved (the bundle's ``[tool.flwr.app.config]``) and, when the bundle has a
``pylock.toml``, exactly its locked wheels first on its path (:mod:`.deps`). An app
approved while ``serve`` runs is picked up at the next rescan (:data:`RESCAN` seconds);
a newer approved version of an app replaces the old one on its first request. Jobs
that arrive are received every :data:`COLLECT_EVERY` seconds, as ``syftflwr jobs``
receives them, so the data owner's ``[auto_approve]`` rules apply while ``serve`` runs.

Served apps are always sealed (encryption on, whatever the environment says): approved
code is only as safe as the channel that tells a datasite which code to run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from syftflwr.config import ProjectConfig
from syftflwr.config.participant import DependencySources
from syftflwr.crypto.signing import identity_dir
from syftflwr.errors import SyftflwrError
from syftflwr.flower.apps import node_config_for
from syftflwr.flower.node_ids import node_ids_for
from syftflwr.flower.runner import ClientAppLike, DatasiteRunner, NotApprovedError
from syftflwr.jobs.bundle import unpack_fab
from syftflwr.jobs.deps import LOCK_FILE, install, read_lock
from syftflwr.jobs.isolated import IsolatedClientApp
from syftflwr.jobs.review import Collected, Who, accepted_senders, collect
from syftflwr.jobs.store import JobStore, ReceivedJob
from syftflwr.session import Participant, connect

log = logging.getLogger("syftflwr.jobs")

APPS_FOLDER = "apps"
RESCAN = 5.0
"""Seconds between looks at the jobs store for apps approved since ``serve`` started."""
COLLECT_EVERY = 30.0
"""Seconds between two receptions of the jobs that arrived (the first one at start)."""


@dataclass(frozen=True)
class ServedApp:
    """One app's mailbox as an aggregator runs it: what a runner serves. Its versions
    may differ in code and datasites; the one approved last is served."""

    aggregator: str
    app_name: str


def served_app(job: ReceivedJob) -> ServedApp:
    return ServedApp(job.offer.aggregator, job.offer.app_name)


def approved_jobs(store: JobStore) -> dict[ServedApp, ReceivedJob]:
    """The version of every app approved last (:meth:`JobStore.served_versions`), by the
    app it serves."""
    return {served_app(job): job for job in store.served_versions()}


class ApprovedCode:
    """The approved code of one served app (a :class:`~syftflwr.flower.runner.Approval`).

    The version a request may run is the one approved last (the store's decision order,
    :meth:`JobStore.served_versions`): an approved hash is refused once another one is
    approved after it (the data owner agreed to replace it).
    """

    def __init__(
        self,
        store: JobStore,
        served: ServedApp,
        apps_dir: Path,
        *,
        env: Mapping[str, str],
        python: str | None = None,
        sources: DependencySources | None = None,
    ) -> None:
        self.store = store
        self.sources = sources or DependencySources()
        self.served = served
        self.apps_dir = apps_dir
        self.env = dict(env)
        self.python = python
        self._lock = threading.Lock()
        self._running: tuple[str, IsolatedClientApp] | None = None

    def app_for(self, app_hash: str) -> ClientAppLike:
        latest = self._latest()
        if not app_hash:
            raise NotApprovedError(
                f"the request names no app: {self.served.aggregator} runs an app it did not "
                "submit here (it runs `syftflwr submit` and this data owner approves it)"
            )
        if latest is None or latest.offer.fab_hash != app_hash:
            raise NotApprovedError(self._why_not(app_hash, latest))
        with self._lock:
            if self._running is None or self._running[0] != app_hash:
                self._replace(latest)
            assert self._running is not None
            return self._running[1]

    def _latest(self) -> ReceivedJob | None:
        """The version approved last, read from the store on each request (an approval
        in another process counts at once): one row, not every job."""
        jobs = self.store.served_versions(self.served.aggregator, self.served.app_name)
        return jobs[0] if jobs else None

    def _why_not(self, app_hash: str, latest: ReceivedJob | None) -> str:
        job = self.store.received_with_hash(self.served.aggregator, app_hash)
        approved = f"; approved here: {latest.offer.version} ({latest.offer.fab_hash[:16]})" if (
            latest) else "; nothing of this app is approved here"  # fmt: skip
        if job is None:
            return f"this datasite never received it{approved}"
        what = f"{job.offer.app} {job.offer.version} (job {job.job_id})"
        if job.status == "pending":
            return f"{what} waits for review: `syftflwr jobs approve {job.job_id}`{approved}"
        if job.status == "rejected" and job.decision is not None:
            return f"{what} was {job.decision.describe()}{approved}"
        return f"{what} was approved, then replaced by a later approved version{approved}"

    def _replace(self, job: ReceivedJob) -> None:
        """Run ``job``'s app (call with the lock held); the one it replaces ends."""
        fab_hash = job.offer.fab_hash
        app_dir = unpack_fab(self.store.fab(job.job_id), self.apps_dir / fab_hash)
        env = self.env
        if (app_dir / LOCK_FILE).exists():  # its approved dependencies, first on its path
            locked = read_lock((app_dir / LOCK_FILE).read_bytes())
            deps = install(locked, self.apps_dir / f"{fab_hash}.deps",
                           wheelhouse=self.sources.wheelhouse, index_url=self.sources.index_url,
                           python=self.python, env=self.env)  # fmt: skip
            path = [str(deps), *filter(None, [self.env.get("PYTHONPATH")])]
            env = {**self.env, "PYTHONPATH": os.pathsep.join(path)}
        isolated = IsolatedClientApp(
            app_dir,
            python=self.python,
            workdir=self.apps_dir / f"{fab_hash}.work",
            env=env,
            own_run_config=True,
        )
        isolated.start()
        previous, self._running = self._running, (fab_hash, isolated)
        log.info("serving %s %s (%s) for %s", job.offer.app, job.offer.version,
                 fab_hash[:16], self.served.aggregator)  # fmt: skip
        if previous is not None:
            previous[1].close()

    def close(self) -> None:
        with self._lock:
            if self._running is not None:
                self._running[1].close()
                self._running = None


def served_project(job: ReceivedJob, transport: str | None) -> ProjectConfig:
    """The project a served app's runner connects with: the aggregator's federation as
    the offer of its current version names it, this participant's own transport,
    encryption always on."""
    offer = job.offer
    return ProjectConfig(
        app_name=offer.app_name,
        aggregator=offer.aggregator,
        datasites=offer.datasites,
        transport=transport,
        encryption=True,
        project_name=offer.app_name,
        configured=True,
    )


@dataclass
class Serving:
    """One served app: its participant, runner and approved code."""

    served: ServedApp
    participant: Participant
    runner: DatasiteRunner
    code: ApprovedCode
    thread: threading.Thread


class Server:
    """Everything ``syftflwr serve`` runs for one datasite (use it as a context manager).

    :param who: the datasite, its state and how it reaches its transport.
    :param python: the interpreter approved apps run with (default: this one).
    :param on_serving: called with each app as serving it starts, and again when a new
        version of it is approved (the CLI prints it).
    :param on_collected: called with what each reception of jobs brought.
    """

    def __init__(
        self,
        who: Who,
        *,
        python: str | None = None,
        on_serving: Callable[[ServedApp, ReceivedJob], None] | None = None,
        on_collected: Callable[[Collected], None] | None = None,
    ) -> None:
        self.who = who
        self.email = who.email
        self.python = python
        self.on_serving = on_serving
        self.on_collected = on_collected
        self.store = JobStore(who.state_root, who.email)
        self.apps_dir = identity_dir(who.state_root, who.email) / APPS_FOLDER
        self.apps_dir.mkdir(mode=0o700, exist_ok=True)
        self.serving: dict[ServedApp, Serving] = {}
        self._announced: dict[ServedApp, str] = {}
        """The FAB hash last announced per app (its version approved last)."""
        self.stopped = threading.Event()

    def refresh(self) -> list[ServedApp]:
        """Start serving every approved app not served yet (returns those started), and
        announce (``on_serving``) each app whose version approved last changed."""
        started = []
        for served, current in approved_jobs(self.store).items():
            if served not in self.serving and not self.stopped.is_set():
                self.serving[served] = self._start(served, current)
                started.append(served)
            elif self._announced.get(served) == current.offer.fab_hash:
                continue
            self._announced[served] = current.offer.fab_hash
            if self.on_serving is not None:
                self.on_serving(served, current)
        return started

    def _start(self, served: ServedApp, current: ReceivedJob) -> Serving:
        datasites = current.offer.datasites  # the offer binds this datasite among them
        who = self.who
        joined = connect(
            served_project(current, who.transport),
            email=self.email,
            transport=who.transport,
            env=who.env,
            participant=who.settings,
            allow_in_process=who.allow_in_process,
            registry=who.registry,
        )
        code = ApprovedCode(self.store, served, self.apps_dir, env=who.env, python=self.python,
                            sources=who.settings.dependencies)  # fmt: skip
        try:
            runner = DatasiteRunner(
                joined.events(),
                None,
                email=self.email,
                node_id=node_ids_for([self.email], "native")[self.email],
                node_config=node_config_for(datasites.index(self.email), len(datasites)),
                approval=code,
                clock_skew=joined.context.clock_skew,
            )
        except BaseException:
            joined.close()
            raise
        thread = threading.Thread(
            target=self._serve_until_stopped,
            args=(runner,),
            name=f"syftflwr-serve-{served.app_name}",
            daemon=True,
        )
        thread.start()
        log.info("%s serves %s of %s over %s", self.email, served.app_name,
                 served.aggregator, joined.transport.name)  # fmt: skip
        return Serving(served, joined, runner, code, thread)

    def _serve_until_stopped(self, runner: DatasiteRunner) -> None:
        """A runner ends when its aggregator's run ends; ``serve`` goes on serving the
        app's next run until it is stopped itself."""
        while not self.stopped.is_set():
            runner.run()

    def collect(self) -> Collected | None:
        """Receive the jobs that have arrived (as ``syftflwr jobs`` does), so the data
        owner's ``[auto_approve]`` rules apply and aggregators see their jobs seen while
        ``serve`` runs; None when this participant accepts jobs from nobody."""
        with JobStore(self.who.state_root, self.email) as store:
            if not accepted_senders(self.who, store):
                return None
        got = collect(self.who)
        if self.on_collected is not None:
            self.on_collected(got)
        return got

    def run(self) -> None:
        """Serve until :meth:`stop`: every :data:`RESCAN` s start serving newly approved
        apps, every :data:`COLLECT_EVERY` s receive the jobs that arrived."""
        next_collect = 0.0
        while not self.stopped.is_set():
            if time.monotonic() >= next_collect:
                try:
                    self.collect()
                except SyftflwrError as exc:  # the apps served go on; said, then retried
                    log.error("could not receive jobs: %s", exc)
                next_collect = time.monotonic() + COLLECT_EVERY
            self.refresh()
            self.stopped.wait(RESCAN)

    def stop(self) -> None:
        self.stopped.set()
        for serving in self.serving.values():
            serving.runner.stop()

    def close(self) -> None:
        self.stop()
        for serving in self.serving.values():
            serving.thread.join(timeout=30)
            serving.code.close()
            serving.participant.close()
        self.store.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
