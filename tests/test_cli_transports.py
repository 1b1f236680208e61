"""The CLI skeleton and ``syftflwr transports``: real installed test plugins, used through
``python -m syftflwr`` in subprocesses; in-process ``CliRunner`` only for behaviour that
needs no plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from _plugin_env import PluginEnv
from click.testing import CliRunner
from syftflwr.cli import app
from syftflwr.cli._output import exit_code_for
from syftflwr.errors import (
    ConfigError,
    PluginValidationError,
    StorageError,
    SyftflwrError,
    TransportNotFoundError,
)
from syftflwr.registry import reset_registry


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    reset_registry()
    yield
    reset_registry()


def listed(out: str) -> dict[str, dict[str, object]]:
    return {row["name"]: row for row in json.loads(out)}


# --------------------------------------------------------------------------- transports
def test_third_party_plugin_is_listed_and_picked(plugin_env: PluginEnv, tmp_path: Path) -> None:
    env = {"SYFTFLWR_TINYDIR_ROOT": str(tmp_path)}
    proc = plugin_env.cli("transports", "--json", plugins=["tinydir"], env=env)
    assert proc.returncode == 0, proc.stderr
    rows = listed(proc.stdout)
    tinydir, memory = rows["tinydir"], rows["memory"]
    assert (tinydir["distribution"], tinydir["version"], tinydir["status"]) == (
        "syftflwr-test-tinydir",
        "0.1.0",
        "ok",
    )
    assert tinydir["usable"] and tinydir["selected"] and tinydir["preference"] == 10
    assert tinydir["capabilities"]["poll_interval"] == 0.05  # type: ignore[index]
    assert memory["distribution"] == "syftflwr" and memory["usable"]
    assert not memory["selected"] and not memory["eligible"]  # in-process only
    assert proc.stderr == ""

    table = plugin_env.cli("transports", plugins=["tinydir"], env={**env, "COLUMNS": "1000"})
    assert table.returncode == 0, table.stderr
    assert "syftflwr-test-tinydir 0.1.0" in table.stdout
    assert f"shared directory {tmp_path} exists" in table.stdout
    assert "auto-detection picks tinydir" in table.stdout
    assert "notifies, in-process only, shares objects" in table.stdout  # memory's row
    assert memory["capabilities"]["shares_objects"] is True  # type: ignore[index]
    assert tinydir["capabilities"]["shares_objects"] is False  # type: ignore[index]
    assert memory["capabilities"]["resumes_uploads"] is False  # type: ignore[index]


def test_in_process_flag_lets_memory_be_picked(plugin_env: PluginEnv) -> None:
    proc = plugin_env.cli("transports", "--json", "--in-process", plugins=["tinydir"])
    rows = listed(proc.stdout)
    assert rows["memory"]["selected"] and not rows["tinydir"]["usable"]
    assert "root" in str(rows["tinydir"]["reason"])  # no root configured
    plain = plugin_env.cli("transports", plugins=["tinydir"])
    assert "auto-detection finds nothing usable here" in plain.stdout


PROJECT = """
[project]
name = "demo-app"
version = "1.0"

[tool.syftflwr]
aggregator = "agg@example.org"
datasites = ["ds@example.org"]

