"""The quickstart app trained over the loopback Drive: the aggregator and 3 datasites as
separate OS processes (``syftflwr simulate``), each with its own Google account."""

from __future__ import annotations

from pathlib import Path

import pytest
from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.testing.simulate import simulate_cli

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
PARTICIPANTS = (
    "aggregator@openmined.org",
    "ds1@openmined.org",
    "ds2@openmined.org",
    "ds3@openmined.org",
)


@pytest.mark.slow
def test_quickstart_training_over_drive(drive: tuple[DriveState, str], tmp_path: Path) -> None:
    state, url = drive
    for email in PARTICIPANTS:
        write_token(tmp_path / "tokens" / f"{email}.json", state.add_user(email))
    env = {
        "SYFTFLWR_GDRIVE_TOKEN": str(tmp_path / "tokens" / "{email}.json"),
        "SYFTFLWR_GDRIVE_API_ROOT_URL": url,
        "SYFTFLWR_GDRIVE_POLL_INTERVAL": "0.05",
        "SYFTFLWR_GDRIVE_MAX_POLL_INTERVAL": "0.2",
    }
    out = simulate_cli(QUICKSTART, "gdrive", tmp_path, env)
    assert "transport gdrive, 3 datasites" in out
    assert "3 evaluate, 3 train" in out
    # every participant wrote only into its own Drive
    for f in state.files.values():
        if f.name.startswith("syft_outbox_inbox_"):
            assert f.name.startswith(f"syft_outbox_inbox_{f.owner}_to_")
