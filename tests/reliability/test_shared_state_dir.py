"""Runners sharing one state dir (the documented "several runners on one inbox" setup):
real processes, real files, one journal.

Before, journal writes failed at once with "database is locked" under this load, and a
request whose ``claimed`` write failed kept its claim with no journal entry: no runner
ever handled it while its claimer lived. Now the journal never fails under contention,
and a claim that cannot be journaled is released and tried again.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from _mailbox_helpers import AGG, APP, DS1, Mailbox, wait_for
from _runners import Procs, collect
from faults.syftflwr_faults import Fault
from syftflwr.mailbox.layout import Route

CLAIMED = "syftflwr.mailbox.journal:Journal.claimed"
INBOX = Route(AGG, DS1, APP, "echo")


def test_three_runners_sharing_a_state_dir_lose_nothing(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    state = tmp_path / "ds1-state"
    for _ in range(3):
        procs.start(state)
    rpc = mailbox.rpc()
    handles = [rpc.send(mailbox.request(DS1, os.urandom(1024), ttl=600)) for _ in range(3000)]
    responses = collect(rpc, handles, timeout=180)
    lost = [h.id for h in handles if h.id not in responses]
    assert not lost, f"{len(lost)} of 3000 requests never answered, e.g. {lost[:3]}"
    assert all(r.ok for r in responses.values())
    handled = Counter(procs.all_handled())
    assert set(handled) == {h.id for h in handles}
    assert max(handled.values()) == 1  # each handled by exactly one runner
    assert procs.lines("WARNING") == [] and procs.lines("ERROR") == []


def test_a_claim_whose_journal_write_fails_is_released_and_answered(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    """The fault seam makes the ``claimed`` write fail once (as "database is locked"
    did): the claim is given back, a runner answers within 5 s, one warning says so."""
    state = tmp_path / "ds1-state"
    fired = tmp_path / "fired"
    locked = f"mailbox journal {state}/mailbox/journal.sqlite: database is locked"
    procs.start(state, Fault(CLAIMED, "raise", message=locked, mark=str(fired)))
    rpc = mailbox.rpc()
    handles = [rpc.send(mailbox.request(DS1, b"x" * 1024, ttl=600)) for _ in range(20)]
    assert wait_for(fired.exists, timeout=60), "the runner never reached a claim"
    procs.start(state)  # a second runner sharing the state dir joins
    responses = collect(rpc, handles, timeout=60)
    missing = {h.id for h in handles} - set(responses)
    assert not missing, f"never answered after the failed journal write: {missing}"
    assert Counter(procs.all_handled()) == Counter({h.id: 1 for h in handles})
    (warning,) = procs.lines("WARNING")
    assert "could not journal its claim" in warning and "database is locked" in warning
    assert "released the claim" in warning
    failed = warning.split("request ", 1)[1].split(":", 1)[0]
    reply = mailbox.root / INBOX.response_path(failed)  # published (renamed) once, whole
    assert reply.stat().st_mtime - fired.stat().st_mtime <= 5, "answered later than 5 s"
