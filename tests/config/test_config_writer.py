"""``write_project_config``: idempotent edits that keep the user's file intact."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from _config_helpers import write
from syftflwr.config import load_project, write_project_config
from syftflwr.errors import ConfigError

AGG, DS1, DS2, DS3 = "ds@uni.org", "a@hospital-a.org", "b@hospital-b.org", "c@clinic-c.org"

USER_FILE = """\
# Quickstart: keep this comment
[build-system]
requires = ["hatchling"]   # build backend
build-backend = "hatchling.build"

[project]
name = "quickstart"
version = "1.0.0"
dependencies = [
    "flwr>=1.26",   # pinned by the template
    "scikit-learn",
]

[tool.flwr.app]
publisher = "me"

[tool.flwr.app.components]
serverapp = "quickstart.server_app:app"
clientapp = "quickstart.client_app:app"

[tool.flwr.app.config]
num-server-rounds = 3

[tool.ruff]
line-length = 100
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write(tmp_path / "app" / "pyproject.toml", USER_FILE)


def test_writes_the_table_and_keeps_everything_else(app: Path) -> None:
    assert write_project_config(
        app.parent, aggregator=AGG, datasites=[DS1, DS2], transport="gdrive"
    )
    text = app.read_text()
    assert text.startswith(USER_FILE)  # byte for byte, comments and all
    added = tomllib.loads(text)["tool"]["syftflwr"]
    assert added == {
        "app_name": "quickstart",  # pinned from [project].name
        "aggregator": AGG,
        "datasites": [DS1, DS2],
        "transport": "gdrive",
    }
    project = load_project(app)
    assert project.transport == "gdrive" and project.datasites == (DS1, DS2)


def test_second_identical_call_changes_nothing(app: Path) -> None:
    assert write_project_config(app, aggregator=AGG, datasites=[DS1, DS2], transport="gdrive")
    before = app.read_bytes()
    mtime = app.stat().st_mtime_ns
    assert not write_project_config(app, aggregator=AGG, datasites=[DS1, DS2], transport="gdrive")
    assert app.read_bytes() == before
    assert app.stat().st_mtime_ns == mtime  # not even rewritten


def test_update_touches_only_changed_keys(app: Path) -> None:
    write(
        app,
        USER_FILE
        + f"""
[tool.syftflwr]
app_name = "fed"        # chosen by hand
aggregator = "{AGG}"    # the lab
datasites = ["{DS1}"]
round_timeout = 90      # slow sites
""",
    )
    assert write_project_config(app, aggregator=AGG, datasites=[DS1, DS2, DS3])
    text = app.read_text()
    assert 'app_name = "fed"        # chosen by hand' in text
    assert f'aggregator = "{AGG}"    # the lab' in text
    assert "round_timeout = 90      # slow sites" in text
    project = load_project(app)
    assert project.app_name == "fed"
    assert project.datasites == (DS1, DS2, DS3)
    assert project.transport is None  # not given: stays auto-detected


def test_transport_is_pinned_and_replaced(app: Path) -> None:
    write_project_config(app, aggregator=AGG, datasites=[DS1], transport="gdrive")
    assert write_project_config(app, aggregator=AGG, datasites=[DS1], transport="fsspec-local")
    assert load_project(app).transport == "fsspec-local"
    # not giving a transport later keeps the pinned one
    assert not write_project_config(app, aggregator=AGG, datasites=[DS1])
    assert load_project(app).transport == "fsspec-local"


def test_table_form_gets_its_name_and_keeps_its_options(app: Path) -> None:
    write(
        app,
        USER_FILE
        + f"""
[tool.syftflwr]
aggregator = "{AGG}"
datasites = ["{DS1}"]

[tool.syftflwr.transport.gdrive]
folder = "fl"   # shared folder
""",
    )
    assert write_project_config(app, aggregator=AGG, datasites=[DS1], transport="gdrive")
    project = load_project(app)
    assert project.transport == "gdrive"
    assert project.transport_options == {"gdrive": {"folder": "fl"}}
    assert 'folder = "fl"   # shared folder' in app.read_text()
    assert not write_project_config(app, aggregator=AGG, datasites=[DS1], transport="gdrive")


