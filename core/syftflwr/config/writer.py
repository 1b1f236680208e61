"""``bootstrap``'s writer: put ``[tool.syftflwr]`` into a Flower app's ``pyproject.toml``.

Edits with tomlkit so the user's other tables, comments and formatting survive; touches
a key only when its value changes, so a second identical call changes nothing. The
result is validated with the same parser every participant uses before it replaces the
file (atomically), so bootstrap can never leave a config behind that ``run`` refuses.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from syftflwr.atomic import atomic_write
from syftflwr.config._sources import read_toml
from syftflwr.config._values import unknown_key_fix
from syftflwr.config.options import checked
from syftflwr.config.project import (
    KEYS,
    OVERRIDABLE,
    TABLE,
    default_app_name,
    find_pyproject,
    parse_datasites,
    parse_project,
)
from syftflwr.errors import ConfigError

EXTRA_KEYS = tuple(k.name for k in OVERRIDABLE if k.name != "transport")
"""Keys ``write_project_config`` accepts as ``**extra``."""


def write_project_config(
    pyproject: str | Path,
    *,
    aggregator: str,
    datasites: Sequence[str],
    transport: str | None = None,
    app_name: str | None = None,
    **extra: Any,
) -> bool:
    """Write (or update) ``[tool.syftflwr]``; return True if the file changed.

    :param pyproject: the Flower app's directory or its ``pyproject.toml`` (must exist).
    :param datasites: replaces the configured list (order kept).
    :param transport: pins the transport, so participants cannot silently auto-detect
        different ones; None leaves any pinned transport as it is.
    :param app_name: None keeps the configured one, or pins the name derived from
        ``[project].name`` (renaming the package later must not move the mailboxes).
    :param extra: any of ``profile``, ``encryption``, ``max_message_size``,
        ``clock_skew``, ``round_timeout``, ``message_ttl``; None values are skipped.
    :raises ConfigError: invalid input, or a file whose result would not validate.
    """
    file = find_pyproject(pyproject).resolve()
    document = read_toml(file, what="pyproject.toml")  # clear errors for bad syntax
    text = file.read_text(encoding="utf-8")
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:  # pragma: no cover - tomllib accepted it already
        raise ConfigError(f"cannot edit: {exc}", source=str(file)) from None

    values = _validated_inputs(
        aggregator=aggregator,
        datasites=datasites,
        transport=transport,
        app_name=app_name,
        extra=extra,
    )
    table = _syftflwr_table(doc, file)
    if "app_name" not in values and "app_name" not in table:
        derived = _project_name(document)
        if derived is not None:
            values = {"app_name": derived, **values}
    for key, value in values.items():
        if key == "transport" and isinstance(table.get("transport"), Mapping):
            _set(table["transport"], "name", value)  # the table form keeps its options
        else:
            _set(table, key, value)

    return _replace_validated(file, text, tomlkit.dumps(doc))


def write_key_pins(pyproject: str | Path, pins: Mapping[str, str]) -> bool:
    """Merge ``pins`` (email -> fingerprint) into ``[tool.syftflwr.keys]``; return True
    if the file changed. Pins of other participants are kept; the result must parse.

    :raises ConfigError: no ``[tool.syftflwr]`` yet, a bad pin, or an invalid result.
    """
    file = find_pyproject(pyproject).resolve()
    read_toml(file, what="pyproject.toml")
    text = file.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    table = _syftflwr_table(doc, file)
    if "aggregator" not in table:
        raise ConfigError(
            f"[{TABLE}] has no federation yet, so there is nobody to pin",
            source=str(file),
            fix="run `syftflwr bootstrap` first",
        )
    keys = table.get("keys")
    if keys is None:
        table["keys"] = tomlkit.table()
        keys = table["keys"]
    elif not isinstance(keys, Mapping):
        raise ConfigError(
            f"[{TABLE}].keys is not a table", source=str(file), key=f"{TABLE}.keys",
            fix="remove it, then pin again",
        )  # fmt: skip
    for email, fp in pins.items():
        _set(keys, email, fp)
    return _replace_validated(file, text, tomlkit.dumps(doc))


def _replace_validated(file: Path, text: str, new_text: str) -> bool:
    """Write ``new_text`` over ``file`` (whose current content is ``text``) only if it
    parses as every participant will parse it; True if it changed."""
    if not new_text.endswith("\n"):
        new_text += "\n"
    try:
        parse_project(tomllib.loads(new_text), path=file)
    except ConfigError as exc:
        raise ConfigError(
            f"not written: the result would be invalid: {exc.problem}",
            source=str(file),
            key=exc.key,
            fix=exc.fix,
        ) from None
    if new_text == text:
        return False
    _atomic_write(file, new_text)
    return True


def _validated_inputs(
    *,
    aggregator: str,
    datasites: Sequence[str],
    transport: str | None,
    app_name: str | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """Inputs checked with the readers' own validators, in the order they are written."""
    values: dict[str, Any] = {}
    if app_name is not None:
        values["app_name"] = checked(
            KEYS["app_name"], app_name, source=None, key=f"{TABLE}.app_name"
        )
    values["aggregator"] = checked(
        KEYS["aggregator"], aggregator, source=None, key=f"{TABLE}.aggregator"
    )
    if isinstance(datasites, str) or not datasites:
        raise ConfigError(
            "at least one datasite is needed",
            key=f"{TABLE}.datasites",
            fix="name every datasite's email (--datasite EMAIL, once per datasite)",
        )
    values["datasites"] = list(
        parse_datasites(list(datasites), aggregator=values["aggregator"], source=None)
    )
    if transport is not None:
        values["transport"] = checked(
            KEYS["transport"], transport, source=None, key=f"{TABLE}.transport"
        )
    for key, value in extra.items():
        if key not in EXTRA_KEYS:
            raise ConfigError(
                f"write_project_config cannot set {key!r}",
                key=f"{TABLE}.{key}",
                fix=unknown_key_fix(key, EXTRA_KEYS),
            )
        if value is None:
            continue
        checked(KEYS[key], value, source=None, key=f"{TABLE}.{key}")
        values[key] = value  # as the user wrote it ("512MiB" stays readable)
    return values


