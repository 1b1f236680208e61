"""The small things a new user meets in the first hour (issue "first hour", items 4 and 9):
install hints that work, help that lists what exists, errors that say what is wrong, and
commands that know who you are when only one participant ran on this machine.

CLI behaviour runs in subprocesses with a fresh HOME (``python -m syftflwr``); the test
plugins of tests/plugins are installed for real (``plugin_env``).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _plugin_env import PluginEnv
from click.testing import CliRunner
from rich.console import Console
from syftflwr.cli import cli
from syftflwr.cli.transports import render_table
from syftflwr.errors import TransportNotFoundError, TransportNotInstalledError
from syftflwr.registry import Registry, get_registry, install_hint, source_folder

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
AGG, DS1, DS2 = "aggregator@openmined.org", "ds1@openmined.org", "ds2@openmined.org"
MEMORY = importlib.metadata.EntryPoint(
    name="memory", value="syftflwr.transports.memory", group="syftflwr.transports"
)


def fresh_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "XDG_"))}
    env.update(FLWR_TELEMETRY_ENABLED="0", HOME=str(home), COLUMNS="200", **extra)
    return env


def syftflwr(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syftflwr", *args], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


def one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- install hints
def test_install_hint_names_the_folder_syftflwr_was_installed_from() -> None:
    """The test environment installs core from this checkout (editable): PEP 610's
    direct_url.json says so, and the hint names the plugin's folder in it."""
    assert source_folder() == ROOT
    assert install_hint("gdrive") == f"pip install {ROOT / 'plugins' / 'gdrive'}"
    assert install_hint("syftbox").startswith(f"pip install {ROOT / 'plugins' / 'syftbox'} (")
    assert "syftflwr[" not in install_hint("fsspec-local")


def test_install_hint_without_a_local_folder_never_names_an_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import syftflwr.registry._install as hints

    monkeypatch.setattr(hints, "source_folder", lambda distribution="syftflwr": None)
    hint = hints.install_hint("gdrive")
    assert "not published on a package index yet" in hint
    assert "pip install ./plugins/gdrive" in hint and "syftflwr[" not in hint


@pytest.mark.parametrize("name", ["gdrive", "syftbox", "fsspec-local"])
def test_a_first_party_transport_not_installed_gets_a_working_install_line(name: str) -> None:
    with pytest.raises(TransportNotInstalledError) as info:
        Registry(entry_points=[MEMORY]).load(name)
    assert f"fix: pip install {ROOT / 'plugins' / name}" in str(info.value)


def test_a_typo_suggests_a_transport_not_installed_with_its_install_line() -> None:
    with pytest.raises(TransportNotFoundError) as info:
        Registry(entry_points=[MEMORY]).load("gdrvie")
    text = str(info.value)
    assert "did you mean 'gdrive'?" in text
    assert f"fix: 'gdrive' is not installed either: pip install {ROOT / 'plugins' / 'gdrive'}" in (
        text
    )


def test_typo_on_the_command_line(plugin_env: PluginEnv, tmp_path: Path) -> None:
    """syftbox is not installed in this environment (its own venv): the suggestion
    comes with the line that installs it."""
    if "syftbox" in get_registry().names():
        pytest.skip("syftbox is installed in this environment")
    proc = plugin_env.cli("simulate", str(QUICKSTART), "--transport", "syftbx")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "did you mean 'syftbox'?" in proc.stderr
    assert f"pip install {ROOT / 'plugins' / 'syftbox'}" in proc.stderr


def test_transports_with_nothing_usable_says_how_to_install_one(plugin_env: PluginEnv) -> None:
    """Host plugins are disabled here (installed, so no hint for them); memory alone
    crosses no process boundary: what is missing is named with its install line."""
    proc = plugin_env.cli("transports")
    assert proc.returncode == 0, proc.stderr
    out = one_line(proc.stdout)
    assert "auto-detection finds nothing usable here" in out
    if "syftbox" not in get_registry().names():
        assert f"not installed: syftbox: pip install {ROOT / 'plugins' / 'syftbox'}" in out


