"""The shared layer: ``[tool.syftflwr]`` read from a real pyproject.toml on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from _config_helpers import write
from syftflwr.config import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MESSAGE_TTL,
    DEFAULT_ROUND_TIMEOUT,
    ProjectConfig,
    default_app_name,
    load_project,
)
from syftflwr.errors import ConfigError
from syftflwr.info import DEFAULT_MAX_MESSAGE_SIZE, PROTOBUF_LIMIT

HEADER = """\
[project]
name = "quickstart"
version = "1.0.0"

[tool.flwr.app]
publisher = "me"

[tool.flwr.app.components]
serverapp = "quickstart.server_app:app"
clientapp = "quickstart.client_app:app"

[tool.flwr.app.config]
num-server-rounds = 3
"""

FEDERATION = """
[tool.syftflwr]
aggregator = "ds@uni.org"
datasites = ["a@hospital-a.org", "b@hospital-b.org"]
"""


def app(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    write(tmp_path / "app" / "pyproject.toml", header + body)
    return tmp_path / "app"


def error_of(tmp_path: Path, body: str, header: str = HEADER) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project(app(tmp_path, body, header))
    return info.value


def test_minimal_federation_gets_every_default(tmp_path: Path) -> None:
    project = load_project(app(tmp_path, FEDERATION))
    assert project.app_name == "quickstart"
    assert project.aggregator == "ds@uni.org"
    assert project.datasites == ("a@hospital-a.org", "b@hospital-b.org")
    assert project.participants == ("ds@uni.org", "a@hospital-a.org", "b@hospital-b.org")
    assert project.transport is None
    assert project.profile == "native"
    assert project.encryption is None
    assert project.encryption_enabled is True  # on unless a project opts out
    assert project.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert project.clock_skew == DEFAULT_CLOCK_SKEW
    assert project.round_timeout == DEFAULT_ROUND_TIMEOUT
    assert project.message_ttl == DEFAULT_MESSAGE_TTL
    assert project.configured
    assert project.root == (tmp_path / "app").absolute()
    assert project.path == (tmp_path / "app" / "pyproject.toml").absolute()
    assert project.source_of("aggregator") == str(project.path)
    assert project.source_of("round_timeout") == "default"
    assert project.role_of("ds@uni.org") == "aggregator"
    assert project.role_of("b@hospital-b.org") == "datasite"


def test_every_key_is_read(tmp_path: Path) -> None:
    project = load_project(
        app(
            tmp_path,
            FEDERATION
            + """app_name = "fed-1"
transport = "fsspec-local"
profile = "syft-flwr-0.5"
encryption = true
max_message_size = "512MiB"
clock_skew = "1m"
round_timeout = 120
message_ttl = "2h"
""",
        )
        / "pyproject.toml"
    )
    assert (project.app_name, project.transport, project.profile) == (
        "fed-1",
        "fsspec-local",
        "syft-flwr-0.5",
    )
    assert project.encryption is True
    assert project.max_message_size == 512 * 2**20
    assert (project.clock_skew, project.round_timeout, project.message_ttl) == (60, 120, 7200)


def test_transport_table_form_pins_and_keeps_options(tmp_path: Path) -> None:
    project = load_project(
        app(
            tmp_path,
            FEDERATION
            + """
[tool.syftflwr.transport]
name = "gdrive"

[tool.syftflwr.transport.gdrive]
folder = "fl-runs"

