"""A transport's option table against its OptionSpecs, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _config_helpers import write
from syftflwr.config import (
    ParticipantSettings,
    ProjectConfig,
    load_participant,
    load_project,
    option_env_name,
    resolve_options,
)
from syftflwr.errors import ConfigError
from syftflwr.info import Capabilities, OptionSpec, TransportInfo

INFO = TransportInfo(
    name="fake-store",
    description="a transport declared for these tests (plain data, no I/O)",
    capabilities=Capabilities(notifies_arrivals=True),
    options=(
        OptionSpec("root", "path", "Where the mailboxes live.", required=True, participant=True),
        OptionSpec("poll", "float", "Seconds between polls.", default=0.5),
        OptionSpec("retries", "int", "Attempts per call.", default=3),
        OptionSpec("watch", "bool", "Use inotify.", default=True),
        OptionSpec("mode", "str", "How to publish.", default="rename", choices=("rename", "link")),
        OptionSpec("endpoint", "url", "Server URL.", env="FAKE_STORE_URL"),
        OptionSpec("extra", "mapping", "Passed to the backend.", default=None),
    ),
)


def layers(
    tmp_path: Path, project_table: str = "", settings_table: str = ""
) -> tuple[ProjectConfig, ParticipantSettings]:
    write(
        tmp_path / "app" / "pyproject.toml",
        '[project]\nname = "app"\n\n[tool.syftflwr]\naggregator = "ds@uni.org"\n'
        + (f"\n[tool.syftflwr.transport.fake-store]\n{project_table}\n" if project_table else ""),
    )
    write(
        tmp_path / "me" / "settings.toml",
        f"[transport.fake-store]\n{settings_table}\n" if settings_table else "",
    )
    return (
        load_project(tmp_path / "app"),
        load_participant({"SYFTFLWR_HOME": str(tmp_path / "me")}),
    )


def resolve(
    tmp_path: Path,
    project_table: str = "",
    settings_table: str = "",
    env: dict[str, str] | None = None,
    cli: dict[str, Any] | None = None,
) -> dict[str, Any]:
    project, participant = layers(tmp_path, project_table, settings_table)
    return resolve_options(INFO, project, participant, env=env or {}, cli=cli or {})


def test_env_names() -> None:
    assert option_env_name("fsspec-local", OptionSpec("root", "path", "")) == (
        "SYFTFLWR_FSSPEC_LOCAL_ROOT"
    )
    assert option_env_name("gdrive", OptionSpec("token-file", "path", "")) == (
        "SYFTFLWR_GDRIVE_TOKEN_FILE"
    )
    assert option_env_name("x", OptionSpec("a", "str", "", env="MY_VAR")) == "MY_VAR"


def test_defaults_are_filled_in(tmp_path: Path) -> None:
    options = resolve(tmp_path, project_table='root = "/data"')
    assert options == {
        "root": Path("/data"),
        "poll": 0.5,
        "retries": 3,
        "watch": True,
        "mode": "rename",
        "endpoint": None,
        "extra": None,
    }


def test_relative_paths_follow_the_file_that_set_them(tmp_path: Path) -> None:
    assert resolve(tmp_path, project_table='root = "shared"')["root"] == tmp_path / "app/shared"
    assert resolve(tmp_path, settings_table='root = "mine"')["root"] == tmp_path / "me/mine"
    assert resolve(tmp_path, settings_table='root = "~/fl"')["root"] == Path.home() / "fl"


def test_precedence_cli_over_env_over_participant_over_project(tmp_path: Path) -> None:
    project = 'root = "/p"\nretries = 1\npoll = 1.0\nmode = "link"'
    settings = 'root = "/s"\nretries = 2\npoll = 2.0'
    env = {"SYFTFLWR_FAKE_STORE_ROOT": "/e", "SYFTFLWR_FAKE_STORE_RETRIES": "5"}
    options = resolve(tmp_path, project, settings, env=env, cli={"root": "/c", "watch": None})
    assert options["root"] == Path("/c")  # command line
    assert options["retries"] == 5  # environment
    assert options["poll"] == 2.0  # participant table
    assert options["mode"] == "link"  # project table
    assert options["watch"] is True  # default (a None CLI value means "not given")


def test_env_strings_are_coerced(tmp_path: Path) -> None:
    env = {
        "SYFTFLWR_FAKE_STORE_ROOT": "~/x",
        "SYFTFLWR_FAKE_STORE_POLL": "0.25",
        "SYFTFLWR_FAKE_STORE_RETRIES": "7",
        "SYFTFLWR_FAKE_STORE_WATCH": "off",
        "SYFTFLWR_FAKE_STORE_EXTRA": '{"bucket": "b"}',
        "FAKE_STORE_URL": "http://127.0.0.1:4443",
        "SYFTFLWR_FAKE_STORE_MODE": "",  # empty = unset
    }
    options = resolve(tmp_path, env=env)
    assert options == {
        "root": Path.home() / "x",
        "poll": 0.25,
        "retries": 7,
        "watch": False,
        "mode": "rename",
        "endpoint": "http://127.0.0.1:4443",
        "extra": {"bucket": "b"},
    }


def test_unknown_option_suggests_the_nearest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, project_table='root = "/r"\nretires = 2')
    error = info.value
    assert error.key == "tool.syftflwr.transport.fake-store.retires"
    assert error.source == str(tmp_path / "app" / "pyproject.toml")
    assert "did you mean 'retries'" in (error.fix or "")


def test_unknown_option_in_the_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, settings_table='rooot = "/r"')
    assert info.value.key == "transport.fake-store.rooot"
    assert info.value.source == str(tmp_path / "me" / "settings.toml")


@pytest.mark.parametrize(
    ("table", "key", "fragment"),
    [
        ('retries = "many"', "retries", "expected an integer"),
        ("retries = true", "retries", "expected an integer"),
        ('poll = "soon"', "poll", "expected a number"),
        ('watch = "perhaps"', "watch", "true or false"),
        ('mode = "copy"', "mode", "is not one of 'rename', 'link'"),
        ('endpoint = "not a url"', "endpoint", "expected a URL"),
        ("extra = 3", "extra", "expected a table"),
        ("root = 4", "root", "expected a path"),
    ],
)
def test_wrong_types_name_file_key_and_fix(
    tmp_path: Path, table: str, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, project_table=f'root = "/r"\n{table}' if key != "root" else table)
    error = info.value
    assert error.key == f"tool.syftflwr.transport.fake-store.{key}"
    assert fragment in error.problem
    assert error.fix and "e.g." in error.fix


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, project_table='root = "/r"', env={"SYFTFLWR_FAKE_STORE_RETRIES": "x"})
    assert info.value.source == "environment variable SYFTFLWR_FAKE_STORE_RETRIES"


def test_bad_cli_value_names_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path, project_table='root = "/r"', cli={"mode": "copy"})
    assert info.value.source == "command line"


def test_missing_required_option_says_where_to_set_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(tmp_path)
    error = info.value
    assert "needs option 'root'" in error.problem
    fix = error.fix or ""
    # a per-participant option: the settings file is suggested first
    assert fix.index("[transport.fake-store]") < fix.index("[tool.syftflwr.transport.fake-store]")
    assert "SYFTFLWR_FAKE_STORE_ROOT" in fix


def test_without_any_file_layer(tmp_path: Path) -> None:
    options = resolve_options(INFO, None, None, env={"SYFTFLWR_FAKE_STORE_ROOT": "/x"}, cli={})
    assert options["root"] == Path("/x")