# --------------------------------------------------------------------------- help and listing
def test_help_lists_only_transport_command_groups_that_exist() -> None:
    """fsspec-local adds no commands (`syftflwr fsspec-local` exits 2): not listed;
    gdrive adds `login`: listed."""
    pytest.importorskip("syftflwr_fsspec_local", reason="nox installs the first-party plugins")
    pytest.importorskip("syftflwr_gdrive", reason="nox installs the first-party plugins")
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    groups = result.output.split("Transport commands")[1]
    assert "gdrive" in groups and "fsspec-local" not in groups


def test_transports_table_is_readable_at_80_columns() -> None:
    """At 80 columns the five-column table folded names into slivers
    ("syftflwr-fsspe|c-local"): each transport now gets a line, details beneath."""
    rows = get_registry().statuses()
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system=None)
    render_table(rows, console)
    lines = buffer.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for row in rows:
        assert any(f"{row.distribution} {row.version}" in line for line in lines), row.name
    assert sum("capabilities" in line for line in lines) == len(rows)


# --------------------------------------------------------------------------- errors
def test_a_missing_directory_is_reported_as_such(tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home")
    for args in (["run", "nope", "--as", AGG], ["simulate", "nope"], ["keys", "show", "nope"]):
        proc = syftflwr(*args, env=env, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"{tmp_path / 'nope'}: no such directory" in proc.stderr
        assert "pyproject.toml not found" not in proc.stderr
        assert "syftflwr new" in proc.stderr


def test_no_email_given_names_the_command_line_ways_only(tmp_path: Path) -> None:
    proc = syftflwr("run", str(QUICKSTART), env=fresh_env(tmp_path / "home"))
    assert proc.returncode == 2
    assert "pass --as EMAIL" in proc.stderr and "email=" not in proc.stderr


# --------------------------------------------------------------------------- who am I
@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(QUICKSTART / "pyproject.toml", folder)
    return folder


def test_keys_show_and_doctor_need_no_as_with_one_local_identity(app: Path, tmp_path: Path) -> None:
    pytest.importorskip("syftflwr_fsspec_local", reason="doctor's round trip needs a transport")
    env = fresh_env(tmp_path / "home", SYFTFLWR_HOME=str(tmp_path / "syftflwr"))
    first = syftflwr("keys", "show", str(app), env=env)
    assert first.returncode == 2 and "whose keys? no email given" in first.stderr
    assert syftflwr("keys", "show", str(app), "--as", DS1, env=env).returncode == 0
    shown = syftflwr("keys", "show", str(app), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["email"] == DS1
    doctor = syftflwr("doctor", str(app), env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"identity: {DS1} (datasite, from the only participant" in one_line(doctor.stdout)
    assert "round trip" in doctor.stdout
    # a second identity on this machine: no guessing, the choices are named
    assert syftflwr("keys", "show", str(app), "--as", DS2, env=env).returncode == 0
    ambiguous = syftflwr("keys", "show", str(app), env=env)
    assert ambiguous.returncode == 2
    assert f"{DS1}, {DS2}" in one_line(ambiguous.stderr) and "--as" in ambiguous.stderr


def test_a_mistyped_as_gets_a_did_you_mean(app: Path, tmp_path: Path) -> None:
    env = fresh_env(tmp_path / "home", SYFTFLWR_HOME=str(tmp_path / "syftflwr"))
    proc = syftflwr("keys", "show", str(app), "--as", "ds1@openmined.rog", env=env)
    assert proc.returncode == 2
    assert f"did you mean {DS1}?" in one_line(proc.stderr)
    assert f"fix: --as {DS1}" in proc.stderr


def test_reinstall_hints_name_an_index_only_for_third_party_plugins() -> None:
    from syftflwr.registry._install import reinstall_hint

    assert reinstall_hint("syftflwr-foo") == "pip install --force-reinstall syftflwr-foo"
    assert reinstall_hint("syftflwr", "-U").startswith(f"pip install -U {ROOT} (")
    assert reinstall_hint("syftflwr-gdrive").startswith(
        f"pip install --force-reinstall {ROOT / 'plugins' / 'gdrive'} ("
    )
