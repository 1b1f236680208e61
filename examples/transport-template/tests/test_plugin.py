"""The template's own behaviour beyond the suite: detection, configuration errors, and
the plugin-author doctor (``syftflwr transports --check``) on the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from syftflwr.errors import ConfigError
from syftflwr.info import TransportContext
from syftflwr.registry import Registry, Transport, detection_context


@pytest.fixture
def transport() -> Transport:
    return Registry().load("template")


def context(**options: object) -> TransportContext:
    return TransportContext(transport="template", app_name="app", email="a@b.org", options=options)


def test_detection_needs_an_existing_root(
    transport: Transport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYFTFLWR_TEMPLATE_ROOT", raising=False)
    assert not transport.detect(detection_context(transport)).usable
    assert not transport.detect(context(root=tmp_path / "missing")).usable
    verdict = transport.detect(context(root=tmp_path))
    assert verdict.usable and verdict.preference == 5 and str(tmp_path) in verdict.reason
    monkeypatch.setenv("SYFTFLWR_TEMPLATE_ROOT", str(tmp_path))
    assert transport.detect(detection_context(transport)).usable


def test_client_without_root_says_how_to_configure_it(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYFTFLWR_TEMPLATE_ROOT", raising=False)
    with pytest.raises(ConfigError, match="SYFTFLWR_TEMPLATE_ROOT"):
        transport.make_client(context())


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
