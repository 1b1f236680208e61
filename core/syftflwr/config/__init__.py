"""Configuration: the project's shared ``[tool.syftflwr]`` and each participant's own
settings, merged with the environment and the command line.

    project = load_project("path/to/app")                # the shared layer
    participant = load_participant()                     # who I am, my state, my tokens
    name, source = selected_transport_name(project, env=os.environ, cli={})
    transport = get_registry().load(name)
    context = build_context(transport=name, info=transport.info, project=project,
                            participant=participant, email="alice@hospital-a.org")
    check_identity(context, transport.make_client(context).email)

Precedence: command line > environment > file > auto-detection. See
docs/configuration.md for every key.
"""

from __future__ import annotations

from syftflwr.config.options import coerce_option, option_env_name
from syftflwr.config.participant import (
    HOME_ENV,
    ParticipantSettings,
    config_dir,
    default_state_dir,
    load_participant,
    participant_state_dir,
    settings_path,
)
from syftflwr.config.project import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_ENCRYPTION,
    DEFAULT_MESSAGE_TTL,
    DEFAULT_ROUND_TIMEOUT,
    PROFILES,
    ProjectConfig,
    default_app_name,
    find_pyproject,
    load_project,
)
from syftflwr.config.resolve import (
    apply_overrides,
    build_context,
    check_identity,
    detection_context_for,
    resolve_email,
    resolve_options,
    resolve_state_dir,
    selected_transport_name,
)
from syftflwr.config.writer import write_key_pins, write_project_config

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_ENCRYPTION",
    "DEFAULT_MESSAGE_TTL",
    "DEFAULT_ROUND_TIMEOUT",
    "HOME_ENV",
    "PROFILES",
    "ParticipantSettings",
    "ProjectConfig",
    "apply_overrides",
    "build_context",
    "check_identity",
    "coerce_option",
    "config_dir",
    "default_app_name",
    "default_state_dir",
    "detection_context_for",
    "find_pyproject",
    "load_participant",
    "load_project",
    "option_env_name",
    "participant_state_dir",
    "resolve_email",
    "resolve_options",
    "resolve_state_dir",
    "selected_transport_name",
    "settings_path",
    "write_key_pins",
    "write_project_config",
]
