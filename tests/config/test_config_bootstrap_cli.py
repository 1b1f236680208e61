"""``syftflwr bootstrap`` through click, with the real registry behind ``--transport``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _config_helpers import write
from click.testing import CliRunner
from syftflwr.cli.bootstrap import bootstrap
from syftflwr.config import load_project
from syftflwr.registry import get_registry, install_hint

AGG, DS1, DS2 = "ds@uni.org", "a@hospital-a.org", "b@hospital-b.org"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    write(tmp_path / "quickstart" / "pyproject.toml", '[project]\nname = "quickstart"\n# mine\n')
    return tmp_path / "quickstart"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(bootstrap, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_writes_prints_and_is_idempotent(app: Path) -> None:
    args = (str(app), "--aggregator", AGG, "--datasite", DS1, "--datasite", DS2)
    code, out, _ = invoke(*args, "--transport", "memory")
    assert code == 0
    assert out.startswith(f"wrote [tool.syftflwr] to {app / 'pyproject.toml'}")
    assert f"datasites   {DS1}, {DS2}" in out
    assert "memory (pinned; syftflwr " in out
    assert f"syftflwr run {app} --as THEIR_EMAIL" in out
    project = load_project(app)
    assert (project.aggregator, project.datasites, project.transport) == (AGG, (DS1, DS2), "memory")
    assert "# mine" in (app / "pyproject.toml").read_text()

    code, out, _ = invoke(*args, "--transport", "memory")
    assert code == 0 and out.startswith("already up to date:")
    assert "next:" not in out


def test_in_process_transport_is_pinned_with_a_warning(app: Path) -> None:
    code, _, err = invoke(str(app), "--aggregator", AGG, "--datasite", DS1, "--transport", "memory")
    assert code == 0
    assert "in-process only" in err


def test_without_transport_nothing_is_pinned(app: Path) -> None:
    code, out, _ = invoke(str(app), "--aggregator", AGG, "--datasite", DS1)
    assert code == 0
    assert "not pinned" in out
    assert load_project(app).transport is None


def test_extra_settings_are_written(app: Path) -> None:
    code, out, _ = invoke(
        str(app),
        "--aggregator",
        AGG,
        "--datasite",
        DS1,
        "--round-timeout",
        "120",
        "--message-ttl",
        "2h",
        "--max-message-size",
        "64MiB",
        "--no-encryption",
        "--profile",
        "native",
        "--clock-skew",
        "5",
        "--app-name",
        "study",
    )
    assert code == 0, out
    text = (app / "pyproject.toml").read_text()
    assert "round_timeout = 120\n" in text  # numbers stay numbers
    assert 'message_ttl = "2h"' in text
    project = load_project(app)
    assert (project.app_name, project.round_timeout, project.message_ttl) == ("study", 120, 7200)
    assert project.encryption is False and project.max_message_size == 64 * 2**20
    assert "round_timeout     120 s" in out


def test_transport_typo_is_caught_with_a_suggestion(app: Path) -> None:
    code, _, err = invoke(str(app), "--aggregator", AGG, "--datasite", DS1, "--transport", "memroy")
    assert code == 2
    assert "did you mean 'memory'" in err
    assert "[tool.syftflwr]" not in (app / "pyproject.toml").read_text()


def test_missing_first_party_transport_gives_the_install_hint(app: Path) -> None:
    if "syftbox" in get_registry().names():
        pytest.skip("syftbox is installed in this environment")
    code, _, err = invoke(
        str(app), "--aggregator", AGG, "--datasite", DS1, "--transport", "syftbox"
    )
    assert code == 2
    assert f"fix: {install_hint('syftbox')}" in " ".join(err.split())


def test_no_check_pins_a_transport_not_installed_here(app: Path) -> None:
    code, out, _ = invoke(
        str(app), "--aggregator", AGG, "--datasite", DS1, "--transport", "syftbox", "--no-check"
    )
    assert code == 0
    assert "syftbox (pinned)" in out
    assert load_project(app).transport == "syftbox"


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--aggregator", "../ds@uni.org", "--datasite", DS1), "command line: --aggregator:"),
        (
            ("--aggregator", AGG, "--datasite", DS1, "--datasite", "a/b@c.org"),
            "command line: --datasite #2:",
        ),
        (("--aggregator", AGG, "--datasite", AGG), "command line: --datasite #1:"),
        (("--aggregator", AGG, "--datasite", DS1, "--app-name", ".."), "command line: --app-name:"),
        (
            ("--aggregator", AGG, "--datasite", DS1, "--round-timeout", "soon"),
            "command line: --round-timeout:",
        ),
    ],
)
def test_bad_flags_are_named_as_flags(app: Path, args: tuple[str, ...], where: str) -> None:
    code, _, err = invoke(str(app), *args)
    assert code == 2
    assert where in err and "fix:" in err
    assert "[tool.syftflwr]" not in (app / "pyproject.toml").read_text()


def test_errors_in_the_file_name_the_file(app: Path) -> None:
    write(app / "pyproject.toml", '[project]\nname = "q"\n[tool.syftflwr]\ncolour = 1\n')
    code, _, err = invoke(str(app), "--aggregator", AGG, "--datasite", DS1)
    assert code == 2
    assert str(app / "pyproject.toml") in err and "tool.syftflwr.colour" in err


def test_not_a_flower_app(tmp_path: Path) -> None:
    code, _, err = invoke(str(tmp_path), "--aggregator", AGG, "--datasite", DS1)
    assert code == 2 and "no pyproject.toml" in err


def test_datasite_is_required(app: Path) -> None:
    code, _, err = invoke(str(app), "--aggregator", AGG)
    assert code == 2 and "--datasite" in err


def test_reached_through_the_syftflwr_command(app: Path) -> None:
    """The real console entry point in a subprocess: the root group finds the command."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from syftflwr.cli import main; main()",
            "bootstrap",
            str(app),
            "--aggregator",
            AGG,
            "--datasite",
            DS1,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"FLWR_TELEMETRY_ENABLED": "0", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "wrote [tool.syftflwr]" in result.stdout
    assert load_project(app).aggregator == AGG