def _project_name(document: Mapping[str, Any]) -> str | None:
    project = document.get("project")
    name = project.get("name") if isinstance(project, Mapping) else None
    return default_app_name(name) if isinstance(name, str) else None


def _syftflwr_table(doc: tomlkit.TOMLDocument, file: Path) -> Any:
    """``[tool.syftflwr]``, created (after the other ``tool`` tables) if missing."""
    tool: Any = doc.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        doc["tool"] = tool
    elif not isinstance(tool, Mapping):
        raise ConfigError(
            "[tool] is not a table",
            source=str(file),
            key="tool",
            fix="make `tool` a table (its sub-tables are [tool.NAME])",
        )
    table = tool.get("syftflwr")
    if table is None:
        table = tomlkit.table()
        tool["syftflwr"] = table
        table = tool["syftflwr"]
    elif not isinstance(table, Mapping):
        raise ConfigError(
            f"[{TABLE}] is not a table",
            source=str(file),
            key=TABLE,
            fix="remove the `syftflwr` value from [tool] and run bootstrap again",
        )
    return table


def _plain(value: Any) -> Any:
    """A tomlkit item as plain Python data, for comparison."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _set(table: Any, key: str, value: Any) -> None:
    if key in table and _plain(table[key]) == value:
        return  # untouched: keeps the user's formatting and trailing comment
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(value)
        array.multiline(len(value) > 1)
        table[key] = array
    else:
        table[key] = value


def _atomic_write(file: Path, text: str) -> None:
    """Readers (other participants' tools, an editor) see the old file or the new one."""
    mode = stat.S_IMODE(file.stat().st_mode)
    try:
        atomic_write(file, text, mode=mode)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the file: {exc.strerror or exc}",
            source=str(file),
            fix="check that the directory is writable",
        ) from None
