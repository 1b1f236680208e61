"""Resolution: precedence, the TransportContext, identity checks, and config driving the
real registry and the real ``memory`` transport."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from _config_helpers import write
from syftflwr.config import (
    ProjectConfig,
    apply_overrides,
    build_context,
    check_identity,
    detection_context_for,
    load_participant,
    load_project,
    resolve_email,
    resolve_state_dir,
    selected_transport_name,
    write_project_config,
)
from syftflwr.envelope import Request
from syftflwr.errors import ConfigError, IdentityMismatchError
from syftflwr.info import TransportContext, TransportInfo
from syftflwr.registry import Registry, get_registry

AGG, DS1, DS2 = "ds@uni.org", "alice@hospital-a.org", "bob@hospital-b.org"
PROJECT = f"""[project]
name = "quickstart"

[tool.syftflwr]
aggregator = "{AGG}"
datasites = ["{DS1}", "{DS2}"]
transport = "memory"
max_message_size = "1MiB"
round_timeout = 60
"""
UNPINNED = PROJECT.replace('transport = "memory"\n', "")


@pytest.fixture
def project(tmp_path: Path) -> ProjectConfig:
    write(tmp_path / "app" / "pyproject.toml", PROJECT)
    return load_project(tmp_path / "app")


def memory_info() -> TransportInfo:
    return get_registry().load("memory").info


# --------------------------------------------------------------------------- transport name
def test_transport_name_precedence(project: ProjectConfig) -> None:
    assert selected_transport_name(project, env={}, cli={}) == (
        "memory",
        f"{project.path}: tool.syftflwr.transport",
    )
    env = {"SYFTFLWR_TRANSPORT": "gdrive"}
    assert selected_transport_name(project, env=env, cli={}) == (
        "gdrive",
        "environment variable SYFTFLWR_TRANSPORT",
    )
    assert selected_transport_name(project, env=env, cli={"transport": "fsspec-local"}) == (
        "fsspec-local",
        "command line",
    )
    assert selected_transport_name(project, env=env, cli={"transport": None})[0] == "gdrive"


def test_no_transport_anywhere_means_auto_detect() -> None:
    assert selected_transport_name(None, env={"SYFTFLWR_TRANSPORT": ""}, cli={}) == (
        None,
        "auto-detect",
    )
    assert selected_transport_name(ProjectConfig(), env={}, cli={}) == (None, "auto-detect")


def test_bad_transport_name_from_env_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        selected_transport_name(None, env={"SYFTFLWR_TRANSPORT": "../evil"}, cli={})
    assert info.value.source == "environment variable SYFTFLWR_TRANSPORT"


# --------------------------------------------------------------------------- scalars
def test_overrides_follow_cli_over_env_over_file(project: ProjectConfig) -> None:
    env = {
        "SYFTFLWR_PROFILE": "syft-flwr-0.5",
        "SYFTFLWR_ENCRYPTION": "yes",
        "SYFTFLWR_MAX_MESSAGE_SIZE": "2MiB",
        "SYFTFLWR_CLOCK_SKEW": "5",
        "SYFTFLWR_ROUND_TIMEOUT": "10m",
        "SYFTFLWR_MESSAGE_TTL": "1h",
    }
    effective = apply_overrides(project, env=env, cli={"round_timeout": 30, "encryption": False})
    assert effective.profile == "syft-flwr-0.5"
    assert effective.encryption is False
    assert effective.max_message_size == 2 * 2**20
    assert effective.clock_skew == 5
    assert effective.round_timeout == 30
    assert effective.message_ttl == 3600
    assert effective.source_of("round_timeout") == "command line"
    assert (
        effective.source_of("max_message_size") == "environment variable SYFTFLWR_MAX_MESSAGE_SIZE"
    )
    # file values stay when nothing overrides them; the input is not modified
    assert apply_overrides(project, env={}, cli={}) == project
    assert project.round_timeout == 60


def test_shared_identity_keys_cannot_be_overridden(project: ProjectConfig) -> None:
    with pytest.raises(TypeError, match="unknown cli keys"):
        apply_overrides(project, env={}, cli={"aggregator": "x@y.org"})
    # and no environment variable exists for them
    env = {"SYFTFLWR_AGGREGATOR": "x@y.org", "SYFTFLWR_DATASITES": "y@z.org"}
    assert apply_overrides(project, env=env, cli={}).aggregator == AGG


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("SYFTFLWR_MAX_MESSAGE_SIZE", "3GiB", "protobuf"),
        ("SYFTFLWR_ENCRYPTION", "sometimes", "1/0, true/false"),
        ("SYFTFLWR_PROFILE", "turbo", "unknown profile"),
        ("SYFTFLWR_ROUND_TIMEOUT", "-1", "seconds"),
    ],
)
def test_bad_env_scalars_name_the_variable(
    project: ProjectConfig, var: str, value: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(project, env={var: value}, cli={})
    assert info.value.source == f"environment variable {var}"
    assert fragment in info.value.problem
    assert info.value.fix


# --------------------------------------------------------------------------- participant
def test_email_precedence(tmp_path: Path) -> None:
    write(tmp_path / "me" / "settings.toml", f'email = "{DS2}"\n')
    participant = load_participant({"SYFTFLWR_HOME": str(tmp_path / "me")})
    env = {"SYFTFLWR_EMAIL": DS1}
    assert resolve_email(participant, env={}, cli={}) == (DS2, participant.source)
    assert resolve_email(participant, env=env, cli={}) == (
        DS1,
        "environment variable SYFTFLWR_EMAIL",
    )
    assert resolve_email(participant, env=env, cli={"email": AGG}) == (AGG, "command line")
    assert resolve_email(participant, email=DS2, env=env, cli={"email": AGG})[0] == DS2
    assert resolve_email(None, env={}, cli={}) == (None, "unset")
    with pytest.raises(ConfigError) as info:
        resolve_email(None, env={"SYFTFLWR_EMAIL": "../root@x.org"}, cli={})
    assert info.value.source == "environment variable SYFTFLWR_EMAIL"


def test_state_dir_precedence(tmp_path: Path) -> None:
    home = tmp_path / "me"
    write(home / "settings.toml", 'state_dir = "from-file"\n')
    participant = load_participant({"SYFTFLWR_HOME": str(home)})
    assert resolve_state_dir(participant, env={}, cli={})[0] == home / "from-file"
    env = {"SYFTFLWR_STATE_DIR": str(tmp_path / "env")}
    assert resolve_state_dir(participant, env=env, cli={})[0] == tmp_path / "env"
    cli = {"state_dir": str(tmp_path / "cli")}
    assert resolve_state_dir(participant, env=env, cli=cli)[0] == tmp_path / "cli"
    empty = load_participant({"SYFTFLWR_HOME": str(tmp_path / "other")})
    assert resolve_state_dir(empty, env={}, cli={})[0] == tmp_path / "other" / "state"


# --------------------------------------------------------------------------- contexts
def test_build_context_resolves_everything(project: ProjectConfig, tmp_path: Path) -> None:
    home = tmp_path / "alice"
    write(home / "settings.toml", f'email = "{DS1}"\n\n[transport.memory]\nnamespace = "mine"\n')
    env = {"SYFTFLWR_HOME": str(home), "SYFTFLWR_CLOCK_SKEW": "2"}
    context = build_context(
        transport="memory",
        info=memory_info(),
        project=project,
        participant=load_participant(env),
        email=None,
        env=env,
    )
    assert context == TransportContext(
        transport="memory",
        app_name="quickstart",
        email=DS1,
        aggregator=AGG,
        datasites=(DS1, DS2),
        options={"namespace": "mine"},
        state_dir=home / "state" / "quickstart" / DS1,
        profile="native",
        max_message_size=2**20,
        clock_skew=2.0,
        encryption=True,
    )
    assert context.state_dir is not None
    assert stat.S_IMODE(context.state_dir.stat().st_mode) == 0o700


def test_build_context_options_from_the_command_line(project: ProjectConfig) -> None:
    context = build_context(
        transport="memory",
        info=memory_info(),
        project=project,
        participant=None,
        email=None,
        env={},
        cli={"options": {"namespace": "flag"}, "encryption": True},
    )
    assert context.options == {"namespace": "flag"}
    assert context.encryption is True
    assert context.email is None and context.state_dir is None  # detection-style context


def test_build_context_without_a_project(tmp_path: Path) -> None:
    context = build_context(
        transport="memory",
        info=memory_info(),
        project=None,
        participant=None,
        email="solo@x.org",
        env={"SYFTFLWR_STATE_DIR": str(tmp_path / "s")},
    )
    assert (context.app_name, context.email, context.aggregator) == ("syftflwr", "solo@x.org", None)
    assert context.state_dir == tmp_path / "s" / "syftflwr" / "solo@x.org"


def test_build_context_refuses_a_stranger(project: ProjectConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither the aggregator"):
        build_context(
            transport="memory",
            info=memory_info(),
            project=project,
            participant=None,
            email="mallory@evil.org",
            env={"SYFTFLWR_STATE_DIR": str(tmp_path / "s")},
        )
    assert not (tmp_path / "s").exists()


def test_build_context_refuses_a_profile_the_transport_does_not_speak(
    project: ProjectConfig,
) -> None:
    with pytest.raises(ConfigError, match=r"does not speak the 'syft-flwr-0\.5'") as info:
        build_context(
            transport="memory",
            info=memory_info(),
            project=project,
            participant=None,
            email=None,
            env={"SYFTFLWR_PROFILE": "syft-flwr-0.5"},
        )
    assert info.value.source == "environment variable SYFTFLWR_PROFILE"


def test_build_context_validates_the_transport_table(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        UNPINNED
        + '\n[tool.syftflwr.transport]\nname = "memory"\n'
        + "\n[tool.syftflwr.transport.memory]\nnamespce = 1\n",
    )
    with pytest.raises(ConfigError) as info:
        build_context(
            transport="memory",
            info=memory_info(),
            project=load_project(tmp_path),
            participant=None,
            email=None,
            env={},
        )
    assert info.value.key == "tool.syftflwr.transport.memory.namespce"
    assert "did you mean 'namespace'" in (info.value.fix or "")


# --------------------------------------------------------------------------- identity
def context_as(email: str | None) -> TransportContext:
    return TransportContext(transport="gdrive", app_name="app", email=email)


def test_matching_identity_passes_case_insensitively() -> None:
    check_identity(context_as(DS1), DS1)
    check_identity(context_as(DS1), DS1.upper())


def test_identity_mismatch_is_an_error_not_a_guess() -> None:
    with pytest.raises(IdentityMismatchError) as info:
        check_identity(context_as(DS1), DS2)
    assert DS1 in str(info.value) and DS2 in str(info.value)
    assert info.value.fix is not None and "sign the gdrive transport in as" in info.value.fix


def test_invalid_reported_identity_is_a_mismatch() -> None:
    with pytest.raises(IdentityMismatchError, match="invalid identity"):
        check_identity(context_as(DS1), "../root")


def test_no_configured_email_is_not_filled_from_the_transport() -> None:
    with pytest.raises(ConfigError, match="not configured") as info:
        check_identity(context_as(None), DS1)
    assert not isinstance(info.value, IdentityMismatchError)
    assert "--as" in (info.value.fix or "")


# --------------------------------------------------------------------------- integration
def test_detection_sees_the_project_tables(tmp_path: Path) -> None:
    """The registry's seam, with the real registry and the real memory transport."""
    write(
        tmp_path / "pyproject.toml",
        UNPINNED + '\n[tool.syftflwr.transport.memory]\nnamespace = "proj"\n',
    )
    seen: list[TransportContext] = []
    context_for = detection_context_for(tmp_path, env={})

    def recording(transport: Any) -> TransportContext:
        seen.append(context_for(transport))
        return seen[-1]

    registry = Registry(disabled=[])
    reports = registry.detect_all(recording, allow_in_process=True)
    memory = next(r for r in reports if r.name == "memory")
    assert memory.usable
    context = next(c for c in seen if c.transport == "memory")
    assert context.options == {"namespace": "proj"}
    assert context.app_name == "quickstart"


