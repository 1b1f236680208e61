"""Retention never deletes a live claim or a fresh reply of a request that arrives while
it sweeps. Found by the two-runner-process test: the sweep listed the inbox, a request
arrived and was claimed (or answered), then the sweep listed the outbox and read the
claim as one whose request was gone — another runner then handled the request a second
time, or the requester never got its reply. Real local-directory storage; the "concurrent
runner" is a hook that publishes between the sweep's two listings (the interleaving
cannot be produced on demand otherwise)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _mailbox_helpers import AGG, APP, DS1
from syftflwr.envelope import Request, Response, encode_parts
from syftflwr.mailbox import Journal, LocalDirStorage
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.retention import sweep_served

INBOX = Route(AGG, DS1, APP, "echo")


class InterleavingStorage(LocalDirStorage):
    """Runs ``between`` once, right after the first listing a sweep makes."""

    def __init__(self, root: Path, between: Callable[[], None]) -> None:
        super().__init__(root)
        self.between: Callable[[], None] | None = between

    def list(self, folder: str) -> list[str]:
        names = super().list(folder)
        if self.between is not None:
            hook, self.between = self.between, None
            hook()
        return names


@pytest.mark.parametrize("answered", [False, True], ids=["claimed", "answered"])
def test_a_request_arriving_mid_sweep_keeps_its_claim_and_reply(
    tmp_path: Path, answered: bool
) -> None:
    request = Request.new(sender=AGG, recipient=DS1, app=APP, endpoint="echo", body=b"x")
    reply = Response(id=request.id, sender=DS1, recipient=AGG, app=APP, endpoint="echo",
                     body=b"y")  # fmt: skip
    storage: InterleavingStorage

    def another_runner_handles_it() -> None:
        storage.put(INBOX.request_path(request.id), list(encode_parts(request)))
        storage.put(INBOX.claim_path(request.id), [b"host|1|other"])
        if answered:
            storage.put(INBOX.response_path(request.id), list(encode_parts(reply)))

    storage = InterleavingStorage(tmp_path / "root", another_runner_handles_it)
    storage.makedirs(INBOX.folder)
    storage.makedirs(INBOX.reverse().folder)
    journal = Journal(None)
    assert sweep_served(storage, INBOX, journal) == 0
    assert storage.get(INBOX.claim_path(request.id)) is not None
    assert (storage.get(INBOX.response_path(request.id)) is not None) is answered
    # once the requester is done (request gone), the same sweep does clean up
    storage.delete(INBOX.request_path(request.id))
    assert sweep_served(storage, INBOX, journal) == (2 if answered else 1)
    journal.close()


def test_inbox_listing_alone_is_refused(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path / "root")
    with pytest.raises(ValueError, match="outbox is listed first"):
        sweep_served(storage, INBOX, Journal(None), inbox_names=[])
