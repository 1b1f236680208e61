"""The shared project layer: ``[tool.syftflwr]`` in the Flower app's ``pyproject.toml``.

Every participant holds the same copy, so it carries only what the federation must agree
on (app name, aggregator, datasites, transport, wire profile, limits). Per-person things
(identity, tokens, local roots, state) live in :mod:`syftflwr.config.participant`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from syftflwr.config._sources import read_toml
from syftflwr.config._values import (
    parse_duration,
    parse_size,
    parse_str,
    type_name,
    unknown_key_fix,
)
from syftflwr.config.options import checked
from syftflwr.errors import ConfigError
from syftflwr.info import DEFAULT_MAX_MESSAGE_SIZE, PROTOBUF_LIMIT, OptionSpec
from syftflwr.names import (
    JOBS_APP,
    SYFT_FLWR_05,
    suggest,
    validate_app_name,
    validate_email,
    validate_identifier,
)

TABLE = "tool.syftflwr"
PROFILES = ("native", "syft-flwr-0.5")
DEFAULT_APP_NAME = "syftflwr"
DEFAULT_CLOCK_SKEW = 30.0
DEFAULT_ROUND_TIMEOUT = 600.0
DEFAULT_MESSAGE_TTL = 3600.0
DEFAULT_BLOB_THRESHOLD = 1 << 20
"""An ArrayRecord this large (bytes, serialized) is stored once for all the datasites of
a push, when the transport can share objects (docs/transports.md, "Bandwidth")."""
DEFAULT_ENCRYPTION = True
"""Core envelope encryption is on unless a project says ``encryption = false``."""
FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")

BOOTSTRAP_FIX = (
    "run `syftflwr bootstrap PROJECT --aggregator EMAIL --datasite EMAIL ...` "
    "or add [tool.syftflwr] to the project's pyproject.toml (docs/configuration.md)"
)


@dataclass(frozen=True)
class ProjectConfig:
    """``[tool.syftflwr]`` after validation, with every default filled in.

    ``sources`` maps each key to where its value came from (the file, an environment
    variable, the command line) so later errors can say so; keys left at their default
    are absent from it.
    """

    app_name: str = DEFAULT_APP_NAME
    aggregator: str | None = None
    datasites: tuple[str, ...] = ()
    transport: str | None = None
    """Pinned transport name; None means auto-detect."""
    profile: str = "native"
    encryption: bool | None = None
    """None: the default (:data:`DEFAULT_ENCRYPTION`); see :attr:`encryption_enabled`."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    clock_skew: float = DEFAULT_CLOCK_SKEW
    round_timeout: float = DEFAULT_ROUND_TIMEOUT
    message_ttl: float = DEFAULT_MESSAGE_TTL
    blob_threshold: int = DEFAULT_BLOB_THRESHOLD
    transport_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Raw ``[tool.syftflwr.transport.<name>]`` tables, validated at resolve time."""
    keys: Mapping[str, str] = field(default_factory=dict)
    """``[tool.syftflwr.keys]``: participant email -> pinned public-key fingerprint."""
    path: Path | None = None
    """The ``pyproject.toml`` this was read from (None: built in code)."""
    project_name: str | None = None
    """``[project].name`` of the Flower app, if any."""
    configured: bool = False
    """True when the file has a ``[tool.syftflwr]`` table."""
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The app name's form and the emails' case depend on the profile, which the
        environment and the command line may set: applied whenever either changes.

        Emails name folders. Differing only in case they are one address, so the native
        profile uses their lower-case form everywhere; ``syft-flwr-0.5`` keeps them as
        written, because upstream's folders carry the configured spelling."""
        if self.profile != SYFT_FLWR_05:
            object.__setattr__(self, "aggregator", self.aggregator and self.aggregator.lower())
            object.__setattr__(self, "datasites", tuple(e.lower() for e in self.datasites))
            object.__setattr__(self, "keys", {e.lower(): fp for e, fp in self.keys.items()})
        try:
            validate_app_name(self.app_name, profile=self.profile)
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                source=self.source_of("app_name"),
                key=f"{TABLE}.app_name",
                fix='write profile = "syft-flwr-0.5" in [tool.syftflwr] when the project '
                "was bootstrapped by syft-flwr 0.5 and works with its participants; "
                'else choose an app name such as app_name = "quickstart"',
            ) from None

    @property
    def root(self) -> Path | None:
        """The Flower app's directory (holding ``pyproject.toml``)."""
        return self.path.parent if self.path is not None else None

    @property
    def participants(self) -> tuple[str, ...]:
        """The aggregator, then every datasite."""
        return ((self.aggregator,) if self.aggregator else ()) + self.datasites

    @property
    def encryption_enabled(self) -> bool:
        return DEFAULT_ENCRYPTION if self.encryption is None else self.encryption

    def source_of(self, key: str) -> str:
        """Where ``key``'s value came from: a file, ``environment variable X``, ``command
        line`` or ``default``."""
        return self.sources.get(key, "default")

    def require_federation(self) -> None:
        """Raise unless an aggregator and at least one datasite are configured."""
        where = str(self.path) if self.path else None
        if not self.aggregator:
            raise ConfigError(
                "no aggregator is configured",
                source=where,
                key=f"{TABLE}.aggregator",
                fix=BOOTSTRAP_FIX,
            )
        if not self.datasites:
            raise ConfigError(
                "no datasites are configured",
                source=where,
                key=f"{TABLE}.datasites",
                fix=BOOTSTRAP_FIX,
            )

    def correspondents(self, email: str) -> tuple[str, ...]:
        """Who ``email`` exchanges messages (and so public keys) with: the aggregator's
        are the datasites, a datasite's the aggregator — datasites never talk to each
        other. Without a configured federation, every other participant."""
        if self.aggregator and email == self.aggregator:
            return tuple(d for d in self.datasites if d != email)
        if self.aggregator and email in self.datasites:
            return (self.aggregator,)
        return tuple(p for p in self.participants if p != email)

    def participant_email(self, email: str) -> str:
        """``email`` as this project spells it (``--as`` and settings compare
        case-insensitively); unchanged when it is no participant's."""
        folded = email.lower()
        return next((p for p in self.participants if p.lower() == folded), email)

    def role_of(self, email: str) -> Literal["aggregator", "datasite"]:
        """The role ``email`` plays in this federation (compared case-insensitively); a
        stranger is an error."""
        self.require_federation()
        email = self.participant_email(email)
        if email == self.aggregator:
            return "aggregator"
        if email in self.datasites:
            return "datasite"
        raise not_a_participant(self, email)


def not_a_participant(project: ProjectConfig, email: str) -> ConfigError:
    near = suggest(email, project.participants)
    return ConfigError(
        f"{email} is neither the aggregator ({project.aggregator}) nor one of the datasites "
        f"({', '.join(project.datasites)})" + (f"; did you mean {near}?" if near else ""),
        source=str(project.path) if project.path else None,
        key=TABLE,
        fix=(f"--as {near}" if near else "run as one of those emails")
        + " (--as / SYFTFLWR_EMAIL / email in your settings file), or add it with "
        "`syftflwr bootstrap`",
    )


# --------------------------------------------------------------------------- keys
def _message_size(value: object) -> int:
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"max_message_size must be positive, got {size}")
    if size > PROTOBUF_LIMIT:
        raise ValueError(
            f"max_message_size {size} is above protobuf's parse limit of {PROTOBUF_LIMIT} "
            "bytes (2 GiB - 1), so such a message could never be read"
        )
    return size


def _blob_threshold(value: object) -> int:
    size = parse_size(value)
    if size < 0:
        raise ValueError(f"blob_threshold must be >= 0, got {size}")
    return size


def _profile(value: object) -> str:
    text = parse_str(value)
    if text not in PROFILES:
        raise ValueError(f"unknown profile {text!r}; expected one of {', '.join(PROFILES)}")
    return text


def _transport_name(value: object) -> str:
    return validate_identifier(parse_str(value), "transport name")


