"""A storage failure while claiming a request leaves the claim marker alone: it may be a
live runner's. Real processes over one local inbox, separate state dirs.

Before, a runner whose claim attempt failed in the storage deleted the marker as if it
had been its own unjournaled claim, and on its retry took the request a live runner was
handling: handled twice.
"""

from __future__ import annotations

from pathlib import Path

from _mailbox_helpers import DS1, Mailbox, wait_for
from _runners import Procs
from faults.syftflwr_faults import Fault

STORAGE_CLAIM = "syftflwr.mailbox.localdir:LocalDirStorage.claim"


def test_a_failed_claim_attempt_leaves_a_live_runners_claim_alone(
    mailbox: Mailbox, procs: Procs, tmp_path: Path
) -> None:
    holder = procs.start(tmp_path / "a-state", fast=False)  # sleeps in its first request
    handle = mailbox.rpc().send(mailbox.request(DS1, b"x", ttl=600))

    def started() -> list[str]:
        return sorted(p.name for p in procs.markers.glob(f"{handle.id}.*.started"))

    assert wait_for(started, timeout=60), "the first runner never started the request"
    other = procs.start(
        tmp_path / "b-state", Fault(STORAGE_CLAIM, "raise", message="claim: disk I/O error"),
        fast=False,
    )  # fmt: skip
    assert wait_for(
        lambda: procs.logged(other.pid, "is claimed by another runner") or len(started()) > 1,
        timeout=60,
    ), "the second runner never tried the request again"
    assert started() == [f"{handle.id}.{holder.pid}.started"], "handled twice"
    assert procs.logged(other.pid, "disk I/O error; trying again")
