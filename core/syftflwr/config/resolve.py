"""Resolution: the project file, the participant's settings, the environment and the
command line merged into the :class:`TransportContext` a transport is built with.

Precedence, for the transport name, every overridable scalar and every option:
command line > environment > file (participant table over project table for options)
> auto-detection / defaults. ``app_name``, ``aggregator`` and ``datasites`` are file-only:
every participant must agree on them, so a per-person override would silently split
the federation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syftflwr import roles
from syftflwr.config._sources import COMMAND_LINE, env_source, env_value
from syftflwr.config._values import parse_path
from syftflwr.config.options import checked, cli_layer, env_layer, file_layer, validate_options
from syftflwr.config.participant import (
    ParticipantSettings,
    default_state_dir,
    load_participant,
    participant_state_dir,
)
from syftflwr.config.project import (
    KEYS,
    OVERRIDABLE,
    TABLE,
    ProjectConfig,
    load_project,
    not_a_participant,
)
from syftflwr.errors import ConfigError
from syftflwr.info import OptionSpec, TransportContext, TransportInfo
from syftflwr.names import validate_email

if TYPE_CHECKING:
    from syftflwr.registry import Transport

EMAIL_ENV = "SYFTFLWR_EMAIL"
STATE_DIR_ENV = "SYFTFLWR_STATE_DIR"
AUTO_DETECT = "auto-detect"

CLI_KEYS = frozenset({*(k.name for k in OVERRIDABLE), "email", "state_dir", "options"})
"""What the ``cli`` mapping of :func:`build_context` may hold (None values = not given);
``options`` maps option names of the selected transport to values."""


def _check_cli(cli: Mapping[str, Any]) -> None:
    unknown = set(cli) - CLI_KEYS
    if unknown:  # a programming error in a command, not a user error
        raise TypeError(f"unknown cli keys {sorted(unknown)}; expected some of {sorted(CLI_KEYS)}")


def _override(
    spec: OptionSpec, *, env: Mapping[str, str], cli: Mapping[str, Any]
) -> tuple[Any, str] | None:
    """The command line's or the environment's value for ``spec``, parsed, with its source."""
    if cli.get(spec.name) is not None:
        key = spec.flag or spec.name
        return checked(spec, cli[spec.name], source=COMMAND_LINE, key=key, text=True), COMMAND_LINE
    raw = env_value(env, spec.env) if spec.env else None
    if raw is not None and spec.env:
        source = env_source(spec.env)
        return checked(spec, raw, source=source, key=None, text=True, var=spec.env), source
    return None


def apply_overrides(
    project: ProjectConfig, *, env: Mapping[str, str] = os.environ, cli: Mapping[str, Any] = {}
) -> ProjectConfig:
    """``project`` with environment and command-line values of the overridable keys
    (transport, profile, encryption, max_message_size, clock_skew, round_timeout,
    message_ttl) applied; ``sources`` records where each value came from."""
    _check_cli(cli)
    changes: dict[str, Any] = {}
    sources = dict(project.sources)
    for spec in OVERRIDABLE:
        found = _override(spec, env=env, cli=cli)
        if found is not None:
            changes[spec.name], sources[spec.name] = found
    return dataclasses.replace(project, **changes, sources=sources)


def selected_transport_name(
    project: ProjectConfig | None,
    *,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] = {},
) -> tuple[str | None, str]:
    """The transport to use and where that came from; ``(None, "auto-detect")`` when
    nobody named one."""
    found = _override(KEYS["transport"], env=env, cli=cli)
    if found is not None:
        return found
    if project is not None and project.transport is not None:
        where = project.sources.get("transport", "project config")
        return project.transport, f"{where}: {TABLE}.transport"
    return None, AUTO_DETECT


def resolve_email(
    participant: ParticipantSettings | None,
    *,
    email: str | None = None,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] = {},
) -> tuple[str | None, str]:
    """Who this participant is: explicit > command line > ``SYFTFLWR_EMAIL`` > settings."""
    candidates: list[tuple[object, str, str | None]] = [
        (email, COMMAND_LINE, "--as"),
        (cli.get("email"), COMMAND_LINE, "--as"),
        (env_value(env, EMAIL_ENV), env_source(EMAIL_ENV), None),
    ]
    if participant is not None:
        candidates.append((participant.email, participant.source, "email"))
    for value, source, key in candidates:
        if value is None:
            continue
        try:
            return validate_email(value), source
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                source=source,
                key=key,
                fix="give a plain email such as alice@hospital-a.org",
            ) from None
    return None, "unset"


def resolve_state_dir(
    participant: ParticipantSettings | None,
    *,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] = {},
) -> tuple[Path, str]:
    """The base state directory: command line > ``SYFTFLWR_STATE_DIR`` > settings >
    ``$SYFTFLWR_HOME/state`` > the per-user state directory."""
    for value, source in (
        (cli.get("state_dir"), COMMAND_LINE),
        (env_value(env, STATE_DIR_ENV), env_source(STATE_DIR_ENV)),
    ):
        if value is not None:
            try:
                return parse_path(value), source
            except ValueError as exc:
                raise ConfigError(str(exc), source=source, fix="give a directory path") from None
    if participant is not None and participant.state_dir is not None:
        return participant.state_dir, participant.source
    if participant is not None:
        return participant.default_state_dir, "default"
    return default_state_dir(env), "default"


def resolve_options(
    info: TransportInfo,
    project: ProjectConfig | None,
    participant: ParticipantSettings | None,
    *,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] = {},
) -> dict[str, Any]:
    """``info``'s options: command line > environment > participant table > project
    table > declared default, each layer validated against ``info.options``."""
    layers = []
    if project is not None:
        layers.append(
            file_layer(
                project.transport_options.get(info.name),
                source=str(project.path) if project.path else "project config",
                key_prefix=f"{TABLE}.transport.{info.name}.",
                base=project.root,
            )
        )
    if participant is not None:
        layers.append(
            file_layer(
                participant.transport_options.get(info.name),
                source=participant.source,
                key_prefix=f"transport.{info.name}.",
                base=participant.path.parent,
            )
        )
    layers += [env_layer(info, env), cli_layer(cli)]
    return validate_options(info, layers)


def build_context(
    *,
    transport: str,
    info: TransportInfo,
    project: ProjectConfig | None,
    participant: ParticipantSettings | None,
    email: str | None,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] = {},
) -> TransportContext:
    """Everything ``transport`` is built with, resolved and validated.

    ``email`` (e.g. ``--as``) wins over ``cli["email"]``, ``SYFTFLWR_EMAIL`` and the
    settings file; when none is set the context has no email (fine for detection;
    role factories refuse it). With an email, the participant's private state directory
    is created (0700) and the email must belong to the federation when one is configured.

    :raises ConfigError: any invalid value, naming its source, key and fix.
    """
    _check_cli(cli)
    if transport != info.name:
        raise ValueError(f"transport {transport!r} does not match its info ({info.name!r})")
    effective = apply_overrides(project or ProjectConfig(), env=env, cli=cli)
    if effective.profile not in info.capabilities.profiles:
        raise ConfigError(
            f"transport {transport!r} does not speak the {effective.profile!r} wire profile "
            f"(it speaks {', '.join(info.capabilities.profiles)})",
            source=effective.sources.get("profile"),
            key=f"{TABLE}.profile",
            fix="choose a profile the transport speaks, or a transport that speaks this one",
        )
    who, _ = resolve_email(participant, email=email, env=env, cli=cli)
    if who is not None:
        who = effective.participant_email(who)
    if who is not None and effective.aggregator and who not in effective.participants:
        raise not_a_participant(effective, who)
    state_dir: Path | None = None
    if who is not None:
        base, _ = resolve_state_dir(participant, env=env, cli=cli)
        state_dir = participant_state_dir(base, effective.app_name, who)
    options = resolve_options(info, project, participant, env=env, cli=cli.get("options") or {})
    return TransportContext(
        transport=transport,
        app_name=effective.app_name,
        email=who,
        aggregator=effective.aggregator,
        datasites=effective.datasites,
        options=options,
        state_dir=state_dir,
        profile=effective.profile,
        max_message_size=effective.max_message_size,
        clock_skew=effective.clock_skew,
        encryption=effective.encryption_enabled,
        env=dict(env),
    )


def check_identity(context: TransportContext, reported_email: str) -> None:
    """Refuse to run when the transport is signed in as someone else.

    Emails compare case-insensitively (providers differ in how they case them).

    :raises IdentityMismatchError: the transport reports another (or an invalid) identity.
    :raises ConfigError: the participant's email is not configured, so nothing can be
        compared (adopting the transport's identity would be a guess).
    """
    expected = context.email
    if not expected:
        raise ConfigError(
            f"this participant's email is not configured (the {context.transport!r} "
            f"transport reports {reported_email!r})",
            fix=f'pass --as EMAIL, set {EMAIL_ENV}, or write email = "..." in your '
            "settings file (docs/configuration.md)",
        )
    roles.check_identity(expected, reported_email, context.transport)


def detection_context_for(
    project: str | Path | None, *, env: Mapping[str, str] = os.environ
) -> Callable[[Transport], TransportContext]:
    """The registry's detection seam: detection sees the project's and the participant's
    option tables and identity. Loading errors surface here (before any detection);
    a transport whose options do not validate reports "cannot detect: ..."."""
    loaded = load_project(project) if project is not None else None
    participant = load_participant(env)

    def context_for(transport: Transport) -> TransportContext:
        return build_context(
            transport=transport.name,
            info=transport.info,
            project=loaded,
            participant=participant,
            email=None,
            env=env,
        )

    return context_for