def test_extra_keys_are_validated_and_written_as_given(app: Path) -> None:
    assert write_project_config(
        app,
        aggregator=AGG,
        datasites=[DS1],
        max_message_size="512MiB",
        round_timeout="10m",
        encryption=True,
        profile=None,
    )
    text = app.read_text()
    assert 'max_message_size = "512MiB"' in text and "profile" not in text
    project = load_project(app)
    assert (project.max_message_size, project.round_timeout, project.encryption) == (
        512 * 2**20,
        600,
        True,
    )


def test_app_name_argument_wins(app: Path) -> None:
    write_project_config(app, aggregator=AGG, datasites=[DS1], app_name="study-7")
    assert load_project(app).app_name == "study-7"


def test_file_without_tool_table(tmp_path: Path) -> None:
    file = write(tmp_path / "pyproject.toml", '[project]\nname = "bare"\n')
    assert write_project_config(file, aggregator=AGG, datasites=[DS1])
    assert load_project(file).app_name == "bare"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"aggregator": "../x@y.org"}, "tool.syftflwr.aggregator"),
        ({"aggregator": "/etc/passwd"}, "tool.syftflwr.aggregator"),
        ({"datasites": [DS1, "a/b@c.org"]}, "tool.syftflwr.datasites[1]"),
        ({"datasites": [DS1, DS1]}, "tool.syftflwr.datasites[1]"),
        ({"datasites": [AGG]}, "tool.syftflwr.datasites[0]"),
        ({"datasites": []}, "tool.syftflwr.datasites"),
        ({"datasites": DS1}, "tool.syftflwr.datasites"),
        ({"app_name": ".."}, "tool.syftflwr.app_name"),
        ({"app_name": "x\x00"}, "tool.syftflwr.app_name"),
        ({"transport": "../gdrive"}, "tool.syftflwr.transport"),
        ({"max_message_size": "3GiB"}, "tool.syftflwr.max_message_size"),
        ({"colour": "blue"}, "tool.syftflwr.colour"),
    ],
)
def test_invalid_input_is_refused_and_nothing_is_written(
    app: Path, kwargs: dict[str, object], key: str
) -> None:
    arguments: dict[str, object] = {"aggregator": AGG, "datasites": [DS1], **kwargs}
    with pytest.raises(ConfigError) as info:
        write_project_config(app, **arguments)  # type: ignore[arg-type]
    assert info.value.key == key
    assert info.value.fix
    assert app.read_text() == USER_FILE


def test_existing_invalid_config_is_not_made_worse(app: Path) -> None:
    write(app, USER_FILE + f'\n[tool.syftflwr]\naggregator = "{AGG}"\nagregator = "x"\n')
    before = app.read_text()
    with pytest.raises(ConfigError, match="result would be invalid") as info:
        write_project_config(app, aggregator=AGG, datasites=[DS1])
    assert "did you mean 'aggregator'" in (info.value.fix or "")
    assert app.read_text() == before


def test_missing_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no pyproject\.toml"):
        write_project_config(tmp_path, aggregator=AGG, datasites=[DS1])
    broken = write(tmp_path / "pyproject.toml", "[project\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        write_project_config(broken, aggregator=AGG, datasites=[DS1])
    assert broken.read_text() == "[project\n"


def test_write_is_atomic_and_keeps_the_mode(app: Path) -> None:
    app.chmod(0o640)
    inode = app.stat().st_ino
    write_project_config(app, aggregator=AGG, datasites=[DS1])
    assert stat.S_IMODE(app.stat().st_mode) == 0o640
    assert app.stat().st_ino != inode  # replaced, not rewritten in place
    assert sorted(p.name for p in app.parent.iterdir()) == ["pyproject.toml"]  # no temp left


def test_symlinked_pyproject_writes_the_target(tmp_path: Path) -> None:
    real = write(tmp_path / "real" / "pyproject.toml", USER_FILE)
    link_dir = tmp_path / "app"
    link_dir.mkdir()
    (link_dir / "pyproject.toml").symlink_to(real)
    write_project_config(link_dir, aggregator=AGG, datasites=[DS1])
    assert (link_dir / "pyproject.toml").is_symlink()
    assert load_project(real).aggregator == AGG


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only directories")
def test_unwritable_directory_is_a_config_error(app: Path) -> None:
    app.parent.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write"):
            write_project_config(app, aggregator=AGG, datasites=[DS1])
    finally:
        app.parent.chmod(0o700)
    assert app.read_text() == USER_FILE
