"""Helpers of the end-to-end tests: `syftflwr` commands in real OS processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org", "ds3@openmined.org")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home), **extra)
    return env


def wait_serving(home: Path, email: str, procs: Procs, *, app: str = "quickstart") -> None:
    """Until ``email``'s runner (under ``home``, over fsspec-local's default mailbox) has
    published its key for the aggregator: it is serving. A loaded machine may take a
    minute to start one; a test timing what the aggregator sees must not count that."""
    key = home / "mailbox" / f"syft_outbox_inbox_{email}_to_{AGG}" / app / "syftflwr.pubkey.json"
    deadline = time.monotonic() + 180
    while not key.exists():
        assert time.monotonic() < deadline, f"{email} did not start serving in 180 s"
        assert all(p.poll() is None for p in procs.procs), f"a runner ended before {email} served"
        time.sleep(0.1)


def syftflwr(*args: str) -> list[str]:
    return [sys.executable, "-m", "syftflwr", *args]


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(
        self, args: list[str], env: dict[str, str], *, separate_stderr: bool = False
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


SERVER = """
import os

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

IMPORTED_BY = os.getpid()
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    nodes = sorted(grid.get_node_ids())
    print(f"ServerApp says: sending to {len(nodes)} nodes")
    content = RecordDict({"config": ConfigRecord({"server-round": 1})})
    messages = [Message(content, dst_node_id=n, message_type="train") for n in nodes]
    replies = list(grid.send_and_receive(messages, timeout=60))
    print(f"ServerApp says: {sum(r.has_error() for r in replies)} error replies")
    print(f"ServerApp says: {where(IMPORTED_BY)}")


def where(pid: int) -> str:
    return "imported here" if pid == os.getpid() else "imported before the fork"
"""

CLIENT = """
import os

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

IMPORTED_BY = os.getpid()
app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    if context.node_config["partition-id"] == 1:
        raise RuntimeError("disk full on this datasite")
    print("ClientApp says: trained,", "imported here" if IMPORTED_BY == os.getpid() else
          "imported before the fork")
    return Message(RecordDict({"metrics": MetricRecord({"ok": 1.0})}), reply_to=msg)
"""


def write_app(root: Path, name: str, *, client_prelude: str = "") -> Path:
    """A Flower app whose ServerApp sends one train message to each of its two datasites
    and prints what it got; ds2's ClientApp raises. ``client_prelude`` runs first when
    the ClientApp's module is imported."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "server_app.py").write_text(SERVER)
    (root / name / "client_app.py").write_text(client_prelude + CLIENT)
    (root / "pyproject.toml").write_text(
        f"""
[project]
name = "{name}"
version = "1.0.0"

[tool.flwr.app]
publisher = "syftflwr-tests"

[tool.flwr.app.components]
serverapp = "{name}.server_app:app"
clientapp = "{name}.client_app:app"

[tool.syftflwr]
app_name = "{name}"
aggregator = "agg@lab.org"
datasites = ["ds1@lab.org", "ds2@lab.org"]
"""
    )
    return root