def test_detection_reports_a_bad_table_instead_of_crashing(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", UNPINNED + "\n[tool.syftflwr.transport.memory]\nx = 1\n")
    reports = Registry(disabled=[]).detect_all(detection_context_for(tmp_path, env={}))
    memory = next(r for r in reports if r.name == "memory")
    assert memory.usable is False
    assert "has no option 'x'" in (memory.reason or "")


def test_bootstrapped_project_carries_a_message_over_memory(
    tmp_path: Path, memory_namespace: str
) -> None:
    """bootstrap -> every participant's own settings -> contexts -> a real round trip."""
    app = write(tmp_path / "app" / "pyproject.toml", '[project]\nname = "Quick Start"\n').parent
    assert write_project_config(app, aggregator=AGG, datasites=[DS1], transport="memory")
    project = load_project(app)
    transport = get_registry().load(project.transport or "")
    contexts = {}
    for email in (AGG, DS1):
        home = tmp_path / email.split("@")[0]
        write(
            home / "settings.toml",
            f'email = "{email}"\n[transport.memory]\nnamespace = "{memory_namespace}"\n',
        )
        env = {"SYFTFLWR_HOME": str(home)}
        name, _ = selected_transport_name(project, env=env, cli={})
        assert name == "memory"
        contexts[email] = build_context(
            transport=name,
            info=transport.info,
            project=project,
            participant=load_participant(env),
            email=None,
            env=env,
        )
    agg_client = transport.make_client(contexts[AGG])
    ds_client = transport.make_client(contexts[DS1])
    for email, client in ((AGG, agg_client), (DS1, ds_client)):
        check_identity(contexts[email], client.email)
    rpc = transport.make_rpc(agg_client, contexts[AGG])
    events = transport.make_events(ds_client, contexts[DS1])
    events.on_request("messages", lambda request: bytes(request.body)[::-1])
    thread = threading.Thread(target=events.run_forever, daemon=True)
    thread.start()
    try:
        request = Request.new(
            sender=AGG, recipient=DS1, app="quick-start", endpoint="messages", body=b"abc", ttl=30
        )
        [response] = rpc.wait([rpc.send(request)], timeout=10)
        assert response.ok and bytes(response.body) == b"cba"
    finally:
        events.close()
        thread.join(5)
        rpc.close()
