"""The template's own behaviour beyond the suite: detection, configuration errors, and
the plugin-author doctor (``syftflwr transports --check``) on the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from syftflwr.plugin import ConfigError, TransportContext
from syftflwr_template import plugin


def context(**options: object) -> TransportContext:
    """Built after any monkeypatched environment: ``env`` is a copy of the process's."""
    return TransportContext(transport="template", app_name="app", email="a@b.org", options=options)


def test_detection_needs_an_existing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYFTFLWR_TEMPLATE_ROOT", raising=False)
    assert not plugin.syftflwr_detect(context()).usable
    assert not plugin.syftflwr_detect(context(root=tmp_path / "missing")).usable
    verdict = plugin.syftflwr_detect(context(root=tmp_path))
    assert verdict.usable and verdict.preference == 5 and str(tmp_path) in verdict.reason
    monkeypatch.setenv("SYFTFLWR_TEMPLATE_ROOT", str(tmp_path))
    assert plugin.syftflwr_detect(context()).usable


def test_client_without_root_says_how_to_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYFTFLWR_TEMPLATE_ROOT", raising=False)
    with pytest.raises(ConfigError, match="SYFTFLWR_TEMPLATE_ROOT"):
        plugin.syftflwr_make_client(context())


def test_static_check_passes() -> None:
    """The installed distribution passes ``syftflwr transports --check template``."""
    proc = subprocess.run(
        [sys.executable, "-m", "syftflwr", "transports", "--check", "template", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "FLWR_TELEMETRY_ENABLED": "0"},
        check=False,
        timeout=120,
    )
    report = json.loads(proc.stdout)
    failed = [f for f in report["findings"] if f["status"] == "fail"]
    assert proc.returncode == 0 and report["ok"], failed
    keys = [f["status"] for f in report["findings"] if f["check"] == "public keys"]
    assert keys == ["ok"], report["findings"]  # key_directory(): core encryption works


def test_trains_a_flower_app_with_default_settings(tmp_path: Path) -> None:
    """As a user runs it: `syftflwr new`, then a whole federation over this transport in
    separate processes, encryption on (the default), a fresh HOME."""
    (tmp_path / "shared").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "XDG_"))}
    env.update(
        FLWR_TELEMETRY_ENABLED="0",
        HOME=str(tmp_path / "home"),
        SYFTFLWR_TEMPLATE_ROOT=str(tmp_path / "shared"),
    )
    for args in (["new", "fed-app"], ["simulate", "fed-app", "--transport", "template"]):
        proc = subprocess.run(
            [sys.executable, "-m", "syftflwr", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "transport template, 3 datasites, end-to-end encrypted" in " ".join(proc.stdout.split())
