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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sb_server import SyftBoxNetwork, syftbox_venv
from syftflwr.envelope import Request
from syftflwr.errors import MalformedMessageError
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


def test_a_blob_syncs_to_its_recipients_only(network: SyftBoxNetwork, tmp_path: Path) -> None:
    """A blob's permission files name exactly its recipients: SyftBox 0.4.0's server
    syncs it to them and to nobody else. Blob 1 is for ds1, blob 2 for ds2: each
    datasite receives its own and reads it through the mailbox, never the other's."""
    transport = get_registry().load("syftbox")
    configs = {email: network.add_client(email) for email in (AGG, DS1, DS2)}

    def context(email: str) -> TransportContext:
        return TransportContext(
            transport="syftbox", app_name="sync", email=email, aggregator=AGG,
            datasites=(DS1, DS2),
            options={**transport.default_options(), "config_path": str(configs[email])},
            state_dir=tmp_path / "state" / email,
        )  # fmt: skip

    def role(email: str) -> Any:
        make = transport.make_rpc if email == AGG else transport.make_events
        return make(transport.make_client(context(email)), context(email))

    rpc, readers = role(AGG), {email: role(email) for email in (DS1, DS2)}
    try:
        blobs = {email: os.urandom(300_000) for email in (DS1, DS2)}
        refs = {
            email: rpc.put_blob([data], app="sync", recipients=[email], expires_at=None)
            for email, data in blobs.items()
        }

        def arrived(email: str, ref: Any) -> bytes:
            deadline = time.monotonic() + 180
            while True:
                try:
                    return bytes(readers[email].get_blob(ref, sender=AGG, app="sync"))
                except MalformedMessageError:  # not synced yet: "gone" for now
                    assert time.monotonic() < deadline, _tails(network.logs())
                    time.sleep(1)

        for email in (DS1, DS2):
            assert arrived(email, refs[email]) == blobs[email]
        # a blob for both, stored after them, reaches both: the sync is past blobs 1 and 2
        both = rpc.put_blob([b"both"], app="sync", recipients=[DS1, DS2], expires_at=None)
        assert arrived(DS1, both) == arrived(DS2, both) == b"both"
        for email, other in ((DS1, DS2), (DS2, DS1)):
            names = {p.name for p in network.data_dir(email).rglob("*.blob")}
            assert f"{refs[email].name}.blob" in names
            assert f"{refs[other].name}.blob" not in names, f"{other}'s blob reached {email}"
    finally:
        for reader in readers.values():
            reader.close()
        rpc.close()
