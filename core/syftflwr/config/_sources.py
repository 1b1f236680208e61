"""How errors name where a value came from, and reading a TOML file into plain data."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from syftflwr.errors import ConfigError

COMMAND_LINE = "command line"


def env_source(var: str) -> str:
    return f"environment variable {var}"


def env_value(env: Any, var: str) -> str | None:
    """The variable's value, or None when unset or empty (``VAR=`` unsets it)."""
    value = env.get(var)
    if value is None or not str(value).strip():
        return None
    return str(value)


_TRANSPORT_STRING = re.compile(r"^\s*transport\s*=", re.MULTILINE)


def read_toml(path: Path, *, what: str) -> dict[str, Any]:
    """Parse ``path`` as TOML; every failure becomes a ConfigError naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{what} not found", source=str(path), fix="check the path, or create the file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{what} is a directory, not a file", source=str(path), fix="point to the file"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what}: {exc.strerror or exc}",
            source=str(path),
            fix="check the file's permissions",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{what} is not UTF-8 text", source=str(path), fix="save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        fix = "correct the TOML syntax at the position shown"
        if "overwrite" in str(exc) and _TRANSPORT_STRING.search(text):
            fix = (
                '`transport = "NAME"` and `[...transport.NAME]` tables cannot coexist in '
                "TOML; write the name inside the table instead: "
                '[tool.syftflwr.transport] name = "NAME" (see docs/configuration.md)'
            )
        raise ConfigError(f"not valid TOML: {exc}", source=str(path), fix=fix) from None
