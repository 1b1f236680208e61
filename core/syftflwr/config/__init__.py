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

from syftflwr.config.options import coerce_option, option_env_name, validate_options
from syftflwr.config.participant import (
    HOME_ENV,
    SETTINGS_ENV,
    ParticipantSettings,
    config_dir,
    default_state_dir,
    load_participant,
    participant_state_dir,
    settings_path,
)
from syftflwr.config.project import (
    DEFAULT_APP_NAME,
    DEFAULT_CLOCK_SKEW,
    DEFAULT_ENCRYPTION,
    DEFAULT_MESSAGE_TTL,
    DEFAULT_ROUND_TIMEOUT,
    PROFILES,
    ProjectConfig,
    default_app_name,
    find_pyproject,
    load_project,
    parse_project,
)
from syftflwr.config.resolve import (
    AUTO_DETECT,
    EMAIL_ENV,
    STATE_DIR_ENV,
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
    "AUTO_DETECT",
    "DEFAULT_APP_NAME",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_ENCRYPTION",
    "DEFAULT_MESSAGE_TTL",
    "DEFAULT_ROUND_TIMEOUT",
    "EMAIL_ENV",
    "HOME_ENV",
    "PROFILES",
    "SETTINGS_ENV",
    "STATE_DIR_ENV",
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
    "parse_project",
    "participant_state_dir",
    "resolve_email",
    "resolve_options",
    "resolve_state_dir",
    "selected_transport_name",
    "settings_path",
    "validate_options",
    "write_key_pins",
    "write_project_config",
]
