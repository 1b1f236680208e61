"""Crash recovery: what a runner does with a request a crashed runner of its journal left
behind — never handling it twice, never leaving its requester without a reply.

* Taken over from a dead runner (:class:`~syftflwr.mailbox.claims.Claims`) with its reply
  already published (killed between publishing and journaling it): marked answered,
  not handled again.
* Answered (or refused with a reply) by the journal, but the reply is missing from
  storage — lost in a crash or by a sync client — while the request is still in the
  inbox: answered again from the journal: the kept reply (replies up to
  :data:`~syftflwr.mailbox.replies.KEEP_REPLY_LIMIT`) or the recorded refusal is
  published again; a larger reply, which the journal does not keep, is recomputed by
  handling the request again. Only one reply object can exist per request id, so the
  requester never receives two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from syftflwr.mailbox.claims import Claims
from syftflwr.mailbox.journal import InboundEntry, InboundState
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.replies import Replies

log = logging.getLogger("syftflwr.mailbox")


def reply_may_be_lost(entry: InboundEntry) -> bool:
    """A finished request whose reply should still be in storage (retention has not
    removed it on purpose)."""
    if entry.cleaned:
        return False
    if entry.state is InboundState.ANSWERED:
        return True
    return entry.state is InboundState.REJECTED and entry.status == "error"


@dataclass(frozen=True, slots=True)
class Recovery:
    """One runner's recovery, through its claims (journal, owner, ``stats``: recovered,
    republished, reprocessed, skipped) and its replies."""

    claims: Claims
    replies: Replies

    def answered_before_crash(self, route: Route, message_id: str) -> bool:
        """For a request just taken over: whether its crashed runner had published its
        reply (then it is journaled answered: handling it again would apply it twice)."""
        if not self.replies.present(route, message_id):
            return False
        log.warning(
            "request %s was answered before its runner stopped; not handling it again",
            message_id,
        )
        self.claims.recovered(message_id)
        return True

    def answer_again(self, route: Route, entry: InboundEntry) -> bool:
        """A finished request is still in my inbox: publish its reply again if it was
        lost. True when the journal kept no reply: the request is reopened and claimed
        by this runner, for the caller to handle again."""
        if self.replies.present(route, entry.id):
            self.claims.stats["skipped"] += 1
            return False
        if entry.state is InboundState.REJECTED:
            self.replies.refuse(route, entry.id, entry.detail or "refused")
            log.warning("request %s: its error reply was lost; published it again", entry.id)
            self.claims.stats["republished"] += 1
            return False
        kept = self.claims.journal.stored_reply(entry.id)
        if kept is not None:
            self.replies.publish_encoded(route, entry.id, [kept])
            log.warning(
                "request %s: its reply was lost; published it again from the journal", entry.id
            )
            self.claims.stats["republished"] += 1
            return False
        if not self.claims.journal.reopen(entry.id, owner=self.claims.owner):
            return False  # another runner of this journal is on it
        log.warning(
            "request %s: its reply was lost and is too large to have been kept; "
            "handling the request again",
            entry.id,
        )
        self.claims.storage.put(route.claim_path(entry.id), [self.claims.owner.encode()])
        self.claims.stats["reprocessed"] += 1
        return True
