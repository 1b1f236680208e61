"""A transport's option table, validated against the :class:`OptionSpec` list it declares.

Values come in layers (project table < participant table < environment < command line);
each layer is checked on its own, so an error names the exact file, variable or flag
that holds the bad value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syftflwr.config._sources import COMMAND_LINE, env_source, env_value
from syftflwr.config._values import (
    parse_bool,
    parse_float,
    parse_int,
    parse_mapping,
    parse_path,
    parse_str,
    parse_text_bool,
    parse_url,
    unknown_key_fix,
)
from syftflwr.errors import ConfigError
from syftflwr.info import OptionSpec, OptionType, TransportInfo

_PARSERS: dict[OptionType, Callable[[object], Any]] = {
    "str": parse_str,
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "url": parse_url,
    "mapping": parse_mapping,
}

_EXAMPLES: dict[OptionType, str] = {
    "str": '"text"',
    "int": "42",
    "float": "1.5",
    "bool": "true",
    "path": '"~/some/dir"',
    "url": '"https://host:port"',
    "mapping": "{ key = 1 }",
}


@dataclass(frozen=True)
class Layer:
    """One source of option values."""

    values: Mapping[str, Any]
    source: str
    """The file path, ``environment variable X`` or ``command line``."""
    key_prefix: str = ""
    """Prefix that turns an option name into the key users see in ``source``."""
    base: Path | None = None
    """Directory relative paths are resolved against (the file's directory)."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Option name -> the environment variable that set it (environment layer only)."""
    text: bool = False
    """Values are text (environment, command line): booleans may be ``1/0``, ``on/off``...;
    in files they must be TOML booleans."""


def option_env_name(transport: str, spec: OptionSpec) -> str:
    """``spec.env`` if declared, else ``SYFTFLWR_<TRANSPORT>_<OPTION>`` (``-`` -> ``_``)."""
    if spec.env:
        return spec.env
    return f"SYFTFLWR_{transport}_{spec.name}".upper().replace("-", "_").replace(".", "_")


def coerce_option(
    spec: OptionSpec, value: object, *, base: Path | None = None, text: bool = False
) -> Any:
    """Convert ``value`` to ``spec.type`` and check ``spec.choices`` and the range
    (ValueError if not). ``text``: ``value`` comes from the environment or the command
    line, where a boolean is written as text."""
    if spec.type == "bool" and text:
        result: Any = parse_text_bool(value)
    elif spec.parse is not None:
        result = spec.parse(value)
    elif spec.type == "path":
        result = parse_path(value, base)
    else:
        result = _PARSERS[spec.type](value)
    if spec.choices is not None and result not in spec.choices:
        raise ValueError(f"{result!r} is not one of {', '.join(repr(c) for c in spec.choices)}")
    if spec.minimum is not None and result is not None and not isinstance(result, bool):
        low = result <= spec.minimum if spec.exclusive_minimum else result < spec.minimum
        if low:
            raise ValueError(f"{spec.name} must be {spec.range}, got {result!r}")
    return result


def checked(
    spec: OptionSpec,
    value: object,
    *,
    source: str | None,
    key: str | None,
    base: Path | None = None,
    text: bool = False,
    var: str | None = None,
) -> Any:
    """:func:`coerce_option`, a bad value becoming a ConfigError at ``source`` and
    ``key`` with the fix (``var``: the environment variable that held it)."""
    try:
        return coerce_option(spec, value, base=base, text=text)
    except ValueError as exc:
        if var and spec.type == "bool":
            fix = f"set {var}=1 or {var}=0 (or true/false, yes/no, on/off)"
        else:
            bound = f" {spec.range}" if spec.range else ""
            fix = spec.fix or (
                f"{spec.help.rstrip('.')}; expected {spec.type}{bound}, "
                f"e.g. {spec.name} = {_EXAMPLES[spec.type]}"
            )
        raise ConfigError(str(exc), source=source, key=key, fix=fix) from None


def env_layer(info: TransportInfo, env: Mapping[str, str]) -> Layer:
    """The options set through environment variables (only declared names are read)."""
    values: dict[str, str] = {}
    variables: dict[str, str] = {}
    for spec in info.options:
        var = option_env_name(info.name, spec)
        raw = env_value(env, var)
        if raw is not None:
            values[spec.name] = raw
            variables[spec.name] = var
    return Layer(
        values=values, source="environment", base=Path.cwd(), variables=variables, text=True
    )


def validate_options(info: TransportInfo, layers: Sequence[Layer]) -> dict[str, Any]:
    """Merge ``layers`` (later wins) into the transport's validated option dict.

    Every declared option is present in the result (its default when unset).

    :raises ConfigError: an unknown key (with the nearest valid one), a value of the
        wrong type or outside ``choices``, or a required option nobody set.
    """
    specs = {spec.name: spec for spec in info.options}
    result: dict[str, Any] = {spec.name: spec.default for spec in info.options}
    given: set[str] = set()
    for layer in layers:
        for name, raw in layer.values.items():
            if raw is None:  # an unset CLI flag
                continue
            source, key = _where(layer, name)
            spec = specs.get(name)
            if spec is None:
                raise ConfigError(
                    f"transport {info.name!r} has no option {name!r}",
                    source=source,
                    key=key,
                    fix=unknown_key_fix(name, specs),
                )
            var = layer.variables.get(name)
            result[name] = checked(
                spec, raw, source=source, key=key, base=layer.base, text=layer.text, var=var
            )
            given.add(name)
    for spec in info.options:
        if spec.required and spec.name not in given and spec.default is None:
            raise missing_option(info, spec)
    return result


def _where(layer: Layer, name: str) -> tuple[str, str | None]:
    if name in layer.variables:
        return env_source(layer.variables[name]), None
    return layer.source, f"{layer.key_prefix}{name}"


def missing_option(info: TransportInfo, spec: OptionSpec) -> ConfigError:
    var = option_env_name(info.name, spec)
    project = f"[tool.syftflwr.transport.{info.name}] of the project's pyproject.toml"
    settings = f"[transport.{info.name}] of your settings file"
    places = (settings, project) if spec.participant else (project, settings)
    return ConfigError(
        f"transport {info.name!r} needs option {spec.name!r} ({spec.help.rstrip('.')})",
        key=spec.name,
        fix=f"set {spec.name} = {_EXAMPLES[spec.type]} in {places[0]}, in {places[1]}, "
        f"or the environment variable {var}",
    )


def file_layer(
    table: Mapping[str, Any] | None, *, source: str, key_prefix: str, base: Path | None
) -> Layer:
    return Layer(values=dict(table or {}), source=source, key_prefix=key_prefix, base=base)


def cli_layer(values: Mapping[str, Any]) -> Layer:
    return Layer(values=dict(values), source=COMMAND_LINE, base=Path.cwd(), text=True)
