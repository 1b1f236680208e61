"""A third-party transport, installed as a real distribution and selected by name, carries
requests between TWO PROCESSES: a datasite subprocess serving an echo endpoint, and this
test process sending through the aggregator's RPC role."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _plugin_env import PluginEnv
from syftflwr.envelope import Request
from syftflwr.info import TransportContext
from syftflwr.registry import Registry

AGG, DS = "agg@example.org", "ds@example.org"
APP = "echo-app"

DATASITE = """
import signal, sys
from syftflwr.info import TransportContext
from syftflwr.registry import get_registry

transport = get_registry().load("tinydir")
context = TransportContext(transport="tinydir", app_name=sys.argv[2], email=sys.argv[3],
                           aggregator=sys.argv[4], options={"root": sys.argv[1]})
events = transport.make_events(transport.make_client(context), context)
events.on_request("echo", lambda request: b"echo:" + bytes(request.body))
signal.signal(signal.SIGTERM, lambda *_: events.stop())
print("ready", flush=True)
events.run_forever()
events.close()
print("stopped", flush=True)
"""


@pytest.fixture
def datasite(plugin_env: PluginEnv, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DATASITE, str(tmp_path), APP, DS, AGG],
        env=plugin_env.env("tinydir"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_tinydir_round_trip_between_two_processes(
    plugin_env: PluginEnv, datasite: subprocess.Popen[str], tmp_path: Path
) -> None:
    with plugin_env.importable("tinydir"):
        registry = Registry(entry_points=plugin_env.entry_points("tinydir"))
        transport = registry.load("tinydir")  # selected by name
        context = TransportContext(
            transport="tinydir",
            app_name=APP,
            email=AGG,
            datasites=(DS,),
            options={"root": tmp_path},
        )
        rpc = transport.make_rpc(transport.make_client(context), context)
        try:
            ok = rpc.send(Request.new(sender=AGG, recipient=DS, app=APP, endpoint="echo",
                                      body=b"hello", ttl=60))  # fmt: skip
            missing = rpc.send(Request.new(sender=AGG, recipient=DS, app=APP, endpoint="nope",
                                           body=b"", ttl=60))  # fmt: skip
            got: dict[str, bytes | str] = {}
            while len(got) < 2:
                arrived = rpc.wait([h for h in (ok, missing) if h.id not in got], 30)
                assert arrived, f"no response within 30 s (have {len(got)} of 2)"
                for response in arrived:
                    got[response.id] = bytes(response.body) if response.ok else response.error_text
        finally:
            rpc.close()
    assert got[ok.id] == b"echo:hello"
    assert "no handler for endpoint 'nope'" in str(got[missing.id])
    assert not list((tmp_path / DS / APP / "requests").iterdir())  # claimed and removed

    datasite.send_signal(signal.SIGTERM)
    out, err = datasite.communicate(timeout=20)
    assert datasite.returncode == 0, err
    assert out.strip() == "stopped"
