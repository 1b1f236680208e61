"""Building FABs through the shim (``syftflwr.jobs.fab``), under whichever flwr is installed:
``nox -s tests`` runs these on flwr 1.42, ``nox -s "flower(flwr='1.26.1')" -- tests/jobs`` on
1.26.1. The app is never imported while building."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from _bundle_apps import (
    PACKAGE,
    STORED_VERSIONS,
    markers_written,
    stored_fab,
    write_app,
)
from flwr.cli.build import build_fab_from_disk
from syftflwr.errors import ConfigError
from syftflwr.jobs.fab import build_fab, flwr_version

FLWR = flwr_version()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_build_gives_flowers_fab_of_the_app(tmp_path: Path) -> None:
    built = build_fab(write_app(tmp_path / "app"))

    assert (built.name, built.version, built.publisher) == (
        "marker-app",
        "1.0.0",
        "syftflwr-tests",
    )
    assert built.fab_hash == hashlib.sha256(built.data).hexdigest()
    assert built.flwr_version == FLWR
    members = _members(built.data)
    assert {f"{PACKAGE}/client_app.py", f"{PACKAGE}/server_app.py", ".info/CONTENT"} <= set(members)
    assert built.not_shipped == ()


@pytest.mark.skipif(FLWR not in STORED_VERSIONS, reason=f"no FAB of flwr {FLWR} is stored")
def test_same_source_gives_the_stored_fab_of_this_flwr(tmp_path: Path) -> None:
    """The FABs kept in tests/jobs/data_bundle (used to compare the two builders) are what
    this flwr builds from write_app's source: the same members, in the same order, with the
    same bytes (the deflated stream may differ with another zlib)."""
    built = build_fab(write_app(tmp_path / "app")).data

    assert _listing(built) == _listing(stored_fab(FLWR))


def _listing(data: bytes) -> list[tuple[str, tuple[int, ...], bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(i.filename, i.date_time, archive.read(i)) for i in archive.infolist()]


def test_federation_table_stays_out_and_never_changes_the_hash(tmp_path: Path) -> None:
    first = build_fab(write_app(tmp_path / "one"))
    other = write_app(
        tmp_path / "two",
        federation='app_name = "other"\naggregator = "x@example.org"\n'
        'datasites = ["a@example.org", "b@example.org"]\n\n'
        '[tool.syftflwr.keys]\n"a@example.org" = "sha256:' + "ab" * 32 + '"\n',
    )
    second = build_fab(other)

    assert second.fab_hash == first.fab_hash
    shipped = tomllib.loads(_members(second.data)["pyproject.toml"].decode())
    assert "syftflwr" not in shipped["tool"] and "flwr" in shipped["tool"]


def test_the_fab_is_what_flower_builds_without_the_federation_table(tmp_path: Path) -> None:
    """One builder: our FAB equals Flower's own ``build_fab_from_disk`` on a copy whose
    pyproject lacks [tool.syftflwr]."""
    project = write_app(tmp_path / "app", extra={"notes/usage.md": b"# usage\n"})
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    text = (copy / "pyproject.toml").read_text()
    (copy / "pyproject.toml").write_text(text[: text.index("[tool.syftflwr]")])

    assert build_fab(project).data == build_fab_from_disk(copy)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("marker_app", "not '_'"),
        ("a" * 33, "33 characters (at most 32)"),
        ("1app", "start with a letter"),
    ],
)
def test_a_name_flwr_142_refuses_is_refused_under_any_flwr(
    tmp_path: Path, name: str, problem: str
) -> None:
    project = write_app(tmp_path / "app", name=name)

    with pytest.raises(ConfigError) as refused:
        build_fab(project)

    assert refused.value.key == "[project].name" and problem in refused.value.problem
    assert refused.value.fix is not None and 'name = "' in refused.value.fix
    suggested = refused.value.fix.split('"')[1]
    assert build_fab(write_app(tmp_path / "fixed", name=suggested)).name == suggested


def test_flwr_1_26_builds_names_that_1_42_refuses(tmp_path: Path) -> None:
    """Why the check above is ours: flwr 1.26.1 alone ships a FAB that a datasite on 1.42
    could not install."""
    project = write_app(tmp_path / "app", name="marker_app")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text[: text.index("[tool.syftflwr]")])
    if FLWR.startswith("1.26."):
        assert build_fab_from_disk(project)
    else:
        with pytest.raises(ValueError, match="marker_app"):
            build_fab_from_disk(project)


@pytest.mark.parametrize(
    ("drop", "key"),
    [
        ('version = "1.0.0"\n', "[project].version"),
        ('publisher = "syftflwr-tests"\n', "[tool.flwr.app].publisher"),
        (f'clientapp = "{PACKAGE}.client_app:app"\n', "[tool.flwr.app.components].clientapp"),
    ],
)
def test_a_missing_field_is_refused_naming_its_key(tmp_path: Path, drop: str, key: str) -> None:
    project = write_app(tmp_path / "app")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace(drop, ""))

    with pytest.raises(ConfigError) as refused:
        build_fab(project)

    assert refused.value.key == key and refused.value.fix


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('version = "1.0.0"', 'version = "1.0/../../x"', "[project].version"),
        ('publisher = "syftflwr-tests"', 'publisher = "../../etc"', "[tool.flwr.app].publisher"),
        ('publisher = "syftflwr-tests"', 'publisher = "me\\u001b[2J"', "[tool.flwr.app].publisher"),
    ],
)
def test_a_version_or_publisher_shaped_like_a_path_is_refused(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    """Flower's install names a folder after them, and review prints them."""
    project = write_app(tmp_path / "app")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace(old, new))

    with pytest.raises(ConfigError) as refused:
        build_fab(project)

    assert refused.value.key == key and "\x1b" not in str(refused.value)


