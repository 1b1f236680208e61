"""Issue 19's done-when over one transport, every step a ``syftflwr`` process of its own
with encryption on: ``submit`` -> each datasite approves -> ``syftflwr serve`` trains
the quickstart for one round -> the aggregator changes the app -> refused: its run
stops before sending anything until the new version is submitted, then each datasite
refuses it while it waits for review (-> approved, it trains, with ``reapprove``) — for
a transport's own test session.

Each participant has its own ``SYFTFLWR_HOME`` with a settings file naming the
transport's options for it (``[transport.<name>]``: its token, its client config...),
as a real participant's does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

QUICKSTART_VERSION = "1.0.0"
CHANGED_VERSION = "1.1.0"


@dataclass
class JobsFederation:
    """An aggregator and its datasites on ``transport``, each in a folder of its own."""

    tmp: Path
    transport: str
    aggregator: str
    datasites: tuple[str, ...]
    options: Callable[[str], Mapping[str, Any]]
    """``email -> [transport.<name>]`` of that participant's settings file."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Over this process's environment (see :meth:`process_env`)."""

    def home(self, email: str) -> Path:
        return self.tmp / "homes" / email

    def write_settings(self, email: str, *, accept: tuple[str, ...] = ()) -> None:
        settings = tomlkit.document()
        settings["email"] = email
        if accept:
            settings["accept_jobs_from"] = list(accept)
        settings["transport"] = {self.transport: dict(self.options(email))}
        self.home(email).mkdir(parents=True, exist_ok=True)
        (self.home(email) / "settings.toml").write_text(tomlkit.dumps(settings))

    def process_env(self, email: str) -> dict[str, str]:
        """This process's environment without its ``SYFTFLWR_*`` settings (the flow runs
        with default settings, encryption on), then ``env``."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
        return {
            **inherited,
            "FLWR_TELEMETRY_ENABLED": "0",
            **self.env,
            "SYFTFLWR_HOME": str(self.home(email)),
        }

    def cli(self, email: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``syftflwr ARGS`` as ``email``, in a process of its own."""
        return subprocess.run(
            [sys.executable, "-m", "syftflwr", *args],
            env=self.process_env(email),
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def quickstart(self, source: Path, rounds: int = 1) -> Path:
        """A copy of the quickstart project federating these participants over this
        transport, for ``rounds`` rounds."""
        app = self.tmp / "quickstart"
        shutil.copytree(source, app, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        project = tomlkit.parse((app / "pyproject.toml").read_text())
        project["tool"]["flwr"]["app"]["config"]["num-server-rounds"] = rounds
        project["tool"]["syftflwr"] = {
            "app_name": "quickstart",
            "aggregator": self.aggregator,
            "datasites": list(self.datasites),
            "transport": self.transport,
        }
        (app / "pyproject.toml").write_text(tomlkit.dumps(project))
        return app

    def pending_job(self, datasite: str, timeout: float = 60) -> str:
        """The one job waiting for review at ``datasite``. ``serve`` receives jobs too:
        while it is storing one, ``syftflwr jobs`` leaves it to it, and a later listing
        shows it."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self.cli(datasite, "jobs", "--json")
            assert listed.returncode == 0, listed.stderr
            received = json.loads(listed.stdout)["received"]
            pending = [j["job"] for j in received if j["status"] == "pending"]
            if pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(pending) == 1, received
        return str(pending[0])

    def approve_pending(self, datasite: str) -> None:
        approved = self.cli(datasite, "jobs", "approve", self.pending_job(datasite))
        assert approved.returncode == 0, approved.stderr

    def start_serve(self, datasite: str) -> Served:
        log = self.tmp / f"serve-{datasite}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "syftflwr", "serve"],
            env=self.process_env(datasite),
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            text=True,
        )
        return Served(datasite, proc, log)


