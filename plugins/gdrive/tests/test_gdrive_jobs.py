"""Apps with consent over the loopback Drive (issue 19): the aggregator submits the
quickstart, each datasite approves it and serves it with ``syftflwr serve``, one round
trains, and the changed app is refused (by the aggregator's run until it is submitted,
by each datasite while it waits for review) — every participant a separate OS process
with its own Google account, encryption on."""

from __future__ import annotations

from pathlib import Path

import pytest
from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.testing.jobs_flow import JobsFederation, jobs_flow_cli

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
AGG = "aggregator@openmined.org"
DATASITES = ("ds1@openmined.org", "ds2@openmined.org")
BUNDLED = b"syftflwr_quickstart/client_app.py"
"""A member name of the quickstart's FAB (a zip): in a stored object, a plaintext bundle."""


@pytest.mark.slow  # ~40-60 s: a syftflwr process per step, one round of training
def test_submit_approve_train_then_changed_app_refused_over_drive(
    drive: tuple[DriveState, str], tmp_path: Path
) -> None:
    state, url = drive
    tokens = {
        email: write_token(tmp_path / "tokens" / f"{email}.json", state.add_user(email))
        for email in (AGG, *DATASITES)
    }
    federation = JobsFederation(
        tmp_path,
        "gdrive",
        AGG,
        DATASITES,
        options=lambda email: {"token_file": str(tokens[email]), "api_root_url": url},
        env={"SYFTFLWR_GDRIVE_POLL_INTERVAL": "0.05", "SYFTFLWR_GDRIVE_MAX_POLL_INTERVAL": "0.2"},
    )
    jobs_flow_cli(federation, QUICKSTART)
    files = list(state.files.values())
    # jobs (the aggregator's) and decisions (each datasite's) went through Drive
    assert {f.owner for f in files if f.name == "syftflwr-jobs"} == {AGG, *DATASITES}
    # every participant wrote only into its own Drive, and no bundle was stored readable
    outboxes = [f for f in files if f.name.startswith("syft_outbox_inbox_")]
    assert all(f.name.startswith(f"syft_outbox_inbox_{f.owner}_to_") for f in outboxes)
    assert not [f.name for f in files if BUNDLED in f.content]
