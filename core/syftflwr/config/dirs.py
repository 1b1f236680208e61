"""Per-user folders (config, data, state) resolved from a given environment, not the
process's: a participant built with its own environment (``simulate``'s workspace, a
test's session folder) must not reach the user's real ``~/.local/share``.

platformdirs reads ``os.environ`` itself; this module gives the same folders from an
environment mapping: on Linux and other Unixes ``$XDG_{CONFIG,DATA,STATE}_HOME`` or
``$HOME/.config``, ``$HOME/.local/share``, ``$HOME/.local/state``; on macOS
``$HOME/Library/Application Support``; on Windows ``%LOCALAPPDATA%\\<app>\\<app>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from syftflwr._deprecation import mark_private as _mark_private

APP = "syftflwr"
Kind = Literal["config", "data", "state"]
_XDG = {"config": ("XDG_CONFIG_HOME", ".config"), "data": ("XDG_DATA_HOME", ".local/share"),
        "state": ("XDG_STATE_HOME", ".local/state")}  # fmt: skip


def home_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The user's home as ``env`` says (``HOME``; ``USERPROFILE`` on Windows); an
    environment that names none (a partial one given to ``connect``) means this user's."""
    for var in ("USERPROFILE", "HOME") if sys.platform == "win32" else ("HOME",):
        value = env.get(var, "").strip()
        if value:
            return Path(value)
    return Path.home()


def expand_user(path: str | Path, env: Mapping[str, str] = os.environ) -> Path:
    """``~`` and ``~/...`` against :func:`home_dir` of ``env`` (``~user`` is left alone)."""
    text = str(path)
    if text == "~" or text.startswith(("~/", "~" + os.sep)):
        return home_dir(env) / text[2:]
    return Path(text)


def user_dir(kind: Kind, env: Mapping[str, str] = os.environ, app: str = APP) -> Path:
    """The per-user ``kind`` folder of ``app`` for the user ``env`` describes."""
    if sys.platform == "win32":
        local = env.get("LOCALAPPDATA", "").strip()
        if local:
            return Path(local) / app / app
        return home_dir(env) / "AppData" / "Local" / app / app
    if sys.platform == "darwin":
        return home_dir(env) / "Library" / "Application Support" / app
    var, default = _XDG[kind]
    value = env.get(var, "").strip()
    base = Path(value) if value and Path(value).is_absolute() else home_dir(env) / default
    return base / app


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
