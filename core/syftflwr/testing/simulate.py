"""``syftflwr simulate`` in a process of its own, as a user runs it — for a transport's
end-to-end test (the quickstart trained over its storage)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def simulate_cli(
    project: Path, transport: str, tmp_path: Path, env: Mapping[str, str], *, rounds: int = 2
) -> str:
    """Run ``syftflwr simulate PROJECT --transport TRANSPORT --rounds ROUNDS`` with ``env``
    over this process's environment (telemetry off, ``SYFTFLWR_HOME`` and the workspace
    in ``tmp_path``); its standard output, after asserting that it succeeded."""
    out = subprocess.run(
        [sys.executable, "-m", "syftflwr", "simulate", str(project), "--transport", transport,
         "--rounds", str(rounds), "--workspace", str(tmp_path / "ws")],
        env={**os.environ, "FLWR_TELEMETRY_ENABLED": "0",
             "SYFTFLWR_HOME": str(tmp_path / "home"), **env},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout
