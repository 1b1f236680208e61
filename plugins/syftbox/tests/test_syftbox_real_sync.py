"""A real sync: participants with SEPARATE data dirs, synced by PyPI's SyftBox 0.4.0
server and clients on loopback (see ``_sb_server``). Each participant writes only into
its own datasite and grants its peers read access to their outboxes (the plugin writes
the permission files); SyftBox's own clients carry the files between data dirs, with
their real lag, their 10 MiB file limit and their non-atomic downloads.

Skipped, saying why, when ``syftbox==0.4.0`` cannot be installed into a venv of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sb_server import SyftBoxNetwork, syftbox_venv
from syftflwr.envelope import Request
from syftflwr.info import TransportContext
from syftflwr.registry import get_registry

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DS1, DS2 = "ds1@openmined.org", "ds2@openmined.org"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv() -> Path:
    return syftbox_venv()


@pytest.fixture
def network(venv: Path, tmp_path: Path) -> Iterator[SyftBoxNetwork]:
    net = SyftBoxNetwork(venv, tmp_path)
    try:
        yield net
    finally:
        net.close()


def _tails(paths: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in paths)


def test_quickstart_round_over_a_real_sync(network: SyftBoxNetwork, tmp_path: Path) -> None:
    """Encrypted (the default); every participant starts at once on a fresh federation
    (its first send waits for its peers' DIDs to be published and synced)."""
    app = tmp_path / "app"
    shutil.copytree(QUICKSTART, app, ignore=shutil.ignore_patterns("__pycache__"))
    project = app / "pyproject.toml"
    text = re.sub(r"datasites = \[.*\]", f'datasites = ["{DS1}", "{DS2}"]', project.read_text())
    project.write_text(text)
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "SYFTFLWR_HOME": str(tmp_path / "home"),
           "SYFTFLWR_TRANSPORT": "syftbox"}  # fmt: skip
    configs = {email: network.add_client(email) for email in (AGG, DS1, DS2)}

    def run(email: str, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"run-{email}.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "syftflwr", "run", str(app), "--as", email, *args],
                env={**env, "SYFTBOX_CLIENT_CONFIG_PATH": str(configs[email])},
                stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path),
            )  # fmt: skip

    result = tmp_path / "result.json"
    datasites = [run(email, "--node-config", f"partition-id={i}",
                     "--node-config", "num-partitions=2")
                 for i, email in enumerate((DS1, DS2))]  # fmt: skip
    try:
        agg = run(AGG, "--rounds", "1", "--result-file", str(result))
        assert agg.wait(timeout=400) == 0, _tails(network.logs())
    finally:
        for proc in datasites:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in datasites:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = json.loads(result.read_text())
    assert summary["error"] is None and summary["failures"] == [], _tails(network.logs())
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    # the model crossed data dirs through SyftBox only: sealed in the aggregator's outbox
    # of each datasite's data dir, as synced there
    synced = network.data_dir(DS1) / "datasites" / AGG / "app_data" / "syftflwr"
    assert synced.is_dir()


def test_a_message_above_syftbox_file_limit_crosses_chunked(
    network: SyftBoxNetwork, tmp_path: Path
) -> None:
    """12 MiB each way through SyftBox 0.4.0, which refuses files (and upload requests)
    above 10 MiB: the transport's max_object_size keeps every sealed file beneath it, and
    the parts, which sync in no particular order, are waited for."""
    transport = get_registry().load("syftbox")
    configs = {email: network.add_client(email) for email in (AGG, DS1)}

    def context(email: str) -> TransportContext:
        return TransportContext(
            transport="syftbox", app_name="sync", email=email, aggregator=AGG, datasites=(DS1,),
            options={**transport.default_options(), "config_path": str(configs[email])},
            state_dir=tmp_path / "state" / email,
        )  # fmt: skip

    ds_context, agg_context = context(DS1), context(AGG)
    events = transport.make_events(transport.make_client(ds_context), ds_context)
    events.on_request("echo", lambda request: bytes(request.body)[::-1])
    server = threading.Thread(target=events.run_forever, daemon=True)
    server.start()
    rpc = transport.make_rpc(transport.make_client(agg_context), agg_context)
    try:
        body = os.urandom(12 * 1024 * 1024)
        handle = rpc.send(Request.new(sender=AGG, recipient=DS1, app="sync", endpoint="echo",
                                      body=body, ttl=600))  # fmt: skip
        responses = rpc.wait([handle], timeout=300)
        assert responses, f"no reply within 300 s\n{_tails(network.logs())}"
        assert responses[0].ok, responses[0].error_text
        assert bytes(responses[0].body) == body[::-1]
    finally:
        events.stop()
        server.join(30)
        events.close()
        rpc.close()
    limit = 10 * 1024 * 1024
    for email in (AGG, DS1):
        files = [p for p in network.data_dir(email).joinpath("datasites").rglob("*") if p.is_file()]
        assert max(p.stat().st_size for p in files) <= limit
