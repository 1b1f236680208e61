"""Configuration that must be refused, with the rule it breaks: security settings that
are not TOML booleans, emails that differ only in case, and numbers outside their range
(through the real loaders and the real `syftflwr` command, which exits 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _config_helpers import write
from syftflwr.config import ProjectConfig, apply_overrides, build_context, load_project
from syftflwr.errors import ConfigError
from syftflwr.registry import get_registry

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
HEAD = """[project]
name = "fed"

[tool.syftflwr]
"""
FEDERATION = 'aggregator = "agg@uni.org"\ndatasites = ["ds1@hospital.org", "ds2@clinic.org"]\n'


def project_at(tmp_path: Path, body: str) -> Path:
    write(tmp_path / "app" / "pyproject.toml", HEAD + body)
    return tmp_path / "app"


def refusal(tmp_path: Path, body: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project(project_at(tmp_path, body))
    return info.value


def context_for(project: ProjectConfig, transport: str, email: str, tmp_path: Path) -> Any:
    info = get_registry().load(transport).info
    return build_context(
        transport=transport,
        info=info,
        project=project,
        participant=None,
        email=email,
        env={"SYFTFLWR_STATE_DIR": str(tmp_path / "state")},
    )


def syftflwr(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(FLWR_TELEMETRY_ENABLED="0", SYFTFLWR_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "syftflwr", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --------------------------------------------------------------------------- booleans
@pytest.mark.parametrize("value", ['"off"', '"false"', '"no"', "0", '"0"', "1"])
def test_encryption_in_a_file_must_be_a_toml_boolean(tmp_path: Path, value: str) -> None:
    error = refusal(tmp_path, FEDERATION + f"encryption = {value}\n")
    assert error.key == "tool.syftflwr.encryption"
    assert "TOML boolean" in str(error), error
    assert "yes/no" not in str(error) and "on/off" not in str(error), error
    assert "encryption = true" in (error.fix or "") and "encryption = false" in (error.fix or "")


def test_a_string_encryption_setting_stops_the_run_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    project = project_at(tmp_path, FEDERATION + 'transport = "memory"\nencryption = "off"\n')
    out = syftflwr("run", str(project), "--as", "agg@uni.org", home=tmp_path / "home")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "tool.syftflwr.encryption" in out.stderr and "TOML boolean" in out.stderr, out.stderr
    assert not (tmp_path / "home" / "mailbox").exists()


@pytest.mark.parametrize(
    ("text", "expected"), [("0", False), ("1", True), ("true", True), ("false", False)]
)
def test_the_environment_keeps_its_text_booleans(tmp_path: Path, text: str, expected: bool) -> None:
    project = load_project(project_at(tmp_path, FEDERATION))
    effective = apply_overrides(project, env={"SYFTFLWR_ENCRYPTION": text})
    assert effective.encryption is expected


def test_the_environment_names_its_own_accepted_values(tmp_path: Path) -> None:
    project = load_project(project_at(tmp_path, FEDERATION))
    with pytest.raises(ConfigError, match="SYFTFLWR_ENCRYPTION") as info:
        apply_overrides(project, env={"SYFTFLWR_ENCRYPTION": "maybe"})
    assert "1/0" in str(info.value) and "true/false" in str(info.value), info.value


def test_a_boolean_transport_option_in_a_file_must_be_a_toml_boolean(tmp_path: Path) -> None:
    project = load_project(project_at(tmp_path, FEDERATION + (
        '[tool.syftflwr.transport]\nname = "fsspec-local"\n'
        '[tool.syftflwr.transport.fsspec-local]\nfsync = "off"\n'
    )))  # fmt: skip
    pytest.importorskip("syftflwr_fsspec_local")
    with pytest.raises(ConfigError, match="TOML boolean") as error:
        context_for(project, "fsspec-local", "agg@uni.org", tmp_path)
    assert error.value.key and error.value.key.endswith("fsync")


# --------------------------------------------------------------------------- emails
@pytest.mark.parametrize(
    "body",
    [
        'aggregator = "agg@uni.org"\ndatasites = ["ds1@hospital.org", "DS1@Hospital.org"]\n',
        'aggregator = "Agg@Uni.org"\ndatasites = ["agg@uni.org", "ds2@clinic.org"]\n',
    ],
    ids=["two datasites", "aggregator and datasite"],
)
def test_emails_differing_only_in_case_are_duplicates(tmp_path: Path, body: str) -> None:
    error = refusal(tmp_path, body)
    assert error.key and error.key.startswith("tool.syftflwr.datasites["), error
    assert "case" in str(error), error


@pytest.mark.parametrize("who", ["DS1@HOSPITAL.ORG", "Ds1@Hospital.Org", "ds1@hospital.org"])
def test_as_compares_case_insensitively_and_folders_use_the_lower_case_form(
    tmp_path: Path, who: str
) -> None:
    body = 'aggregator = "Agg@Uni.org"\ndatasites = ["DS1@Hospital.org", "ds2@clinic.org"]\n'
    project = load_project(project_at(tmp_path, body + 'transport = "memory"\n'))
    assert (project.aggregator, project.datasites) == (
        "agg@uni.org", ("ds1@hospital.org", "ds2@clinic.org"),
    )  # fmt: skip
    context = context_for(project, "memory", who, tmp_path)
    assert context.email == "ds1@hospital.org"
    assert project.role_of(who) == "datasite"
    assert context.state_dir == tmp_path / "state" / "fed" / "ds1@hospital.org"


def test_under_syftflwr05_folders_keep_upstreams_case(tmp_path: Path) -> None:
    body = (
        'aggregator = "Agg@Uni.org"\ndatasites = ["DS1@Hospital.org"]\n'
        'profile = "syft-flwr-0.5"\nencryption = false\ntransport = "fsspec-local"\n'
    )
    pytest.importorskip("syftflwr_fsspec_local")
    project = load_project(project_at(tmp_path, body))
    assert (project.aggregator, project.datasites) == ("Agg@Uni.org", ("DS1@Hospital.org",))
    context = context_for(project, "fsspec-local", "ds1@hospital.org", tmp_path)
    assert context.email == "DS1@Hospital.org"  # the name upstream's folders carry


def test_a_stranger_differing_in_more_than_case_is_still_refused(tmp_path: Path) -> None:
    project = load_project(project_at(tmp_path, FEDERATION))
    with pytest.raises(ConfigError, match="neither the aggregator"):
        project.role_of("ds3@hospital.org")


# --------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("rounds", ["0", "-1"])
def test_rounds_below_one_are_refused_with_the_valid_range(tmp_path: Path, rounds: str) -> None:
    out = syftflwr("run", str(QUICKSTART), "--as", "aggregator@openmined.org", "--rounds",
                   rounds, home=tmp_path / "home")  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--rounds" in out.stderr and ">=1" in out.stderr.replace(" ", ""), out.stderr
    assert not (tmp_path / "home" / "mailbox").exists()


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [("workers", "0", ">= 1"), ("poll_interval", "-1", "> 0"), ("retention_interval", "-5", ">= 0"),
     ("max_object_size", "0", ">= 1")],
)  # fmt: skip
def test_transport_numbers_outside_their_range_are_refused(
    tmp_path: Path, option: str, value: str, rule: str
) -> None:
    pytest.importorskip("syftflwr_fsspec_local")
    project = load_project(project_at(tmp_path, FEDERATION + (
        f'[tool.syftflwr.transport]\nname = "fsspec-local"\n'
        f"[tool.syftflwr.transport.fsspec-local]\n{option} = {value}\n"
    )))  # fmt: skip
    with pytest.raises(ConfigError) as error:
        context_for(project, "fsspec-local", "agg@uni.org", tmp_path)
    assert f"{option} must be {rule}" in str(error.value), error.value
    assert error.value.key == f"tool.syftflwr.transport.fsspec-local.{option}"
