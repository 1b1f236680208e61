"""The per-participant layer: who I am, where my state lives, my transport settings.

Kept out of the shared ``pyproject.toml`` because it differs per person (identity,
token paths, local roots) and may point at secrets. Located, in order, by
``SYFTFLWR_SETTINGS`` (the file), ``SYFTFLWR_HOME`` (a directory holding
``settings.toml`` and ``state/``; one per participant when several share a machine)
or the per-user config directory. Environment overrides of its *values*
(``SYFTFLWR_EMAIL``, ``SYFTFLWR_STATE_DIR``) are applied by :mod:`.resolve`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.config._sources import env_source, env_value, read_toml
from syftflwr.config._values import parse_path, parse_str, type_name, unknown_key_fix
from syftflwr.config.dirs import user_dir
from syftflwr.config.options import checked
from syftflwr.errors import ConfigError
from syftflwr.info import OptionSpec
from syftflwr.names import validate_app_name, validate_email, validate_identifier

SETTINGS_ENV = "SYFTFLWR_SETTINGS"
HOME_ENV = "SYFTFLWR_HOME"
SETTINGS_FILE = "settings.toml"


def _emails(value: object) -> tuple[str, ...]:
    """An array of distinct emails (lower case: emails differing only in case are one
    address)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"must be an array of emails, not {type_name(value)}")
    found: dict[str, None] = {}
    for item in value:
        found.setdefault(validate_email(parse_str(item)).lower(), None)
    return tuple(found)


def _signing_pins(value: object) -> dict[str, str]:
    """``"email" = "sha256:<64 hex>"`` lines: the signing keys pinned for peers."""
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table of signing-key fingerprints, not {type_name(value)}")
    pins: dict[str, str] = {}
    for email, fp in value.items():
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
            raise ValueError(f"{fp!r} (for {email}) is not a key fingerprint")
        pins[validate_email(email).lower()] = fp
    return pins


@dataclass(frozen=True)
class AutoApprove:
    """``[auto_approve]``: the jobs a data owner approves without reviewing them (each
    such decision is signed and recorded like a manual one, marked automatic)."""

    run_config_changes: bool = False
    """A new version from the same aggregator and signing key whose files equal the
    version approved last except ``[tool.flwr.app.config]`` values (and the version)."""
    rebuilds: bool = False
    """The same files as the version approved last, built by another flwr ("same files,
    other build"), from the same aggregator and signing key."""
    signers: tuple[str, ...] = ()
    """Signing-key fingerprints whose every job is approved."""

    @property
    def any(self) -> bool:
        return self.run_config_changes or self.rebuilds or bool(self.signers)


def _auto_approve(value: object) -> AutoApprove:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table, not {type_name(value)}")
    known = {"run_config_changes", "rebuilds", "signers"}
    for key in value:
        if key not in known:
            raise ValueError(f"unknown rule {key!r} (rules: {', '.join(sorted(known))})")
    flags = {k: value.get(k, False) for k in ("run_config_changes", "rebuilds")}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"{key} must be true or false, not {type_name(flag)}")
    signers = value.get("signers", [])
    if isinstance(signers, str) or not isinstance(signers, list | tuple):
        raise ValueError(f"signers must be an array of fingerprints, not {type_name(signers)}")
    for fp in signers:
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
            raise ValueError(f"signers: {fp!r} is not a key fingerprint")
    return AutoApprove(**flags, signers=tuple(dict.fromkeys(signers)))


@dataclass(frozen=True)
class DependencySources:
    """``[dependencies]``: where ``syftflwr serve`` gets the wheels an approved app's
    ``pylock.toml`` names (neither: pip's own configuration)."""

    wheelhouse: Path | None = None
    """A folder of wheels; then nothing is downloaded (``pip --no-index``)."""
    index_url: str | None = None
    """A package index (``pip --index-url``)."""


def _dependency_sources(value: object) -> DependencySources:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a table, not {type_name(value)}")
    for key in value:
        if key not in ("wheelhouse", "index_url"):
            raise ValueError(f"unknown key {key!r} (keys: index_url, wheelhouse)")
    wheelhouse, index_url = value.get("wheelhouse"), value.get("index_url")
    if wheelhouse is not None and index_url is not None:
        raise ValueError("give wheelhouse or index_url, not both")
    if wheelhouse is not None and not isinstance(wheelhouse, str):
        raise ValueError(f"wheelhouse must be a folder path, not {type_name(wheelhouse)}")
    if index_url is not None and not (
        isinstance(index_url, str) and index_url.startswith(("https://", "http://", "file://"))
    ):
        raise ValueError(f"index_url must be an http(s):// or file:// URL, not {index_url!r}")
    return DependencySources(
        wheelhouse=parse_path(wheelhouse) if wheelhouse is not None else None,
        index_url=index_url,
    )


_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
KEYS = {
    "email": OptionSpec(
        "email",
        "str",
        "Who this participant is (overridden by `SYFTFLWR_EMAIL` and `--as`).",
        parse=lambda v: validate_email(parse_str(v)),
        fix='write your plain email, e.g. email = "alice@hospital-a.org"',
    ),
    "state_dir": OptionSpec(
        "state_dir",
        "path",
        "Private directory for journals, tokens, keys and cursors (overridden by "
        "`SYFTFLWR_STATE_DIR`). Default: `$SYFTFLWR_HOME/state`, else the per-user state "
        "directory.",
        fix='write a directory path, e.g. state_dir = "~/.local/state/syftflwr"',
    ),
    "accept_jobs_from": OptionSpec(
        "accept_jobs_from",
        "str",
        "Who may send this participant jobs (apps to review, docs/jobs.md): an array of "
        "emails; `syftflwr jobs trust EMAIL` adds more. Jobs from anyone else are never "
        "read. Default: nobody.",
        parse=_emails,
        fix='write an array of emails, e.g. accept_jobs_from = ["ds@university.org"]',
    ),
    "signing_keys": OptionSpec(
        "signing_keys",
        "str",
        "Pinned signing keys of peers (docs/security.md#signing-and-decisions), a table "
        '`"email" = "sha256:<64 hex>"`: a job or decision signed by any other key of a '
        "pinned peer is refused. Unpinned peers: their first key is trusted, a changed one "
        "refused until `syftflwr keys trust-signer`.",
        parse=_signing_pins,
        fix='write [signing_keys] then "alice@org.org" = "sha256:<64 hex digits>" (the '
        "fingerprint `syftflwr keys show` prints for them)",
    ),
    "dependencies": OptionSpec(
        "dependencies",
        "str",
        "Where `syftflwr serve` gets the wheels an approved app's `pylock.toml` names "
        '(docs/jobs.md#dependencies), a table: `wheelhouse = "/path/to/wheels"` (nothing '
        'downloaded) or `index_url = "https://..."`. Default: pip\'s own configuration.',
        parse=_dependency_sources,
        fix='write [dependencies] then wheelhouse = "/path/to/wheels" or index_url = '
        '"https://pypi.org/simple"',
    ),
    "auto_approve": OptionSpec(
        "auto_approve",
        "str",
        "Jobs approved without review (docs/jobs.md#automatic-approval), a table of rules: "
        "`run_config_changes = true` (only `[tool.flwr.app.config]` changed since the "
        "version approved last, same aggregator and signing key), `rebuilds = true` (the "
        'same files built by another flwr), `signers = ["sha256:..."]` (every job signed '
        "by these keys). Each automatic decision is signed and recorded like a manual one. "
        "Default: none.",
        parse=_auto_approve,
        fix="write [auto_approve] then run_config_changes = true, rebuilds = true and/or "
        'signers = ["sha256:<64 hex digits>"]',
    ),
}
"""The settings file's scalar keys; ``[transport.<name>]`` tables are handled apart."""
VALID_KEYS = (*KEYS, "transport")


@dataclass(frozen=True)
class ParticipantSettings:
    """The participant's settings file after validation (file values only)."""

    path: Path
    """Where the settings are (or would be) read from."""
    exists: bool = False
    email: str | None = None
    state_dir: Path | None = None
    """``state_dir`` from the file (absolute); None: use :attr:`default_state_dir`."""
    default_state_dir: Path = field(default_factory=lambda: user_dir("state"))
    """``$SYFTFLWR_HOME/state`` or the per-user state directory."""
    transport_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Raw ``[transport.<name>]`` tables; they override the project's for this person."""
    accept_jobs_from: tuple[str, ...] = ()
    """Who may send this participant jobs (besides ``syftflwr jobs trust``)."""
    signing_keys: Mapping[str, str] = field(default_factory=dict)
    """email -> pinned signing-key fingerprint (:class:`syftflwr.crypto.signing.SignerTrust`)."""
    dependencies: DependencySources = field(default_factory=DependencySources)
    """Where serve gets an approved app's locked wheels (``[dependencies]``)."""
    auto_approve: AutoApprove = field(default_factory=AutoApprove)
    """The rules that approve a job without review (``[auto_approve]``)."""

    @property
    def source(self) -> str:
        return str(self.path)


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    """This participant's folder for settings and credentials (a transport's tokens
    too): ``SYFTFLWR_HOME``, else the per-user config directory (``~/.config/syftflwr``)."""
    home = env_value(env, HOME_ENV)
    return parse_path(home) if home else user_dir("config", env)


