"""Coercion of raw config values (TOML, environment strings, CLI flags) into typed ones.

Shared by the project layer, the participant layer and transport options, so ``"512MiB"``,
``"10m"`` or ``"yes"`` mean the same thing wherever a user can write them. Every helper
raises :class:`ValueError` with a short description of what was expected; callers wrap it
in a :class:`~syftflwr.errors.ConfigError` naming the source and key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from syftflwr.names import suggest

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1} | {
    unit + suffix: base**power
    for power, unit in enumerate("kmgt", start=1)
    for base, suffixes in ((1000, ("", "b")), (1024, ("i", "ib")))
    for suffix in suffixes
}
"""``k/M/G/T`` (with or without ``B``) decimal, ``Ki/Mi/Gi/Ti`` (``KiB``...) binary."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_DURATION_FACTORS = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def type_name(value: object) -> str:
    """How TOML users know the type of what they wrote."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def unknown_key_fix(name: str, candidates: Iterable[str]) -> str:
    known = sorted(set(candidates))
    near = suggest(name, known)
    head = f"did you mean {near!r}? " if near else ""
    return f"{head}valid keys: {', '.join(known) or '(none)'}"


def parse_bool(value: object) -> bool:
    """A boolean written in a file: TOML's ``true`` or ``false`` only. A quoted ``"off"``
    or a ``0`` is refused rather than guessed (``encryption = "off"`` must not quietly
    mean anything)."""
    if isinstance(value, bool):
        return value
    raise ValueError(
        f"must be a TOML boolean (true or false, without quotes), got {type_name(value)} {value!r}"
    )


def parse_text_bool(value: object) -> bool:
    """A boolean given as text (environment variables, command-line values):
    ``1/0``, ``true/false``, ``yes/no``, ``on/off`` in any case; a real boolean too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {value!r}")


def parse_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {type_name(value)} {value!r}")


def parse_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {type_name(value)} {value!r}")
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def parse_size(value: object) -> int:
    """Bytes from an integer or a string like ``"512MiB"``, ``"1.5 GB"``, ``"4096"``.

    ``k/M/G/T`` (with or without ``B``) are decimal, ``Ki/Mi/Gi/Ti`` binary.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            number, unit = match.group(1), (match.group(2) or "").lower()
            return int(float(number) * _SIZE_FACTORS[unit])
    raise ValueError(
        f"expected a size in bytes: an integer or a string like '512MiB' or '1.5GB', got {value!r}"
    )


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``"90"``, ``"500ms"``, ``"10m"``, ``"1h"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_FACTORS[(match.group(2) or "").lower()]
    else:
        raise ValueError(
            f"expected seconds: a number or a string like '30s', '10m', '1h', got {value!r}"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite number of seconds, got {value!r}")
    return seconds


def parse_path(value: object, base: Path | None = None) -> Path:
    """A path with ``~`` expanded; a relative path is taken relative to ``base`` (the
    directory of the file that set it) or, without one, the current directory."""
    if isinstance(value, Path):
        path = value
    elif isinstance(value, str) and value.strip() and "\x00" not in value:
        path = Path(value.strip())
    else:
        raise ValueError(f"expected a path (a non-empty string), got {type_name(value)} {value!r}")
    path = path.expanduser()
    if not path.is_absolute():
        path = (base / path) if base is not None else path.absolute()
    return path


def parse_url(value: object) -> str:
    if isinstance(value, str):
        parsed = urlparse(value.strip())
        if parsed.scheme and (parsed.netloc or parsed.path):
            return value.strip()
    raise ValueError(f"expected a URL like 'https://host:port/path', got {value!r}")


def parse_mapping(value: object) -> dict[str, Any]:
    """A TOML table, or (from an environment variable) a JSON object."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            return loaded
    raise ValueError(
        f'expected a table (or, in an environment variable, a JSON object like {{"k": 1}}), '
        f"got {type_name(value)} {value!r}"
    )


def parse_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type_name(value)} {value!r}")