KEYS: dict[str, OptionSpec] = {
    k.name: k
    for k in (
        OptionSpec(
            "app_name",
            "str",
            "The app's name in every mailbox path; every participant must agree on it. "
            "Default: `[project].name`, lower-cased, other runs of characters collapsed "
            "to `-`.",
            parse=lambda v: validate_app_name(parse_str(v)),
            fix="use 1-64 letters, digits, '_', '.', '-' starting with a letter or digit, "
            'e.g. app_name = "quickstart" (with profile = "syft-flwr-0.5" also syft-flwr '
            "0.5 bootstrap's {aggregator email}_{project}_{unix time})",
        ),
        OptionSpec(
            "aggregator",
            "str",
            "The participant that runs the ServerApp. Required to run.",
            parse=lambda v: validate_email(parse_str(v)),
            fix='write the aggregator\'s plain email, e.g. aggregator = "ds@university.org"',
        ),
        OptionSpec(
            "transport",
            "str",
            "The transport every participant uses (a name, or a table with `name` and "
            "per-transport option tables). Absent: auto-detection, which may differ "
            "between machines — pin it for real federations.",
            parse=_transport_name,
            fix="name an installed transport (see `syftflwr transports`), "
            'e.g. transport = "gdrive"',
            env="SYFTFLWR_TRANSPORT",
            flag="--transport",
        ),
        OptionSpec(
            "profile",
            "str",
            "The wire profile: `native` (syftflwr's mailbox, chunking, encryption) or "
            "`syft-flwr-0.5` (upstream's layout, to interoperate with syft-flwr 0.5 "
            "participants).",
            parse=_profile,
            fix=f"use one of {', '.join(repr(p) for p in PROFILES)}",
            env="SYFTFLWR_PROFILE",
            flag="--profile",
        ),
        OptionSpec(
            "encryption",
            "bool",
            "Core envelope encryption of every message to its recipient, "
            "sender-authenticated; `false` turns it off (every participant must agree). "
            "A transport that encrypts end to end itself (SyftBox in the syft-flwr-0.5 "
            "profile) uses its own instead.",
            fix="write encryption = true or encryption = false (a TOML boolean, without quotes)",
            env="SYFTFLWR_ENCRYPTION",
            flag="--encryption/--no-encryption",
        ),
        OptionSpec(
            "max_message_size",
            "int",
            "Policy: a message larger than this (bytes or a size string) is refused as "
            "hostile input, on send and on receipt. At most 2147483647 (protobuf's limit).",
            parse=_message_size,
            fix=f"use bytes or a size string up to {PROTOBUF_LIMIT}, "
            'e.g. max_message_size = "512MiB"',
            env="SYFTFLWR_MAX_MESSAGE_SIZE",
            flag="--max-message-size",
        ),
        OptionSpec(
            "clock_skew",
            "float",
            "Seconds of clock difference between participants tolerated when checking expiry.",
            parse=parse_duration,
            minimum=0,
            fix='use seconds >= 0, e.g. clock_skew = 30 or clock_skew = "1m"',
            env="SYFTFLWR_CLOCK_SKEW",
            flag="--clock-skew",
        ),
        OptionSpec(
            "round_timeout",
            "float",
            "Seconds the aggregator waits for one round's replies before going on without "
            "the missing datasites (reported as failures); it bounds every wait of a round "
            "(sending, a peer's key included, and the stop messages at the end).",
            parse=parse_duration,
            minimum=0,
            exclusive_minimum=True,
            fix='use seconds > 0, e.g. round_timeout = 600 or round_timeout = "10m"',
            env="SYFTFLWR_ROUND_TIMEOUT",
            flag="--round-timeout",
        ),
        OptionSpec(
            "message_ttl",
            "float",
            "Seconds an instruction stays deliverable; an expired one never reaches a ClientApp.",
            parse=parse_duration,
            minimum=0,
            exclusive_minimum=True,
            fix='use seconds > 0, e.g. message_ttl = 3600 or message_ttl = "1h"',
            env="SYFTFLWR_MESSAGE_TTL",
            flag="--message-ttl",
        ),
        OptionSpec(
            "blob_threshold",
            "int",
            "An ArrayRecord (a model) whose serialized size is at least this many bytes "
            "(or a size string) is uploaded once per push as a shared blob that every "
            "datasite of the push reads, instead of once per datasite; `0` sends every "
            "ArrayRecord that way. Used only where the transport can share objects "
            "(`shares_objects`) and the profile is `native`.",
            parse=_blob_threshold,
            fix='use bytes >= 0 or a size string, e.g. blob_threshold = "1MiB" '
            "(0: every ArrayRecord as a shared blob)",
            env="SYFTFLWR_BLOB_THRESHOLD",
        ),
    )
}
"""Scalar keys; ``datasites`` (an array) and ``transport`` tables are handled apart."""

