"""Helpers of the syftbox tests: SyftBox client configs for several participants that
share ONE local data dir (SyftBox's own local simulation), with an explicit loopback
server_url so nothing ever reaches the network."""

from __future__ import annotations

import json
from pathlib import Path

AGG = "aggregator@example.org"
DS1 = "alice@hospital-a.org"
DS2 = "bob@hospital-b.org"
OFFLINE_SERVER = "http://127.0.0.1:1"
"""A port nothing listens on: any request fails at once instead of hanging."""


def write_config(configs: Path, email: str, data_dir: Path) -> Path:
    """A SyftBox client config (the shape the SyftBox client writes) for ``email``."""
    path = configs / email / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"email": email, "data_dir": str(data_dir), "server_url": OFFLINE_SERVER})
    )
    return path
