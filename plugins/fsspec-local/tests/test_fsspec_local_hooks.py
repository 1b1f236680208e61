"""The plugin's hooks and options: metadata, detection, settings, registry integration,
and a hook module that stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _fsl_helpers import AGG, DS1, make_context
from syftflwr.info import TransportContext
from syftflwr.mailbox import LocalDirStorage, MailboxEvents, MailboxRPC
from syftflwr.plugin import MailboxSettings
from syftflwr.registry import Registry
from syftflwr.roles import ClientRole, EventsRole, RPCRole
from syftflwr_fsspec_local import plugin
from syftflwr_fsspec_local.options import Settings, capabilities, default_root


def test_transport_info_documents_every_option() -> None:
    info = plugin.syftflwr_transport_info()
    assert info.name == "fsspec-local"
    names = {o.name for o in info.options}
    assert {
        "root",
        "storage_options",
        "poll_interval",
        "max_object_size",
        "retention_interval",
        "watch",
    } <= names
    assert all(o.help for o in info.options)
    assert info.capabilities.notifies_arrivals


def test_default_root_honours_syftflwr_home(tmp_path: Path) -> None:
    assert default_root({"SYFTFLWR_HOME": str(tmp_path)}) == tmp_path / "mailbox"
    assert default_root({}).name == "mailbox"


@pytest.mark.parametrize(
    ("root", "local"),
    [
        ("gcs://bucket/prefix", False),
        ("s3://b/p", False),
        ("memory://x", False),
        ("file:///tmp/x", True),
        ("~/mailbox", True),
    ],
)
def test_settings_resolve_local_and_remote_roots(root: str, local: bool) -> None:
    settings = Settings.from_options({"root": root})
    assert settings.is_local is local
    ctx = TransportContext(transport="fsspec-local", app_name="app", options={"root": root})
    caps = capabilities(ctx, MailboxSettings.from_options({}, poll_interval=0.5))
    assert caps.notifies_arrivals is local
    if local:
        assert Path(settings.root).is_absolute()
    else:
        assert caps.poll_interval == 0.5


def test_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYFTFLWR_HOME", str(tmp_path / "home"))
    ctx = TransportContext(transport="fsspec-local", app_name="app")
    verdict = plugin.syftflwr_detect(ctx)
    assert verdict.usable and verdict.preference == 10
    assert not (tmp_path / "home").exists()  # detection has no side effects
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = TransportContext(
        transport="fsspec-local", app_name="app", options={"root": str(blocker / "sub")}
    )
    assert not plugin.syftflwr_detect(bad).usable
    remote = TransportContext(
        transport="fsspec-local", app_name="app", options={"root": "gcs://bucket/x"}
    )
    assert plugin.syftflwr_detect(remote).usable


def test_roles_satisfy_core_interfaces(tmp_path: Path) -> None:
    ctx = make_context(AGG, tmp_path / "root")
    client = plugin.syftflwr_make_client(ctx)
    assert isinstance(client, ClientRole)
    assert client.email == AGG
    assert client.datasite_url(DS1) == f"{tmp_path / 'root'}/syft_outbox_inbox_{DS1}_to_"
    rpc = plugin.syftflwr_make_rpc(client, ctx)
    events = plugin.syftflwr_make_events(client, ctx)
    assert isinstance(rpc, RPCRole) and isinstance(rpc, MailboxRPC)
    assert isinstance(events, EventsRole) and isinstance(events, MailboxEvents)
    assert isinstance(client.storage, LocalDirStorage)
    # the layout version marker is written when a root is opened
    marker = json.loads((tmp_path / "root" / ".syftflwr" / "layout.json").read_text())
    assert marker == {"layout": "syft_outbox_inbox", "version": 1}
    rpc.close()
    events.close()


def test_participants_in_one_process_share_one_root(tmp_path: Path) -> None:
    a = plugin.syftflwr_make_client(make_context(AGG, tmp_path))
    b = plugin.syftflwr_make_client(make_context(DS1, tmp_path))
    assert a.storage is b.storage and a.arrivals is b.arrivals


def test_registry_finds_and_validates_the_plugin() -> None:
    transport = Registry().load("fsspec-local")
    assert transport.info.name == "fsspec-local"


def test_hook_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, json; import syftflwr_fsspec_local.plugin as p; "
        "p.syftflwr_transport_info(); "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('fsspec', 'watchdog', 'gcsfs', 's3fs'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "FLWR_TELEMETRY_ENABLED": "0"},
    )
    assert json.loads(out.stdout) == []