@dataclass
class Served:
    """A ``syftflwr serve`` process and its log."""

    datasite: str
    proc: subprocess.Popen[str]
    log: Path

    def wait_for(self, pattern: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log.read_text()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared in {self.log}:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def jobs_flow_cli(
    federation: JobsFederation, quickstart: Path, *, rounds: int = 1, reapprove: bool = False
) -> None:
    """Run the flow of this module's docstring over ``federation``, asserting each step."""
    fed = federation
    fed.write_settings(fed.aggregator)
    for datasite in fed.datasites:
        fed.write_settings(datasite, accept=(fed.aggregator,))
        first = fed.cli(datasite, "jobs")  # publishes its jobs key to the aggregator
        assert first.returncode == 0, first.stderr
    app = fed.quickstart(quickstart, rounds)

    submitted = fed.cli(fed.aggregator, "submit", str(app))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    said = submitted.stdout + submitted.stderr
    for datasite in fed.datasites:
        assert re.search(rf"{re.escape(datasite)}\s+[0-9a-f]{{32}}\s+sent", said), said
    served = [fed.start_serve(ds) for ds in fed.datasites]
    try:
        for server in served:
            server.wait_for("nothing approved to serve yet")
        for datasite in fed.datasites:
            fed.approve_pending(datasite)
        for server in served:  # picked up while serve runs
            server.wait_for(
                rf"serving quickstart of {re.escape(fed.aggregator)}: "
                rf"syftflwr-quickstart {re.escape(QUICKSTART_VERSION)}"
            )
        trained = fed.cli(fed.aggregator, "run", str(app), timeout=300)
        assert trained.returncode == 0, trained.stdout + trained.stderr
        assert "the submitted app (FAB " in trained.stderr, trained.stderr
        assert "accuracy" in trained.stderr, trained.stderr

        text = (app / "pyproject.toml").read_text()
        text = text.replace(f'version = "{QUICKSTART_VERSION}"', f'version = "{CHANGED_VERSION}"')
        (app / "pyproject.toml").write_text(
            text.replace("learning-rate = 0.1", "learning-rate = 0.2")
        )
        unsent = fed.cli(fed.aggregator, "run", str(app))
        assert unsent.returncode == 2, unsent.stdout + unsent.stderr
        assert f"syftflwr-quickstart {CHANGED_VERSION}" in unsent.stderr, unsent.stderr
        assert "is not what you submitted" in unsent.stderr, unsent.stderr
        assert "fix: submit this version" in unsent.stderr, unsent.stderr

        resubmitted = fed.cli(fed.aggregator, "submit", str(app))
        assert resubmitted.returncode == 0, resubmitted.stdout + resubmitted.stderr
        for datasite in fed.datasites:
            fed.pending_job(datasite)  # received, not approved
        refused = fed.cli(fed.aggregator, "run", str(app), timeout=300)
        assert refused.returncode != 0, refused.stdout + refused.stderr
        for datasite in fed.datasites:
            assert re.search(
                rf"not approved: hash [0-9a-f]{{16}} of app quickstart at {re.escape(datasite)}"
                rf": syftflwr-quickstart {re.escape(CHANGED_VERSION)} \(job \w+\) waits for review",
                refused.stderr,
            ), refused.stderr
        if reapprove:  # served as soon as approved: each request names its hash
            for datasite in fed.datasites:
                fed.approve_pending(datasite)
            retrained = fed.cli(fed.aggregator, "run", str(app), timeout=300)
            assert retrained.returncode == 0, retrained.stdout + retrained.stderr
    finally:
        stopped = [server.stop() for server in served]
    logs = [server.log.read_text() for server in served]
    assert stopped == [0] * len(served), logs
    for log in logs:
        assert "serve stopped (SIGTERM); served 1 app(s)" in log, log
        warnings = [line for line in log.splitlines() if "WARNING" in line]
        assert warnings, log  # one per refused request, and nothing else warns
        assert all("refused: not approved: hash" in line for line in warnings), log
        assert "Traceback" not in log, log
