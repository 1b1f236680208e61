"""``syftflwr submit`` and ``syftflwr jobs``: exit codes, the error and fix lines, and
what each prints, run in this process (click's runner) over a real fsspec-local root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _jobs_world import AGG, DS1, DS2, World
from click.testing import CliRunner, Result
from syftflwr.cli.app import cli


@pytest.fixture
def world(tmp_path: Path) -> World:
    made = World(tmp_path, datasites=(DS1, DS2))
    made.write_settings(AGG)
    made.write_settings(DS1, accept=(AGG,))
    made.write_settings(DS2)
    return made


def run(world: World, email: str, *args: str) -> Result:
    env = {**world.env, "SYFTFLWR_HOME": str(world.home(email))}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_lists_submit_and_jobs(world: World) -> None:
    out = run(world, AGG, "--help").output
    assert "submit" in out and "jobs" in out


def test_a_datasite_that_accepts_nobody_is_told_how_to_add_someone(world: World) -> None:
    result = run(world, DS2, "jobs")
    assert result.exit_code == 2
    assert f"error: {DS2} has nobody to exchange jobs with" in result.output
    assert "fix: a datasite writes accept_jobs_from" in result.output


def test_trust_then_jobs_publishes_the_key_the_aggregator_needs(world: World) -> None:
    nobody = run(world, AGG, "submit", str(world.app()))
    assert nobody.exit_code == 1
    assert f"not yet seen: no key published by {DS1} yet" in nobody.output
    assert "error: no datasite could be sent the job" in nobody.output

    trusted = run(world, DS2, "jobs", "trust", AGG)
    assert (trusted.exit_code, trusted.output) == (0, f"{DS2} now accepts jobs from {AGG}\n")
    again = run(world, DS2, "jobs", "trust", AGG.upper())
    assert again.output == f"{DS2} already accepts jobs from {AGG.upper()}\n"
    assert run(world, DS2, "jobs").exit_code == 0
    assert run(world, DS1, "jobs").exit_code == 0

    sent = run(world, AGG, "submit", str(world.app()), "--json")
    assert sent.exit_code == 0, sent.output
    report = json.loads(sent.output)
    assert [(d["datasite"], d["sent"]) for d in report["datasites"]] == [(DS1, True), (DS2, True)]
    assert report["signer"].startswith("sha256:")
    listed = json.loads(run(world, DS2, "jobs", "--json").output)
    assert [j["from"] for j in listed["received"]] == [AGG]


def test_only_the_aggregator_submits(world: World) -> None:
    result = run(world, AGG, "submit", str(world.app()), "--as", DS1)
    assert result.exit_code == 2
    assert f"{DS1} (command line) is not the aggregator of this project ({AGG})" in result.output
    assert f"fix: run as {AGG} (--as {AGG})" in result.output


def test_show_and_approve_name_an_unknown_job(world: World) -> None:
    for args in (("show", "0123abcd"), ("approve", "0123abcd")):
        result = run(world, DS1, "jobs", *args)
        assert result.exit_code == 2
        assert "error: no job '0123abcd' was received here" in result.output
        assert "fix: `syftflwr jobs` lists the jobs you received" in result.output


def test_reject_needs_a_reason(world: World) -> None:
    result = run(world, DS1, "jobs", "reject", "0123abcd")
    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.output


def test_jobs_refuse_to_travel_in_plaintext(world: World) -> None:
    env = {**world.env, "SYFTFLWR_HOME": str(world.home(DS1)), "SYFTFLWR_ENCRYPTION": "0"}
    result = CliRunner().invoke(cli, ["jobs"], env=env)
    assert result.exit_code == 2
    assert "jobs and decisions are never sent in plaintext" in result.output
    assert "environment variable SYFTFLWR_ENCRYPTION" in result.output