VALID_KEYS = (*KEYS, "datasites", "keys")
OVERRIDABLE = tuple(k for k in KEYS.values() if k.env)


# --------------------------------------------------------------------------- loading
def find_pyproject(path: str | Path) -> Path:
    """``path`` itself if it is a file, else ``path/pyproject.toml``."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / "pyproject.toml"
        if not candidate.is_file():
            raise ConfigError(
                "this directory has no pyproject.toml, so it is not a Flower app",
                source=str(path),
                fix="point to the Flower app's directory (where its pyproject.toml is), "
                f"or create an app with `syftflwr new {path.name or 'my-app'}`",
            )
        return candidate
    if not path.exists():
        what = "file" if path.name == "pyproject.toml" else "directory"
        raise ConfigError(
            f"no such {what}",
            source=str(path.absolute()),
            fix="check the path (give the Flower app's directory), or create an app "
            "there with `syftflwr new NAME`",
        )
    return path


def load_project(path: str | Path) -> ProjectConfig:
    """Read and validate ``[tool.syftflwr]`` of a Flower app.

    :param path: the app's directory or its ``pyproject.toml``.
    :raises ConfigError: naming the file, the key and the fix.

    A file without ``[tool.syftflwr]`` loads as an unconfigured project (defaults,
    ``configured=False``); commands that need a federation call
    :meth:`ProjectConfig.require_federation`.
    """
    file = find_pyproject(path).absolute()
    document = read_toml(file, what="pyproject.toml")
    return parse_project(document, path=file)


def parse_project(document: Mapping[str, Any], *, path: Path | None = None) -> ProjectConfig:
    """Validate a parsed ``pyproject.toml`` (the whole document)."""
    source = str(path) if path else "pyproject.toml"
    project_table = document.get("project")
    project_name = project_table.get("name") if isinstance(project_table, Mapping) else None
    if not isinstance(project_name, str):
        project_name = None
    tool = document.get("tool", {})
    raw = tool.get("syftflwr") if isinstance(tool, Mapping) else None
    if raw is None:
        return ProjectConfig(
            app_name=default_app_name(project_name) or DEFAULT_APP_NAME,
            path=path,
            project_name=project_name,
            sources={},
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"[{TABLE}] must be a table, not {type_name(raw)}",
            source=source,
            key=TABLE,
            fix=f"write it as a table: [{TABLE}] followed by key = value lines",
        )
    return _parse_table(raw, source=source, path=path, project_name=project_name)


def _parse_table(
    raw: Mapping[str, Any], *, source: str, path: Path | None, project_name: str | None
) -> ProjectConfig:
    for name in raw:
        if name not in VALID_KEYS:
            raise ConfigError(
                f"unknown key {name!r}",
                source=source,
                key=f"{TABLE}.{name}",
                fix=unknown_key_fix(name, VALID_KEYS),
            )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, spec in KEYS.items():
        if name in raw and name != "transport":
            values[name] = checked(spec, raw[name], source=source, key=f"{TABLE}.{name}")
            sources[name] = source
    transport, tables = _parse_transport(raw.get("transport"), source=source)
    if transport is not None:
        values["transport"] = transport
        sources["transport"] = source
    if "app_name" not in values:
        derived = default_app_name(project_name)
        if derived is None:
            raise ConfigError(
                "cannot tell the app's name: there is no app_name and no [project].name",
                source=source,
                key=f"{TABLE}.app_name",
                fix='add app_name = "my-app" to [tool.syftflwr] (letters, digits, _ . -)',
            )
        values["app_name"] = derived
        sources["app_name"] = f"{source} ([project].name)"
    if values["app_name"] == JOBS_APP:
        raise ConfigError(
            f"the app name {JOBS_APP!r} is reserved for the jobs endpoint every "
            "participant shares (docs/jobs.md)",
            source=sources["app_name"],
            key=f"{TABLE}.app_name",
            fix='choose another app name, e.g. app_name = "my-app"',
        )
    if "datasites" in raw:
        values["datasites"] = parse_datasites(
            raw["datasites"], aggregator=values.get("aggregator"), source=source
        )
        sources["datasites"] = source
    if "keys" in raw:
        values["keys"] = parse_pins(raw["keys"], source=source)
        sources["keys"] = source
    return ProjectConfig(
        **values,
        transport_options=tables,
        path=path,
        project_name=project_name,
        configured=True,
        sources=sources,
    )


def parse_datasites(
    value: object, *, aggregator: str | None, source: str | None
) -> tuple[str, ...]:
    """A list of distinct emails, none of them the aggregator's."""
    label = f"{TABLE}.datasites"
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(
            f"must be an array of emails, not {type_name(value)}",
            source=source,
            key=label,
            fix='write datasites = ["alice@hospital-a.org", "bob@hospital-b.org"]',
        )
    seen: dict[str, tuple[int, str]] = {}
    for index, item in enumerate(value):
        item_label = f"{label}[{index}]"
        try:
            email = validate_email(item)
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                source=source,
                key=item_label,
                fix='write each datasite\'s plain email, e.g. "alice@hospital-a.org"',
            ) from None
        folded = email.lower()
        if folded in seen:
            first, spelled = seen[folded]
            same = (
                ""
                if spelled == email
                else f" as {spelled}: emails differing only in case are one address"
            )
            raise ConfigError(
                f"{email} is listed twice (also at index {first}{same})",
                source=source,
                key=item_label,
                fix="list each datasite once",
            )
        if aggregator is not None and folded == aggregator.lower():
            same = (
                ""
                if aggregator == email
                else f" ({aggregator}: emails differing only in case are one address)"
            )
            raise ConfigError(
                f"{email} is the aggregator{same} and cannot also be a datasite",
                source=source,
                key=item_label,
                fix="remove it from datasites, or choose another aggregator",
            )
        seen[folded] = (index, email)
    return tuple(spelled for _, spelled in seen.values())


def parse_pins(value: object, *, source: str | None) -> dict[str, str]:
    """``[tool.syftflwr.keys]``: ``"email" = "sha256:<64 hex>"`` lines."""
    label = f"{TABLE}.keys"
    fix = 'pin with `syftflwr keys pin`, or write "alice@org.org" = "sha256:<64 hex digits>"'
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"must be a table of pinned key fingerprints, not {type_name(value)}",
            source=source,
            key=label,
            fix=fix,
        )
    pins: dict[str, str] = {}
    for email, fp in value.items():
        try:
            validate_email(email)
        except ValueError as exc:
            raise ConfigError(str(exc), source=source, key=f"{label}.{email}", fix=fix) from None
        if not isinstance(fp, str) or not FINGERPRINT.match(fp):
            raise ConfigError(
                f"{fp!r} is not a key fingerprint",
                source=source,
                key=f"{label}.{email}",
                fix=fix,
            )
        pins[email] = fp
    return pins


def _parse_transport(value: object, *, source: str) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """``transport = "NAME"``, or the table form that also holds option tables::

    [tool.syftflwr.transport]
    name = "gdrive"                  # optional: pins the transport
    [tool.syftflwr.transport.gdrive]
    folder = "syftflwr"
    """
    label = f"{TABLE}.transport"
    if value is None:
        return None, {}
    if not isinstance(value, Mapping):
        return checked(KEYS["transport"], value, source=source, key=label), {}
    name: str | None = None
    tables: dict[str, dict[str, Any]] = {}
    for key, item in value.items():
        if key == "name":
            name = checked(KEYS["transport"], item, source=source, key=f"{label}.name")
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(
                f"expected the option table of transport {key!r}, got {type_name(item)}",
                source=source,
                key=f"{label}.{key}",
                fix=f'pin the transport with name = "..." and put options under '
                f"[{label}.<transport>]",
            )
        checked(KEYS["transport"], key, source=source, key=f"{label}.{key}")
        tables[key] = dict(item)
    return name, tables


_UNSAFE_RUNS = re.compile(r"[^A-Za-z0-9]+")


def default_app_name(project_name: str | None) -> str | None:
    """``[project].name`` as a safe identifier: lower case, runs of other characters
    collapsed to ``-`` (``My_Fed.App`` -> ``my-fed-app``), at most 64 characters."""
    if not project_name:
        return None
    name = _UNSAFE_RUNS.sub("-", project_name).strip("-").lower()[:64].rstrip("-")
    return name or None
