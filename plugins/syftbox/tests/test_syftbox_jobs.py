"""Apps with consent over syftbox (issue 19): the aggregator submits the quickstart,
each datasite approves it and serves it with ``syftflwr serve``, one round trains, and the
changed app is refused (by the aggregator's run until it is submitted, by each datasite
while it waits for review) — every participant a separate OS process with its own
SyftBox client config, all sharing one data dir, encryption on. Jobs travel only with
the native profile: ``submit`` under syft-flwr-0.5 stops with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit
from _sb_helpers import outbox_dir, plaintext_layers, write_config
from syftflwr.testing.jobs_flow import JobsFederation, jobs_flow_cli

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
BUNDLED = b"syftflwr_quickstart/client_app.py"
"""A member name of the quickstart's FAB (a zip): in a stored file, a plaintext bundle."""


def federation(tmp_path: Path) -> JobsFederation:
    def options(email: str) -> dict[str, str]:
        return {"config_path": str(write_config(tmp_path / "configs", email, tmp_path / "SyftBox"))}

    return JobsFederation(tmp_path, "syftbox", AGG, DATASITES, options=options)


@pytest.mark.slow  # ~40-60 s: a syftflwr process per step, one round of training
def test_submit_approve_train_then_changed_app_refused_over_syftbox(tmp_path: Path) -> None:
    jobs_flow_cli(federation(tmp_path), QUICKSTART)
    # jobs went out through the aggregator's datasite, decisions through each datasite's
    for sender, recipient in [*((AGG, ds) for ds in DATASITES), *((ds, AGG) for ds in DATASITES)]:
        assert (outbox_dir(tmp_path / "SyftBox", sender, recipient) / "syftflwr-jobs").is_dir()
    # and no bundle lies readable in the data dir, through any layer of base64
    files = [p for p in (tmp_path / "SyftBox").rglob("*") if p.is_file()]
    assert [p for p in files if "syftflwr-jobs" in p.parts and p.suffix == ".request"]
    assert not [p for p in files if any(BUNDLED in x for x in plaintext_layers(p.read_bytes()))]


def test_submit_under_the_syftflwr05_profile_exits_2_with_its_fix(tmp_path: Path) -> None:
    fed = federation(tmp_path)
    fed.write_settings(AGG)
    app = fed.quickstart(QUICKSTART)
    project = tomlkit.parse((app / "pyproject.toml").read_text())
    project["tool"]["syftflwr"]["profile"] = "syft-flwr-0.5"
    project["tool"]["syftflwr"]["encryption"] = False
    (app / "pyproject.toml").write_text(tomlkit.dumps(project))
    refused = fed.cli(AGG, "submit", str(app))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "jobs travel only with the native wire profile" in refused.stderr, refused.stderr
    assert "'syft-flwr-0.5', which cannot carry a job's FAB hash" in refused.stderr
    assert "fix: submit from a project with the native profile" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not list((tmp_path / "SyftBox").rglob("*.request"))  # nothing was sent
