"""Trust on first use shared by processes (runners sharing one state dir, a `keys trust`
while a runner runs): no process drops another's remembered key.

Before, remembering a key was a read-modify-write of one JSON file under a thread lock:
two processes could each write back what they had read, dropping the other's new key —
and a dropped key lets a later, different key in as "new"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from syftflwr.crypto.keys import KeyPair
from syftflwr.crypto.trust import TrustStore
from syftflwr.errors import UntrustedKeyError

WORKER = """
import sys, threading
from pathlib import Path
from syftflwr.crypto.keys import KeyPair
from syftflwr.crypto.trust import TrustStore

state, name, peers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = threading.Barrier(4)
statuses = []

def work(t):
    trust = TrustStore(state, {})
    start.wait()
    for i in range(t, peers, 4):
        statuses.append(trust.check(f"{name}-{i}@example.org", KeyPair.generate().public))

threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(sorted(set(statuses)), len(statuses))
"""


def test_processes_remembering_keys_at_once_lose_none(tmp_path: Path) -> None:
    processes, peers = 4, 50
    args = [sys.executable, "-c", WORKER, str(tmp_path)]
    procs = [
        subprocess.Popen([*args, f"p{n}", str(peers)], stdout=subprocess.PIPE, text=True)
        for n in range(processes)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.split() == ["['new']", str(peers)], out
    known = TrustStore(tmp_path, {}).known()
    expected = {f"p{n}-{i}@example.org" for n in range(processes) for i in range(peers)}
    missing = expected - set(known)
    assert not missing, f"{len(missing)} of {len(expected)} remembered keys were dropped"
    # so no impostor key is ever taken as "new" for any of them
    trust = TrustStore(tmp_path, {})
    for email in sorted(expected)[:20]:
        with pytest.raises(UntrustedKeyError):
            trust.check(email, KeyPair.generate().public)
