"""Access-token renewal shared by PROCESSES on one token file (several runners of one
participant, a runner and `syftflwr doctor`): ONE refresh grant for all of them.

Before, renewal was single-flight within a process only: processes whose token went stale
together each spent the refresh token, and once Google rotates it, every grant after the
first is refused (``invalid_grant``) — a runner loses its credentials for nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _gd_tokens import EXPIRED, write_token
from drive_server import DriveState

AGG = "agg@example.org"
WORKER = """
import sys, time
from pathlib import Path
from syftflwr_gdrive.api import DriveAPI, RetryPolicy
from syftflwr_gdrive.auth import TokenFileCredentials
from syftflwr_gdrive.session import whoami

token, url, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
creds = TokenFileCredentials.from_file(token)
api = DriveAPI(creds, root_url=url, policy=RetryPolicy(retries=2, base=0.001, cap=0.01))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
print(whoami(api), creds.refreshes, flush=True)
"""


def test_processes_on_one_token_file_share_one_refresh(
    drive: tuple[DriveState, str], tmp_path: Path
) -> None:
    state, url = drive
    access, refresh = state.add_user(AGG), state.refresh_token_for(AGG)
    state.expire(access)
    token = write_token(tmp_path / "tokens" / f"{AGG}.json", access, refresh_token=refresh,
                        token_uri=url + "token", expiry=EXPIRED)  # fmt: skip
    token.chmod(0o600)
    state.rotate_refresh_tokens = True  # a second grant would spend a revoked token
    state.token_delay = 0.3  # every process asks while the first grant is in flight
    go = tmp_path / "go"
    args = [sys.executable, "-c", WORKER, str(token), url, str(go)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    time.sleep(0.01)
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    assert sorted(o.split()[0] for o in outputs) == [AGG] * 3
    assert state.grants == Counter({"refresh_token": 1})
    assert sorted(int(o.split()[1]) for o in outputs) == [0, 0, 1]  # one refreshed