[tool.syftflwr.transport.fsspec-local]
root = "shared"
""",
        )
    )
    assert project.transport == "gdrive"
    assert project.transport_options == {
        "gdrive": {"folder": "fl-runs"},
        "fsspec-local": {"root": "shared"},
    }


def test_option_tables_without_a_name_leave_auto_detection_on(tmp_path: Path) -> None:
    project = load_project(
        app(tmp_path, FEDERATION + '\n[tool.syftflwr.transport.gdrive]\nfolder = "x"\n')
    )
    assert project.transport is None
    assert project.transport_options == {"gdrive": {"folder": "x"}}


def test_string_and_table_transport_together_explains_the_table_form(tmp_path: Path) -> None:
    error = error_of(
        tmp_path, FEDERATION + 'transport = "gdrive"\n[tool.syftflwr.transport.gdrive]\nx = 1\n'
    )
    assert "not valid TOML" in error.problem
    assert error.fix is not None and 'name = "NAME"' in error.fix
    assert error.source is not None and error.source.endswith("pyproject.toml")


def test_file_without_table_is_an_unconfigured_project(tmp_path: Path) -> None:
    project = load_project(app(tmp_path, ""))
    assert not project.configured
    assert project.app_name == "quickstart"
    assert project.aggregator is None
    with pytest.raises(ConfigError, match="no aggregator") as info:
        project.require_federation()
    assert info.value.fix is not None and "syftflwr bootstrap" in info.value.fix


def test_app_name_is_derived_from_the_project_name() -> None:
    assert default_app_name("My_Fed.App") == "my-fed-app"
    assert default_app_name("../../etc") == "etc"
    assert default_app_name("...") is None
    assert default_app_name("x" * 100) == "x" * 64


def test_no_app_name_and_no_project_name_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, FEDERATION, header="")
    assert error.key == "tool.syftflwr.app_name"
    assert "app_name" in (error.fix or "")


def test_unknown_key_suggests_the_nearest(tmp_path: Path) -> None:
    error = error_of(tmp_path, FEDERATION + 'agregator = "x@y.org"\n')
    assert error.key == "tool.syftflwr.agregator"
    assert error.fix is not None and "did you mean 'aggregator'" in error.fix
    assert error.source == str((tmp_path / "app" / "pyproject.toml").absolute())
    assert str(tmp_path) in str(error) and "fix:" in str(error)


def test_flower_tables_are_not_ours_to_reject(tmp_path: Path) -> None:
    project = load_project(app(tmp_path, FEDERATION + "\n[tool.flwr.federations]\ndefault = 'x'\n"))
    assert project.configured


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('datasites = "a@b.org"', "tool.syftflwr.datasites", "array"),
        ('datasites = ["a@b.org", "a@b.org"]', "tool.syftflwr.datasites[1]", "twice"),
        ('datasites = ["ds@uni.org"]', "tool.syftflwr.datasites[0]", "aggregator"),
        ('datasites = ["a@b.org", 7]', "tool.syftflwr.datasites[1]", "invalid email"),
        ("aggregator = 3", "tool.syftflwr.aggregator", "expected a string"),
        ('profile = "fast"', "tool.syftflwr.profile", "unknown profile"),
        ('encryption = "maybe"', "tool.syftflwr.encryption", "true or false"),
        ('max_message_size = "lots"', "tool.syftflwr.max_message_size", "size in bytes"),
        ('max_message_size = "2GiB"', "tool.syftflwr.max_message_size", "protobuf"),
        ("max_message_size = 0", "tool.syftflwr.max_message_size", "positive"),
        ("clock_skew = -1", "tool.syftflwr.clock_skew", ">= 0"),
        ("round_timeout = 0", "tool.syftflwr.round_timeout", "> 0"),
        ('message_ttl = "forever"', "tool.syftflwr.message_ttl", "seconds"),
        ('transport = "../x"', "tool.syftflwr.transport", "transport name"),
        ("transport = 5", "tool.syftflwr.transport", "expected a string"),
        ('[tool.syftflwr.transport]\nname = "a b"', "tool.syftflwr.transport.name", "transport"),
        ("[tool.syftflwr.transport]\ngdrive = 1", "tool.syftflwr.transport.gdrive", "table"),
    ],
)
def test_invalid_values_name_key_and_fix(
    tmp_path: Path, body: str, key: str, fragment: str
) -> None:
    base = '[tool.syftflwr]\naggregator = "ds@uni.org"\n'
    if body.startswith(("aggregator", "[")):
        base = "[tool.syftflwr]\n"
        if body.startswith("["):
            base += 'aggregator = "ds@uni.org"\n'
    error = error_of(tmp_path, "\n" + base + body + "\n")
    assert error.key == key
    assert fragment in error.problem
    assert error.fix


def test_max_message_size_up_to_protobuf_limit(tmp_path: Path) -> None:
    project = load_project(app(tmp_path, FEDERATION + f"max_message_size = {PROTOBUF_LIMIT}\n"))
    assert project.max_message_size == PROTOBUF_LIMIT


# Path traversal: nothing a config holds may become a path outside its mailbox.
TRAVERSAL_EMAILS = [
    "../x@y.org",
    "a/b@c.org",
    "..",
    "x\x00@y.org",
    "/etc/passwd",
    "/abs@y.org",
    "C:\\x@y.org",
    "a\\b@c.org",
    ".hidden@y.org",
    "x@../y.org",
    "x@y.org/..",
    "a..b@y.org",
    "",
]


@pytest.mark.parametrize("email", TRAVERSAL_EMAILS)
def test_path_shaped_aggregator_is_rejected(tmp_path: Path, email: str) -> None:
    text = email.replace("\\", "\\\\").replace("\x00", "\\u0000")
    error = error_of(tmp_path, f'\n[tool.syftflwr]\naggregator = "{text}"\n')
    assert error.key == "tool.syftflwr.aggregator"
    assert "invalid email" in error.problem


@pytest.mark.parametrize("email", TRAVERSAL_EMAILS)
def test_path_shaped_datasite_is_rejected(tmp_path: Path, email: str) -> None:
    text = email.replace("\\", "\\\\").replace("\x00", "\\u0000")
    error = error_of(tmp_path, FEDERATION.replace('"b@hospital-b.org"', f'"{text}"'))
    assert error.key == "tool.syftflwr.datasites[1]"


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".hidden", "x\x00", "/abs", "C:\\x", "a\\b", "", "x" * 65]
)
def test_path_shaped_app_name_is_rejected(tmp_path: Path, name: str) -> None:
    text = name.replace("\\", "\\\\").replace("\x00", "\\u0000")
    error = error_of(tmp_path, FEDERATION + f'app_name = "{text}"\n')
    assert error.key == "tool.syftflwr.app_name"


GENERATED = "ds@uni.org_quickstart_1796570782"  # syft-flwr 0.5 bootstrap's app_name


def test_syftflwr05_bootstrap_app_name_loads_under_its_profile(tmp_path: Path) -> None:
    body = FEDERATION + f'app_name = "{GENERATED}"\nprofile = "syft-flwr-0.5"\n'
    assert load_project(app(tmp_path, body)).app_name == GENERATED


def test_syftflwr05_bootstrap_app_name_without_its_profile_says_which(
    tmp_path: Path,
) -> None:
    error = error_of(tmp_path, FEDERATION + f'app_name = "{GENERATED}"\n')
    assert error.key == "tool.syftflwr.app_name"
    assert "syft-flwr 0.5 bootstrap's generated form" in str(error)
    assert 'profile = "syft-flwr-0.5"' in (error.fix or "")


def test_the_profile_from_the_environment_decides_too(tmp_path: Path) -> None:
    from syftflwr.config import apply_overrides

    body = FEDERATION + f'app_name = "{GENERATED}"\nprofile = "syft-flwr-0.5"\n'
    project = load_project(app(tmp_path, body))
    with pytest.raises(ConfigError, match="generated form") as info:
        apply_overrides(project, env={"SYFTFLWR_PROFILE": "native"})
    assert info.value.key == "tool.syftflwr.app_name"


def test_stranger_is_not_a_participant() -> None:
    project = ProjectConfig(aggregator="ds@uni.org", datasites=("a@b.org",))
    with pytest.raises(ConfigError, match="neither the aggregator"):
        project.role_of("mallory@evil.org")


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing-dir", "no pyproject.toml"),
        ("missing-file", "no such file"),
        ("bad", "not valid TOML"),
    ],
)
def test_unreadable_projects(tmp_path: Path, setup: str, fragment: str) -> None:
    target: Path
    if setup == "missing-dir":
        target = tmp_path
    elif setup == "missing-file":
        target = tmp_path / "nope" / "pyproject.toml"
    else:
        target = write(tmp_path / "pyproject.toml", "[tool.syftflwr\n")
    with pytest.raises(ConfigError, match=fragment) as info:
        load_project(target)
    assert info.value.fix


def test_tool_syftflwr_must_be_a_table(tmp_path: Path) -> None:
    error = error_of(tmp_path, "\n[tool]\nsyftflwr = 1\n")
    assert error.key == "tool.syftflwr"
