"""The claim-then-journal window, reproduced deterministically with real processes.

A runner publishes ``{id}.claim`` and only then journals it. Killed in between, it left
a claim that no entry vouched for, so no successor took it over and the request was
never answered. Claims now carry the journal's id (``host|pid|random|journal``): a
runner sharing that journal recognises the orphan (its holder is dead) and adopts it
through an atomic journal insert. The test-only fault seam (tests/faults/README.md)
stops the runner at exactly that point, just before ``Journal.claimed``: ``exit``
(``os._exit(137)`` right after the claim) or ``hang`` (the claim stays live until the
test sends SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from _mailbox_helpers import AGG, APP, DS1, Mailbox, wait_for
from _runners import Procs
from faults.syftflwr_faults import Fault
from syftflwr.mailbox import Journal
from syftflwr.mailbox.layout import Route

INBOX = Route(AGG, DS1, APP, "echo")
AFTER_CLAIM = "syftflwr.mailbox.journal:Journal.claimed"
"""Called right after a runner won a request's claim in storage, to journal it."""


def _claim_holder(mailbox: Mailbox, message_id: str) -> str:
    data = mailbox.storage.get(INBOX.claim_path(message_id))
    return "" if data is None else bytes(data).decode()


def test_a_runner_killed_between_claim_and_journal_is_recovered_on_restart(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    state = tmp_path / "ds1-state"
    crashing = procs.start(state, Fault(AFTER_CLAIM, "exit"))
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"orphan"))
    assert crashing.wait(30) == 137, "the fault hook did not stop the runner after its claim"
    holder = _claim_holder(mailbox, handle.id)
    assert holder.startswith(f"{socket.gethostname()}|{crashing.pid}|"), holder
    journal = Journal(state / "mailbox" / "journal.sqlite")
    try:
        assert journal.state_of(handle.id) is None  # exactly the window: claimed, unjournaled
        assert holder.endswith("|" + journal.instance_id)
    finally:
        journal.close()

    restarted = procs.start(state)
    (response,) = rpc.wait([handle], timeout=30)
    assert response.ok and bytes(response.body) == b"orphan"
    assert procs.handled(restarted.pid) == [handle.id]  # handled once, by the successor
    assert procs.logged(restarted.pid, f"taking over request {handle.id}")
    assert _claim_holder(mailbox, handle.id).startswith(f"{socket.gethostname()}|{restarted.pid}|")


def test_a_live_runner_sharing_the_journal_adopts_the_orphan_at_its_next_sweep(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    """The survivor saw the claim while its holder was alive and backed off; the holder
    is then SIGKILLed before journaling it. Nothing announces the request again: the
    survivor's sweep must notice the dead holder and take the request over."""
    state = tmp_path / "shared-state"
    hanging = procs.start(state, Fault(AFTER_CLAIM, "hang"))
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"contested"))
    assert wait_for(lambda: _claim_holder(mailbox, handle.id), timeout=30)
    survivor = procs.start(state)
    assert wait_for(
        lambda: procs.logged(survivor.pid, f"request {handle.id} is claimed by another runner"),
        timeout=30,
    )
    os.kill(hanging.pid, signal.SIGKILL)
    hanging.wait(10)
    (response,) = rpc.wait([handle], timeout=30)
    assert response.ok and bytes(response.body) == b"contested"
    assert procs.handled(survivor.pid) == [handle.id]
    assert procs.handled(hanging.pid) == []


def test_a_runner_with_its_own_journal_leaves_the_orphan_alone(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    """The claim names another journal: this runner cannot know what its owner did, so
    it never adopts it — the request waits for that journal's runner to come back."""
    crashing = procs.start(tmp_path / "state-a", Fault(AFTER_CLAIM, "exit"))
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"not mine"))
    assert crashing.wait(30) == 137
    other = procs.start(tmp_path / "state-b")
    assert wait_for(
        lambda: procs.logged(other.pid, f"request {handle.id} is claimed by another runner"),
        timeout=30,
    )
    time.sleep(1)  # five sweeps: the orphan must stay untouched
    assert procs.handled(other.pid) == []
    assert rpc.fetch(handle) is None
    owner_back = procs.start(tmp_path / "state-a")
    (response,) = rpc.wait([handle], timeout=30)
    assert response.ok and procs.handled(owner_back.pid) == [handle.id]
