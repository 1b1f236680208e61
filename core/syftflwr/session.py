"""Connect one participant: config + registry + identity check -> ready-to-use roles.

This is the single path from "a project directory and an email" to transport roles that
the CLI (``run``, ``doctor``), the Python API and the simulators share, so the rules
(precedence, auto-detection, the in-process restriction, the identity check) are
applied in exactly one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from syftflwr.config import (
    ParticipantSettings,
    ProjectConfig,
    apply_overrides,
    build_context,
    check_identity,
    detection_context_for,
    load_participant,
    load_project,
    participant_state_dir,
    resolve_email,
    resolve_state_dir,
    selected_transport_name,
)
from syftflwr.crypto.admin import LocalKeys
from syftflwr.crypto.directory import key_directory_of
from syftflwr.crypto.keyring import DEFAULT_KEY_WAIT, Keyring
from syftflwr.crypto.roles import SealedEvents, SealedRPC
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.errors import ConfigError, PluginError, TransportUnavailableError
from syftflwr.info import Capabilities, TransportContext
from syftflwr.names import JOBS_APP
from syftflwr.registry import Registry, Transport, get_registry
from syftflwr.roles import BaseEvents, ClientRole, EventsRole, RPCRole, effective_capabilities


@dataclass
class Participant:
    """A participant of a federation, connected through its selected transport.

    Roles are built on demand and closed with the participant (use it as a context
    manager). ``selected_by`` says why this transport was chosen.
    """

    project: ProjectConfig
    transport: Transport
    context: TransportContext
    client: ClientRole
    selected_by: str
    keyring: Keyring | None = None
    """Set when core envelope encryption applies: roles are then sealed."""
    _roles: list[RPCRole | EventsRole] = field(default_factory=list, repr=False)

    @property
    def email(self) -> str:
        return self.context.require_email()

    @property
    def role(self) -> Literal["aggregator", "datasite"]:
        return self.project.role_of(self.email)

    def rpc(self) -> RPCRole:
        role: RPCRole = self.transport.make_rpc(self.client, self.context)
        if self.keyring is not None:
            role = SealedRPC(role, self.keyring)
        self._roles.append(role)
        return role

    def events(self, *, serves_self: bool = False) -> EventsRole:
        """A new events role (``serves_self``: also for requests to this participant from
        itself, see :attr:`BaseEvents.serves_self`)."""
        role: EventsRole = self.transport.make_events(self.client, self.context)
        if serves_self and isinstance(role, BaseEvents):
            role.serves_self = True
        if self.keyring is not None:
            role = SealedEvents(role, self.keyring)
        self._roles.append(role)
        return role

    @property
    def capabilities(self) -> Capabilities:
        """What this participant's transport does with its settings: the client role's
        effective capabilities (``TransportInfo.capabilities`` is only their default)."""
        return effective_capabilities(self.client, self.transport.info.capabilities)

    @property
    def encryption(self) -> str:
        """What is done to this participant's messages: ``"core"`` (sealed by
        syftflwr), the transport's name (it encrypts them itself: the client role says
        so), or ``""`` (plaintext)."""
        if self.keyring is not None:
            return "core"
        return self.transport.name if self.capabilities.native_encryption else ""

    def close(self) -> None:
        while self._roles:
            self._roles.pop().close()
        self.client.close()

    def __enter__(self) -> Participant:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def as_project(project: str | Path | ProjectConfig) -> ProjectConfig:
    return project if isinstance(project, ProjectConfig) else load_project(project)


def infer_identity(
    project: ProjectConfig,
    email: str | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    participant: ParticipantSettings | None = None,
) -> tuple[str | None, str]:
    """Who is asking, and how that was found, for commands that look at one participant
    (``doctor``, ``keys``):
    ``email``, else ``SYFTFLWR_EMAIL`` / the settings file, else the project's only
    participant that has a state directory on this machine (it ran here).

    :raises ConfigError: no email given and several participants ran here.
    """
    settings = participant if participant is not None else load_participant(env)
    who, source = resolve_email(settings, email=email, env=env)
    if who is not None or not project.configured:
        return who, source
    base, _ = resolve_state_dir(settings, env=env)
    here = [e for e in project.participants if (base / project.app_name / e).is_dir()]
    if len(here) > 1:
        raise ConfigError(
            f"who is this participant? no email given, and {len(here)} participants of "
            f"this project have state on this machine: {', '.join(here)}",
            fix=f"pass --as EMAIL, e.g. --as {here[0]}",
        )
    if not here:
        return None, source
    return here[0], f"the only participant of this project with state on this machine ({base})"


def select_transport(
    project: ProjectConfig | None,
    *,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    allow_in_process: bool = False,
    registry: Registry | None = None,
) -> tuple[Transport, str]:
    """The transport this participant uses and why: CLI > env > file > auto-detection."""
    registry = registry or get_registry()
    name, source = selected_transport_name(project, env=env, cli={"transport": transport})
    context_for = detection_context_for(project.path if project else None, env=env)
    try:
        chosen = registry.select(name, context_for, allow_in_process=allow_in_process)
    except PluginError as exc:  # a named transport is used or this fails: say who named it
        if name is not None and exc.args:
            exc.args = (f"{source} names the transport {name!r}: {exc.args[0]}", *exc.args[1:])
        raise
    return chosen, source


def connect(
    project: str | Path | ProjectConfig,
    *,
    email: str | None = None,
    transport: str | None = None,
    env: Mapping[str, str] = os.environ,
    cli: Mapping[str, Any] | None = None,
    participant: ParticipantSettings | None = None,
    allow_in_process: bool = False,
    registry: Registry | None = None,
) -> Participant:
    """Connect ``email`` (else ``SYFTFLWR_EMAIL`` / the settings file) to ``project``.

    :param transport: a transport name overriding env/file (like ``--transport``).
    :param cli: further command-line values (see :func:`syftflwr.config.build_context`).
    :param allow_in_process: permit in-process-only transports (``memory``): only when
        every participant lives in this process.
    :raises ConfigError: bad config, unknown participant, identity mismatch.
    :raises PluginError: the transport cannot be found, imported or used here.
    """
    loaded = as_project(project)
    cli_values = {**(cli or {}), "transport": transport or (cli or {}).get("transport")}
    loaded = apply_overrides(loaded, env=env, cli=cli_values)
    loaded.require_federation()
    settings = participant if participant is not None else load_participant(env)
    who, _ = resolve_email(settings, email=email, env=env, cli=cli_values)
    if who is None:
        raise ConfigError(
            "who is this participant? no email given",
            fix="pass --as EMAIL, set SYFTFLWR_EMAIL, or write "
            'email = "..." in your settings file (docs/configuration.md)',
        )
    who = loaded.participant_email(who)  # as the project spells it
    loaded.role_of(who)  # a stranger is refused before any transport is touched
    chosen, source = select_transport(
        loaded,
        transport=cli_values["transport"],
        env=env,
        allow_in_process=allow_in_process,
        registry=registry,
    )
    context = build_context(
        transport=chosen.name,
        info=chosen.info,
        project=loaded,
        participant=settings,
        email=who,
        env=env,
        cli=cli_values,
    )
    client = chosen.make_client(context)
    try:
        check_identity(context, client.email)
        keyring = open_keyring(loaded, chosen, context, client)
    except BaseException:
        client.close()
        raise
    return Participant(
        project=loaded,
        transport=chosen,
        context=context,
        client=client,
        selected_by=source,
        keyring=keyring,
    )


def open_keyring(
    project: ProjectConfig, transport: Transport, context: TransportContext, client: ClientRole
) -> Keyring | None:
    """The participant's keyring when core encryption applies (None when it is off, or the
    transport encrypts end to end itself), with its public key published to every peer.

    Fails closed: encryption on a profile or transport that cannot carry it is an error,
    never a silent downgrade to plaintext.
    """
    native = transport.info.capabilities.native_encryption  # it can, with other settings
    if (
        not context.encryption
        or effective_capabilities(client, transport.info.capabilities).native_encryption
    ):
        return None
    if context.profile != "native":
        own = (
            f"; or turn the {transport.name} transport's own encryption on (it is off in "
            "its options, see its docs page)"
            if native
            else ""
        )
        raise ConfigError(
            f"the {context.profile!r} wire profile cannot carry core encryption on the "
            f"{transport.name!r} transport, and encryption is on",
            source=project.source_of("encryption"),
            key="tool.syftflwr.encryption",
            fix="write encryption = false in [tool.syftflwr] to accept unencrypted messages "
            f"with this profile, or use the native profile{own}",
        )
    email = context.require_email()
    if context.state_dir is None:  # pragma: no cover - build_context always sets it
        raise ConfigError("encryption needs a state directory for the participant's keys")
    directory = key_directory_of(client, context.app_name)  # one slot per app
    if directory is None:
        raise TransportUnavailableError(
            f"the {transport.name!r} transport ({transport.entry.distribution} "
            f"{transport.entry.version}) cannot publish public keys: its client role "
            f"{type(client).__name__} does not implement syftflwr.plugin.PublishesKeys "
            "(a key_directory() method), so core encryption (on by default) cannot be "
            "used with it\n"
            "  fix: the plugin adds key_directory() to its client role, returning a "
            "syftflwr.plugin.KeyDirectory (on a mailbox storage: "
            "StorageKeyDirectory(storage, email); docs/reference/hooks.md#optional-"
            "capabilities); until then, encryption = false in [tool.syftflwr] runs it "
            "unencrypted"
        )
    mine = LocalKeys.at(project, email, context.state_dir)
    # the jobs endpoint publishes the participant's signing key beside its own key: its
    # state folder is the participant-level one, where that key lives
    signing = (
        SigningIdentity.in_state_dir(context.state_dir, email).public
        if context.app_name == JOBS_APP
        else None
    )
    keyring = Keyring(
        email,
        mine.store,
        mine.trust,
        directory,
        peers=project.correspondents(email),
        key_wait=min(DEFAULT_KEY_WAIT, project.round_timeout),
        signing=signing,
    )
    keyring.publish()
    return keyring


def local_keys(
    project: ProjectConfig,
    email: str | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    participant: ParticipantSettings | None = None,
) -> LocalKeys:
    """``email``'s keys in ``project`` (else SYFTFLWR_EMAIL / the settings file's, else
    the project's only participant with state on this machine).

    :raises ConfigError: no email, or not a participant of the project.
    """
    project.require_federation()
    settings = participant if participant is not None else load_participant(env)
    who, _ = infer_identity(project, email, env=env, participant=settings)
    if who is None:
        raise ConfigError(
            "whose keys? no email given",
            fix='pass --as EMAIL, set SYFTFLWR_EMAIL, or write email = "..." in your settings file',
        )
    who = project.participant_email(who)
    project.role_of(who)
    base, _ = resolve_state_dir(settings, env=env)
    return LocalKeys.at(project, who, participant_state_dir(base, project.app_name, who))
