"""Keep config tests away from the real user's settings and environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No SYFTFLWR_* variable leaks in; per-user dirs point into the test's tmp dir."""
    for name in list(os.environ):
        if name.startswith("SYFTFLWR_") and name != "SYFTFLWR_DISABLE_PLUGINS":
            monkeypatch.delenv(name)
    home = tmp_path / "user-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("HOME", str(home))
    return home
