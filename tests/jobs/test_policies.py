"""``[auto_approve]`` (issue 19 item 8): each rule approves exactly the jobs it names,
the decision is signed, recorded as automatic and sent back like a manual one, and
anything else still waits for a person."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _bundle_apps import markers_written, stored_fab
from _jobs_world import AGG, DS1, World, send_job, signed_job
from syftflwr.config.participant import AutoApprove
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.jobs.review import Who, collect, decide
from syftflwr.jobs.store import JobStore
from syftflwr.jobs.submit import submit


def with_rules(world: World, **rules: object) -> Who:
    who = world.who(DS1)
    settings = dataclasses.replace(who.settings, auto_approve=AutoApprove(**rules))  # type: ignore[arg-type]
    return dataclasses.replace(who, settings=settings)


def statuses(who: Who) -> dict[str, tuple[str, bool, str]]:
    with JobStore(who.state_root, who.email) as store:
        return {
            j.offer.version: (j.status, j.decision.decision.automatic, j.decision.decision.reason)
            if j.decision
            else (j.status, False, "")
            for j in store.received_jobs()
        }


def test_run_config_changes_are_approved_and_code_changes_wait(tmp_path: Path) -> None:
    world = World(tmp_path)
    ds1, agg = with_rules(world, run_config_changes=True), world.who(AGG, accept=())
    collect(ds1)
    first = submit(world.app(), env=world.env, participant=agg.settings)
    assert collect(ds1).automatic == []  # nothing approved before: a person decides
    decide(ds1, first.sent[0].job_id, "approved")

    submit(
        world.app("1.1.0", "num-server-rounds = 2\nlr = 0.2\n"),
        env=world.env,
        participant=agg.settings,
    )
    got = collect(ds1)
    assert [reason for _, reason in got.automatic] == [
        "automatic: only the run config changed since the approved marker-app 1.0.0 "
        f"(job {first.sent[0].job_id})"
    ]
    app = world.app("1.2.0")
    (app / "marker_app" / "task.py").write_text("def steps() -> int:\n    return 4\n")
    submit(app, env=world.env, participant=agg.settings)
    assert collect(ds1).automatic == []
    found = statuses(ds1)
    assert found["1.0.0"][:2] == ("approved", False)
    assert found["1.1.0"][:2] == ("approved", True)
    assert found["1.2.0"] == ("pending", False, "")

    collect(agg)  # the aggregator reads the automatic decision like any other
    with JobStore(agg.state_root, AGG) as store:
        sent = {j.offer.version: j for j in store.submitted_jobs()}
    assert sent["1.1.0"].status == "approved"
    assert sent["1.1.0"].decision is not None and sent["1.1.0"].decision.decision.automatic
    assert markers_written(world.markers) == []


def test_a_rebuild_is_approved_only_under_its_rule(tmp_path: Path) -> None:
    world = World(tmp_path)
    for rules, expected in (({}, "pending"), ({"rebuilds": True}, "approved")):
        ds1 = with_rules(world, **rules)
        collect(ds1)
        old = send_job(world, signed_job(world, built=stored_fab("1.26.1")))
        collect(ds1)
        decide(ds1, old, "approved")
        new = send_job(world, signed_job(world, built=stored_fab("1.42.0")))
        got = collect(ds1)
        with JobStore(ds1.state_root, DS1) as store:
            assert store.received_job(new).status == expected
        if expected == "approved":
            assert got.automatic == [
                (
                    new,
                    "automatic: same files as the approved "
                    f"marker-app 1.0.0 (job {old}), other build",
                )
            ]
        world = World(tmp_path / "again")


def test_a_trusted_signer_is_approved_from_the_first_job(tmp_path: Path) -> None:
    world = World(tmp_path)
    agg = world.who(AGG, accept=())
    fingerprint = SigningIdentity.load_or_create(agg.state_root, AGG).fingerprint
    ds1 = with_rules(world, signers=(fingerprint,))
    collect(ds1)
    sent = submit(world.app(), env=world.env, participant=agg.settings)
    got = collect(ds1)
    assert got.automatic == [
        (sent.sent[0].job_id, f"automatic: signed by a trusted key ({fingerprint})")
    ]
    assert markers_written(world.markers) == []


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            {"rebuild": True},
            "unknown rule 'rebuild' (rules: rebuilds, run_config_changes, signers)",
        ),
        ({"rebuilds": "yes"}, "rebuilds must be true or false, not"),
        ({"signers": "sha256:" + "0" * 64}, "signers must be an array of fingerprints"),
        ({"signers": ["abc"]}, "signers: 'abc' is not a key fingerprint"),
    ],
)
def test_a_bad_rule_is_refused_with_its_fix(tmp_path: Path, table: dict, problem: str) -> None:  # type: ignore[type-arg]
    from syftflwr.config.participant import parse_participant
    from syftflwr.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        parse_participant(
            {"auto_approve": table}, path=tmp_path / "settings.toml", default_state=tmp_path
        )
    assert problem in str(refused.value)
    assert "fix: write [auto_approve]" in str(refused.value)
    assert parse_participant(
        {"auto_approve": {"rebuilds": True}}, path=tmp_path / "s.toml", default_state=tmp_path
    ).auto_approve == AutoApprove(rebuilds=True)
