"""The settings and project rules the jobs channel adds: who a datasite accepts jobs
from (``accept_jobs_from``), and the reserved app name no project may take."""

from __future__ import annotations

from pathlib import Path

import pytest
from syftflwr.config import load_participant, load_project
from syftflwr.errors import ConfigError
from syftflwr.jobs import JOBS_APP


def _settings(tmp_path: Path, text: str) -> dict[str, str]:
    (tmp_path / "settings.toml").write_text(text)
    return {"SYFTFLWR_HOME": str(tmp_path), "HOME": str(tmp_path)}


def test_accept_jobs_from_is_read_as_distinct_lower_case_emails(tmp_path: Path) -> None:
    env = _settings(
        tmp_path,
        'accept_jobs_from = ["DS@University.org", "ds@university.org", "b@x.org"]\n',
    )
    assert load_participant(env).accept_jobs_from == ("ds@university.org", "b@x.org")


def test_accept_jobs_from_defaults_to_nobody(tmp_path: Path) -> None:
    env = _settings(tmp_path, 'email = "alice@hospital-a.org"\n')
    assert load_participant(env).accept_jobs_from == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"ds@university.org"', "must be an array of emails, not a string"),
        ('["not an email"]', "not an email"),
    ],
)
def test_a_bad_accept_jobs_from_names_the_file_the_key_and_the_fix(
    tmp_path: Path, value: str, problem: str
) -> None:
    env = _settings(tmp_path, f"accept_jobs_from = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_participant(env)
    text = str(caught.value)
    assert f"{tmp_path / 'settings.toml'}: accept_jobs_from:" in text
    assert problem in text
    assert 'fix: write an array of emails, e.g. accept_jobs_from = ["ds@university.org"]' in text


@pytest.mark.parametrize(
    "table",
    [
        f'[project]\nname = "x"\n[tool.syftflwr]\napp_name = "{JOBS_APP}"\n',
        f'[project]\nname = "{JOBS_APP}"\n[tool.syftflwr]\naggregator = "a@b.org"\n',
    ],
)
def test_no_project_may_take_the_jobs_endpoints_app_name(tmp_path: Path, table: str) -> None:
    (tmp_path / "pyproject.toml").write_text(table)
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path)
    assert caught.value.key == "tool.syftflwr.app_name"
    assert f"the app name {JOBS_APP!r} is reserved" in str(caught.value)
    assert caught.value.fix == 'choose another app name, e.g. app_name = "my-app"'
