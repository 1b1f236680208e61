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
@pytest.mark.parametrize("blob_threshold", [None, "0"], ids=["default", "every-model-a-blob"])
def test_quickstart_training_over_drive(
    drive: tuple[DriveState, str], tmp_path: Path, blob_threshold: str | None
) -> None:
    """With ``blob_threshold = 0`` every model the aggregator broadcasts is one sealed
    blob in a folder shared with the sampled datasites, which train from it."""
    state, url = drive
    for email in PARTICIPANTS:
        write_token(tmp_path / "tokens" / f"{email}.json", state.add_user(email))
    env = {
        "SYFTFLWR_GDRIVE_TOKEN": str(tmp_path / "tokens" / "{email}.json"),
        "SYFTFLWR_GDRIVE_API_ROOT_URL": url,
        "SYFTFLWR_GDRIVE_POLL_INTERVAL": "0.05",
        "SYFTFLWR_GDRIVE_MAX_POLL_INTERVAL": "0.2",
        **({"SYFTFLWR_BLOB_THRESHOLD": blob_threshold} if blob_threshold else {}),
    }
    out = simulate_cli(QUICKSTART, "gdrive", tmp_path, env)
    assert "transport gdrive, 3 datasites" in out
    assert "3 evaluate, 3 train" in out
    said = " ".join(out.split())
    blobs = {
        c.file_id: c.snapshot["owners"][0]["emailAddress"]
        for c in state.changes
        if c.snapshot and c.snapshot["name"].endswith(".blob")
    }
    if blob_threshold == "0":  # at most one upload per phase (2 rounds: 4), not 3
        assert "model sent once per phase (shared blob)" in said
        assert 1 <= len(blobs) <= 4 and set(blobs.values()) == {PARTICIPANTS[0]}, blobs
        assert state.notify_requested == []
        assert state.calls_by(PARTICIPANTS[0])["permissions.create"] >= 3
    else:  # the quickstart's model is below the default threshold (1 MiB)
        assert "model inline: no ArrayRecord reached blob_threshold (1 MiB)" in said
        assert not blobs
    # every participant wrote only into its own Drive
    for f in state.files.values():
        if f.name.startswith("syft_outbox_inbox_"):
            assert f.name.startswith(f"syft_outbox_inbox_{f.owner}_to_")
