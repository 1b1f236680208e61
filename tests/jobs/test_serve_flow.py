"""Done-when of issue 19 over fsspec-local, every step a ``syftflwr`` process of its own
with encryption on: submit -> review -> approve -> ``syftflwr serve`` trains the
quickstart -> the aggregator changes the app -> refused until submitted and approved.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _jobs_world import AGG, DS1, DS2, World

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
FEDERATION = f"""[tool.syftflwr]
app_name = "quickstart"
aggregator = "{AGG}"
datasites = ["{DS1}", "{DS2}"]
transport = "fsspec-local"
"""


def quickstart(world: World) -> Path:
    app = world.tmp / "quickstart"
    shutil.copytree(QUICKSTART, app, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    text = (app / "pyproject.toml").read_text()
    text = text[: text.index("[tool.syftflwr]")] + FEDERATION
    text = text.replace("num-server-rounds = 3", "num-server-rounds = 2")
    (app / "pyproject.toml").write_text(text)
    return app


def change(app: Path) -> None:
    text = (app / "pyproject.toml").read_text()
    text = text.replace('version = "1.0.0"', 'version = "1.1.0"')
    (app / "pyproject.toml").write_text(text.replace("learning-rate = 0.1", "learning-rate = 0.2"))


def pending_job(world: World, datasite: str) -> str:
    """The one job waiting for review at ``datasite``. ``serve`` receives jobs too: while
    it is storing one, ``syftflwr jobs`` leaves it to it, and a later listing shows it."""
    deadline = time.monotonic() + 60
    while True:
        listed = world.cli(datasite, "jobs", "--json")
        assert listed.returncode == 0, listed.stderr
        received = json.loads(listed.stdout)["received"]
        pending = [j["job"] for j in received if j["status"] == "pending"]
        if pending or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(pending) == 1, received
    return str(pending[0])


def approve_pending(world: World, datasite: str) -> None:
    approved = world.cli(datasite, "jobs", "approve", pending_job(world, datasite))
    assert approved.returncode == 0, approved.stderr


def start_serve(world: World, datasite: str) -> tuple[subprocess.Popen[str], Path]:
    log = world.tmp / f"serve-{datasite}.log"
    env = {**world.env, "SYFTFLWR_HOME": str(world.home(datasite))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syftflwr", "serve"],
        env=env,
        cwd=world.tmp,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    return proc, log


def wait_for(log: Path, pattern: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared in {log}:\n{log.read_text()}")


@pytest.mark.slow
def test_serve_trains_only_what_each_data_owner_approved(tmp_path: Path) -> None:
    world = World(tmp_path, datasites=(DS1, DS2))
    world.write_settings(AGG)
    for datasite in (DS1, DS2):
        world.write_settings(datasite, accept=(AGG,))
        assert world.cli(datasite, "jobs").returncode == 0  # publishes its jobs key
    app = quickstart(world)

    sent = world.cli(AGG, "submit", str(app))
    assert sent.returncode == 0, sent.stderr
    servers = [start_serve(world, ds) for ds in (DS1, DS2)]
    try:
        for _, log in servers:
            wait_for(log, "nothing approved to serve yet")
        for datasite in (DS1, DS2):
            approve_pending(world, datasite)
        for _, log in servers:  # picked up while serve runs
            wait_for(log, r"serving quickstart of agg@example.org: syftflwr-quickstart 1\.0\.0")

        trained = world.cli(AGG, "run", str(app), timeout=300)
        assert trained.returncode == 0, trained.stderr
        assert "the submitted app (FAB " in trained.stderr
        assert "accuracy" in trained.stderr

        change(app)
        unsent = world.cli(AGG, "run", str(app))
        assert unsent.returncode == 2
        assert "syftflwr-quickstart 1.1.0" in unsent.stderr
        assert "is not what you submitted" in unsent.stderr
        assert "fix: submit this version" in unsent.stderr

        assert world.cli(AGG, "submit", str(app)).returncode == 0
        for datasite in (DS1, DS2):
            pending_job(world, datasite)  # received, not approved
        refused = world.cli(AGG, "run", str(app), timeout=300)
        assert refused.returncode != 0
        for datasite in (DS1, DS2):
            assert re.search(
                rf"not approved: hash [0-9a-f]{{16}} of app quickstart at {re.escape(datasite)}"
                r": syftflwr-quickstart 1\.1\.0 \(job \w+\) waits for review",
                refused.stderr,
            ), refused.stderr

        for datasite in (DS1, DS2):
            approve_pending(world, datasite)
        retrained = world.cli(AGG, "run", str(app), timeout=300)
        assert retrained.returncode == 0, retrained.stderr
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc, _ in servers]
    assert codes == [0, 0]
    for _, log in servers:
        text = log.read_text()
        assert "serve stopped (SIGTERM); served 1 app(s)" in text
        warnings = [line for line in text.splitlines() if "WARNING" in line]
        assert warnings, text  # one per refused request, and nothing else warns
        assert all("refused: not approved: hash" in line for line in warnings), text