def settings_path(env: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """Where the settings file is, and whether the user named it explicitly
    (``SYFTFLWR_SETTINGS``: then a missing file is an error, not "no settings")."""
    explicit = env_value(env, SETTINGS_ENV)
    if explicit:
        return parse_path(explicit), True
    return config_dir(env) / SETTINGS_FILE, False


def default_state_dir(env: Mapping[str, str] = os.environ) -> Path:
    home = env_value(env, HOME_ENV)
    if home:
        return parse_path(home) / "state"
    return user_dir("state", env)


def load_participant(env: Mapping[str, str] = os.environ) -> ParticipantSettings:
    """Read this participant's settings file; a missing default file means "none yet".

    :raises ConfigError: a malformed file, an unknown key, an invalid email, or
        ``SYFTFLWR_SETTINGS`` naming a file that does not exist.
    """
    path, explicit = settings_path(env)
    state_default = default_state_dir(env)
    if not path.exists():
        if explicit:
            raise ConfigError(
                "the settings file does not exist",
                source=f"{env_source(SETTINGS_ENV)} ({path})",
                fix=f"create it, fix the path, or unset {SETTINGS_ENV}",
            )
        return ParticipantSettings(path=path, default_state_dir=state_default)
    document = read_toml(path, what="settings file")
    return parse_participant(document, path=path, default_state=state_default)


def parse_participant(
    document: Mapping[str, Any], *, path: Path, default_state: Path
) -> ParticipantSettings:
    source = str(path)
    for name in document:
        if name not in VALID_KEYS:
            raise ConfigError(
                f"unknown key {name!r}",
                source=source,
                key=name,
                fix=unknown_key_fix(name, VALID_KEYS),
            )
    values = {
        name: checked(spec, document[name], source=source, key=name, base=path.parent)
        for name, spec in KEYS.items()
        if name in document
    }
    tables: dict[str, dict[str, Any]] = {}
    raw_tables = document.get("transport", {})
    if not isinstance(raw_tables, Mapping):
        raise ConfigError(
            f"must be a table of transport tables, not {type_name(raw_tables)}",
            source=source,
            key="transport",
            fix='write [transport.<name>] tables, e.g. [transport.gdrive] then token = "..."',
        )
    for name, table in raw_tables.items():
        try:
            validate_identifier(name, "transport name")
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                source=source,
                key=f"transport.{name}",
                fix="name the table after an installed transport (see `syftflwr transports`)",
            ) from None
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"must be a table of options, not {type_name(table)}",
                source=source,
                key=f"transport.{name}",
                fix=f"write [transport.{name}] followed by option = value lines",
            )
        tables[name] = dict(table)
    return ParticipantSettings(
        path=path,
        exists=True,
        **values,
        default_state_dir=default_state,
        transport_options=tables,
    )


# --------------------------------------------------------------------------- state dir
MAX_STATE_FOLDER = 128
"""Longest app name used as it is for the app's state folder."""


def participant_state_dir(
    state_dir: str | Path, app_name: str, email: str, *, create: bool = True
) -> Path:
    """``state_dir / app_name / email``: one participant's private state in one app.

    Both names are validated again here (defence in depth: this is where they become
    paths), and the result must stay inside ``state_dir``. Created with mode 0700 so
    journals, tokens and keys are readable by their owner only. An app name longer than
    :data:`MAX_STATE_FOLDER` bytes (syft-flwr 0.5's generated names hold an email of up to
    254 characters) is shortened to its start and a digest of the whole, to fit the 255
    bytes a filesystem allows per folder name.

    :raises ConfigError: unsafe names, or a directory that cannot be created.
    """
    try:
        validate_app_name(app_name)
        validate_email(email)
    except ValueError as exc:
        raise ConfigError(
            str(exc), fix="use a plain email and an app name of letters, digits, _ . -"
        ) from None
    base = Path(state_dir).expanduser().absolute()
    folder = app_name
    if len(folder.encode()) > MAX_STATE_FOLDER:
        digest = hashlib.sha256(folder.encode()).hexdigest()[:16]
        folder = f"{folder[: MAX_STATE_FOLDER - 17]}-{digest}"
    path = base / folder / email
    if path.resolve().parent.parent != base.resolve():
        raise ConfigError(  # unreachable with validated names; a symlink can still do it
            f"state directory {path} resolves outside {base}",
            fix=f"remove the symbolic link inside {base}",
        )
    if create:
        _make_private(base, path)
    return path


def _make_private(base: Path, path: Path) -> None:
    try:
        base.mkdir(parents=True, exist_ok=True)
        for directory in (path.parent, path):
            try:  # participants starting at once race to create the app folder
                directory.mkdir(mode=0o700)
            except FileExistsError:
                continue
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        if stat.S_IMODE(path.stat().st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {path}: {exc.strerror or exc}",
            fix="choose a writable state_dir (settings file, SYFTFLWR_STATE_DIR or "
            "SYFTFLWR_HOME) or fix the permissions",
        ) from None


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
