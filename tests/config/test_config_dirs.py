"""Per-user folders come from the environment given, not the process's (Linux rules)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from syftflwr.config.dirs import expand_user, user_dir

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="XDG rules: Linux")


def test_xdg_variables_then_home_of_the_given_environment(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "h"), "XDG_DATA_HOME": str(tmp_path / "data")}
    assert user_dir("data", env) == tmp_path / "data" / "syftflwr"
    assert user_dir("state", env) == tmp_path / "h" / ".local" / "state" / "syftflwr"
    assert user_dir("config", env) == tmp_path / "h" / ".config" / "syftflwr"
    relative = {**env, "XDG_DATA_HOME": "relative/ignored"}  # the XDG spec: absolute only
    assert user_dir("data", relative) == tmp_path / "h" / ".local" / "share" / "syftflwr"


def test_tilde_expands_against_the_given_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert expand_user("~/.syftflwr/x", env) == tmp_path / ".syftflwr" / "x"
    assert expand_user("~", env) == tmp_path
    assert expand_user("/abs/~x", env) == Path("/abs/~x")