def test_a_component_that_is_no_reference_and_a_bad_run_config_are_refused(
    tmp_path: Path,
) -> None:
    project = write_app(tmp_path / "app")
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("client_app:app", "client_app"))
    with pytest.raises(ConfigError, match="not a <module>:<attribute>"):
        build_fab(project)

    project = write_app(tmp_path / "two", config="layers = [1, 2]\n")
    with pytest.raises(ConfigError) as refused:
        build_fab(project)
    assert refused.value.key == "[tool.flwr.app.config].layers"


def test_no_pyproject_and_broken_toml_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a Flower app's folder"):
        build_fab(tmp_path / "empty")

    project = write_app(tmp_path / "app")
    (project / "pyproject.toml").write_text("[project\nname = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_fab(project)


def test_what_flwr_itself_refuses_becomes_a_config_error(tmp_path: Path) -> None:
    """Flower's 10 MB limit (both versions), through our error with a fix."""
    project = write_app(tmp_path / "app", extra={"blob.md": os.urandom(11 * 1024 * 1024)})

    with pytest.raises(ConfigError) as refused:
        build_fab(project)

    assert f"flwr {FLWR} refuses to build it" in refused.value.problem
    assert "size" in refused.value.problem and refused.value.fix


def test_not_shipped_lists_the_project_files_the_builder_left_out(tmp_path: Path) -> None:
    project = write_app(
        tmp_path / "app",
        extra={
            "data/train.csv": b"x,y\n1,2\n",
            "conf/settings.yaml": b"a: 1\n",
            "LICENSE": b"Apache-2.0\n",
            ".gitignore": b"",
            f"{PACKAGE}/__pycache__/task.cpython-311.pyc": b"\0",
            ".git/HEAD": b"ref: refs/heads/main\n",
            ".venv/pyvenv.cfg": b"home = /usr\n",
            "env/pyvenv.cfg": b"home = /usr\n",
            "env/lib/site.py": b"",  # a virtualenv (1.26.1 ships its *.py)
        },
    )
    (project / "link.py").symlink_to(project / PACKAGE / "task.py")

    built = build_fab(project)

    shipped = set(_members(built.data))
    candidates = {"data/train.csv", "link.py", "conf/settings.yaml", "LICENSE", ".gitignore"}
    assert set(built.not_shipped) == candidates - shipped
    assert "data/train.csv" in built.not_shipped  # no flwr ships a csv
    assert built.not_shipped == tuple(sorted(built.not_shipped))
    if FLWR.startswith("1.26."):  # 1.26.1 packs only *.py, *.toml, *.md, follows symlinks
        assert {"conf/settings.yaml", "LICENSE"} <= set(built.not_shipped)
        assert "link.py" in shipped
    else:  # 1.42 also yaml and LICENSE, skips symlinks
        assert "conf/settings.yaml" in shipped and "link.py" in built.not_shipped


def test_building_never_imports_the_app(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    project = write_app(tmp_path / "app", markers=markers)

    build_fab(project)

    assert markers_written(markers) == []
    assert PACKAGE not in sys.modules


def test_an_app_review_would_refuse_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    """A top-level module named like the standard library's: every datasite would refuse
    the bundle, so submit stops at the build, naming the module."""
    project = write_app(tmp_path / "app", extra={"code.py": b"HELPER = 1\n"})

    with pytest.raises(ConfigError) as refused:
        build_fab(project)

    assert refused.value.problem == (
        "datasites would refuse its bundle: code.py: top-level module 'code' would shadow "
        "the standard library's 'code'"
    )
    assert refused.value.fix == "rename that module or package"