[tool.syftflwr.transport.tinydir]
root = "shared"
"""


def test_project_config_feeds_detection(plugin_env: PluginEnv, tmp_path: Path) -> None:
    config = pytest.importorskip("syftflwr.config")
    if not hasattr(config, "detection_context_for"):
        pytest.skip("the config integration does not provide detection_context_for yet")
    (tmp_path / "pyproject.toml").write_text(PROJECT)
    (tmp_path / "shared").mkdir()
    proc = plugin_env.cli("transports", "--json", "--project", str(tmp_path), plugins=["tinydir"])
    assert proc.returncode == 0, proc.stderr
    tinydir = listed(proc.stdout)["tinydir"]
    assert tinydir["selected"], tinydir  # root comes from the project's transport table
    assert str(tmp_path / "shared") in str(tinydir["reason"])


def test_broken_plugin_warns_and_the_rest_still_works(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    env = {"SYFTFLWR_TINYDIR_ROOT": str(tmp_path)}
    proc = plugin_env.cli("transports", "--json", plugins=["tinydir", "broken"], env=env)
    assert proc.returncode == 0, proc.stderr
    rows = listed(proc.stdout)  # stdout stays valid JSON
    assert rows["broken"]["status"] == "broken"
    assert rows["tinydir"]["status"] == "ok" and rows["tinydir"]["selected"]
    assert proc.stderr.startswith("warning: ")
    for part in ("syftflwr-test-broken 0.2.0", "syftflwr_missing_dependency_for_tests",
                 "SYFTFLWR_DISABLE_PLUGINS=broken"):  # fmt: skip
        assert part in proc.stderr
    assert "Traceback" not in proc.stderr

    where = plugin_env.cli("tinydir", "where", plugins=["tinydir", "broken"], env=env)
    assert where.returncode == 0 and where.stdout.strip() == str(tmp_path)
    helped = plugin_env.cli("--help", plugins=["tinydir", "broken"])
    assert helped.returncode == 0 and "broken" in helped.stdout


def test_disabled_plugin_is_listed_as_disabled_without_warning(plugin_env: PluginEnv) -> None:
    env = {"SYFTFLWR_DISABLE_PLUGINS": "broken"}
    proc = plugin_env.cli("transports", "--json", plugins=["tinydir", "broken"], env=env)
    assert listed(proc.stdout)["broken"]["status"] == "disabled"
    assert proc.stderr == ""


def test_version_names_core_and_every_transport(plugin_env: PluginEnv) -> None:
    proc = plugin_env.cli("--version", plugins=["tinydir", "broken"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "syftflwr 0.1.0"
    assert lines[1].startswith("flwr ")
    assert any(line.split() == ["tinydir", "syftflwr-test-tinydir", "0.1.0"] for line in lines)
    assert any(line.split() == ["broken", "syftflwr-test-broken", "0.2.0"] for line in lines)
    assert any(line.split() == ["memory", "syftflwr", "0.1.0"] for line in lines)


# --------------------------------------------------------------------------- plugin groups
def test_plugin_command_group(plugin_env: PluginEnv) -> None:
    helped = plugin_env.cli("--help", plugins=["tinydir"])
    assert "Transport commands" in helped.stdout and "tinydir" in helped.stdout
    group_help = plugin_env.cli("tinydir", "--help", plugins=["tinydir"])
    assert group_help.returncode == 0 and "where" in group_help.stdout
    where = plugin_env.cli("tinydir", "where", plugins=["tinydir"])
    assert where.stdout.strip() == "(not configured)"


def test_broken_plugin_group_fails_cleanly(plugin_env: PluginEnv) -> None:
    proc = plugin_env.cli("broken", "anything", plugins=["broken"])
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: transport 'broken' from syftflwr-test-broken 0.2.0")
    assert "syftflwr_missing_dependency_for_tests" in proc.stderr
    assert "Traceback" not in proc.stderr
    verbose = plugin_env.cli("-v", "broken", "anything", plugins=["broken"])
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_selecting_a_duplicate_names_both(plugin_env: PluginEnv) -> None:
    proc = plugin_env.cli("tinydir", "where", plugins=["tinydir", "dup"])
    assert proc.returncode == 2
    assert "syftflwr-test-tinydir 0.1.0" in proc.stderr
    assert "syftflwr-test-dup 0.3.0" in proc.stderr


def test_a_transport_without_commands_says_so() -> None:
    result = CliRunner().invoke(app.cli, ["memory"])
    assert result.exit_code == 2
    assert "'memory' transport (syftflwr) adds no commands" in result.output


# --------------------------------------------------------------------------- skeleton
def test_typo_in_a_command_suggests_the_nearest() -> None:
    result = CliRunner().invoke(app.cli, ["transprts"])
    assert result.exit_code == 2
    assert "Did you mean 'transports'?" in result.output


def test_lazy_commands_without_a_module_are_not_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.LAZY_COMMANDS, "ghost", "syftflwr.cli.no_such_module:ghost")
    assert "ghost" not in app.available_commands()
    assert "transports" in app.available_commands()
    result = CliRunner().invoke(app.cli, ["--help"])
    assert result.exit_code == 0 and "transports" in result.output and "ghost" not in result.output
    assert CliRunner().invoke(app.cli, ["ghost"]).exit_code == 2


def _failing_cli(exc: SyftflwrError) -> click.Group:
    """A root group like ``syftflwr``'s, with one extra command raising ``exc``."""
    group = app.RootGroup("syftflwr", callback=app.cli.callback, params=app.cli.params)

    @group.command()
    def fail() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("bad key", source="pyproject.toml", key="tool.syftflwr.x", fix="drop it"), 2),
        (PluginValidationError("bad hook"), 2),
        (TransportNotFoundError("nope", ["memory"]), 2),
        (StorageError("disk on fire; fix: call someone"), 1),
    ],
)
def test_errors_are_one_clean_paragraph_with_exit_code(exc: SyftflwrError, code: int) -> None:
    assert exit_code_for(exc) == code
    result = CliRunner().invoke(_failing_cli(exc), ["fail"])
    assert result.exit_code == code
    assert result.stderr.startswith(f"error: {str(exc).splitlines()[0]}")
    assert "Traceback" not in result.stderr
    verbose = CliRunner().invoke(_failing_cli(exc), ["-v", "fail"])
    assert verbose.exit_code == code and "Traceback" in verbose.stderr
