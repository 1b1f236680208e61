"""Record a run as it goes, and replay a stopped one (``syftflwr run --resume``).

A resumed run re-runs the ServerApp from the start with the stopped run's run id and
random seed, so a deterministic ServerApp sends the same instructions again. The Grid
asks :meth:`RunTracker.match` about each one before sending it; an instruction whose
fingerprint the stopped run journaled is *not* sent again:

* its reply was already given to the ServerApp -> the stored reply, at once;
* the ServerApp had given up waiting for it -> no reply, at once;
* it was still in flight -> the Grid waits for the reply to the original message id
  (re-attach), so the datasite's work is not repeated;
* it was being pushed when the process died -> pushed again with the same message id
  (the datasite's journal answers a duplicate id once).

Stored replies are handed over in the order, and in the batches (``send_and_receive``
or ``pull_messages`` calls), the stopped run's ServerApp got them: a strategy's float sums
depend on that order, so any other order would make the next instruction differ.

Completed rounds therefore replay in the time the server's own code takes (aggregation,
centralised evaluation), with no datasite involved. If the ServerApp sends something the
stopped run did not (a non-deterministic ServerApp), the tracker logs the round that
diverged and the part of the instruction that differs, and stops replaying: from then on
everything is sent normally, never a mix of old replies and new instructions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flwr.app import Message

from syftflwr.flower.checkpoint import RoundCheckpoints
from syftflwr.flower.fingerprint import ArrayDigests, describe_instruction, differing_parts
from syftflwr.flower.progress import FailureEvent, MessageInfo
from syftflwr.flower.run_journal import PushRecord, PushState, RunJournal, RunRecord, RunStatus
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.roles import BlobRef, RequestHandle

log = logging.getLogger("syftflwr.flower")


@dataclass(frozen=True)
class Match:
    """What the stopped run did with an instruction the ServerApp sends again."""

    entry: PushRecord
    reply: Message | None = None
    """The stored reply (``entry.state`` is ``returned``)."""

    @property
    def resend(self) -> bool:
        """Only half-pushed: push again with the same id."""
        return self.entry.state is PushState.PUSHING

    @property
    def in_flight(self) -> bool:
        return self.entry.state is PushState.SENT or (
            self.entry.state is PushState.RETURNED and self.reply is None
        )


@dataclass
class Pending:
    """An instruction the Grid awaits the reply of, sent by this run or replayed from a
    stopped one's journal."""

    handle: RequestHandle
    info: MessageInfo
    group_id: str
    expires_at: float
    report: bool = True
    stored: Message | None = None
    """Replayed from a stopped run's journal: the reply the ServerApp got then."""
    gave_up: bool = False
    """Replayed: the stopped run's ServerApp went on without a reply."""
    unsent: FailureEvent | None = None
    """The send failed (reported once, when pushed); ``stored`` is the error reply."""
    order: int | None = None
    """Where ``stored`` comes in the order of the run's replies (journaled runs)."""
    batch: int | None = None
    """Replayed: the call of the stopped run that handed ``stored`` over."""


def replayed_pending(
    match: Match, handle: RequestHandle, info: MessageInfo, group_id: str
) -> Pending:
    """The pending entry of an instruction the stopped run already sent (not
    ``match.resend``): re-attached to its reply, or answered from the journal."""
    entry = match.entry
    if match.in_flight:
        log.info("resume: re-attached to %s's reply to %s (round %s)", info.datasite,
                 entry.message_id, info.round)  # fmt: skip
        return Pending(handle, info, group_id, entry.expires_at)
    # Answered from the journal, however long ago the stopped run got it.
    return Pending(
        handle,
        info,
        group_id,
        float("inf"),
        stored=match.reply,
        gave_up=entry.state is PushState.GAVE_UP,
        order=entry.reply_seq,
        batch=entry.batch,
    )


def in_reply_order(ids: Sequence[str], pending: Mapping[str, Pending | None]) -> list[str]:
    """``ids`` of stored replies in the order the ServerApp got them (journaled
    position; else as given: the sort is stable)."""

    def order(message_id: str) -> float:
        entry = pending.get(message_id)
        return float("inf") if entry is None or entry.order is None else entry.order

    return sorted(ids, key=order)


class RunTracker:
    """Journals one run's instructions and replies; replays a stopped run's (``replay``)."""

    def __init__(
        self,
        journal: RunJournal,
        run: RunRecord,
        *,
        replay: bool = False,
        checkpoints: RoundCheckpoints | None = None,
    ) -> None:
        self.journal = journal
        self.run = run
        self.checkpoints = checkpoints
        self._lock = threading.Lock()
        self._digests = ArrayDigests()
        self._digest_round: int | None = None
        self._old = journal.pushes(run.run_id) if replay else []
        self._unused: dict[str, PushRecord] = {e.message_id: e for e in self._old}
        self._by_fingerprint: dict[str, list[PushRecord]] = {}
        for entry in self._old:
            self._by_fingerprint.setdefault(entry.fingerprint, []).append(entry)
        self.replaying = bool(self._old)
        self._new: list[str] = []
        """Instructions sent anew while replaying (in rounds the stopped run had not
        finished pushing)."""
        self._seq, self._batch = journal.last_order(run.run_id)
        self.diverged_at: int | None = None
        self.divergence: str | None = None
        """Why the replay diverged (the part of an instruction that differs)."""
        self.replayed = 0
        """Instructions answered from the journal (stored reply or no reply)."""
        self.reattached = 0
        self.replay_seconds: float | None = None
        self._started = time.monotonic()
        if self.replaying:
            rounds = sorted({e.round for e in self._old if e.round is not None})
            log.info(
                "resume: replaying run %d from its journal (%d instructions, rounds %s)",
                run.run_id,
                len(self._old),
                f"{rounds[0]}-{rounds[-1]}" if rounds else "none",
            )

    @property
    def run_id(self) -> int:
        return self.run.run_id

    # -- matching --------------------------------------------------------------------------
    def match(
        self, message: Message, server_round: int | None, datasite: str = ""
    ) -> tuple[str, dict[str, str], Match | None]:
        """The instruction's fingerprint and part digests, and what the stopped run did
        with it (None: send it as new)."""
        with self._lock:
            if server_round != self._digest_round:  # one model per round: cache per round
                self._digests.clear()
                self._digest_round = server_round
            fingerprint, parts = describe_instruction(message, self._digests)
            if not self.replaying:
                return fingerprint, parts, None
            here = server_round or 0
            kind = message.metadata.message_type
            stale = [e for e in self._unused.values() if (e.round or 0) < here]
            if stale:
                self._diverge(here, self._not_sent_again(stale))
                return fingerprint, parts, None
            candidates = [
                e for e in self._by_fingerprint.get(fingerprint, []) if e.message_id in self._unused
            ]
            if not candidates:
                same = [e for e in self._unused.values() if (e.round or 0) == here
                        and e.message_type == kind and e.datasite == datasite]  # fmt: skip
                later = [e for e in self._unused.values() if (e.round or 0) > here]
                if same:
                    self._diverge(here, _difference(same[0], parts))
                elif later:
                    target = datasite or "a datasite"
                    self._diverge(here, f"the ServerApp sent a {kind} instruction to {target} "
                                  "the stopped run never sent, although that run went on to "
                                  f"round {later[0].round}")  # fmt: skip
                else:  # e.g. not pushed yet when the stopped run died: new, not divergent
                    self._new.append(f"{kind} to {datasite or 'a datasite'}")
                return fingerprint, parts, None
            entry = candidates[0]
            del self._unused[entry.message_id]
            if not self._unused:
                self._end_replay()
        return fingerprint, parts, self._resolve(entry)

    def _not_sent_again(self, stale: list[PushRecord]) -> str:
        first = min(stale, key=lambda e: e.seq)
        why = (
            f"{len(stale)} instructions of earlier rounds were not sent again (the first: "
            f"round {first.round}'s {first.message_type} instruction to {first.datasite})"
        )
        if self._new:
            why += f", and it sent some the stopped run did not ({', '.join(self._new[:3])})"
        return (
            why + ": the ServerApp chose other datasites or other work (a random generator "
            "other than Python's and numpy's global ones, or the clock?)"
        )

    def _resolve(self, entry: PushRecord) -> Match:
        reply = None
        if entry.state is PushState.RETURNED:
            data = self.journal.load_reply(self.run_id, entry.message_id)
            if data is not None:
                reply = decode_message(data)
            else:
                log.warning("resume: the stored reply to %s is missing; waiting for it again",
                            entry.message_id)  # fmt: skip
        match = Match(entry, reply)
        if match.in_flight or match.resend:
            self.reattached += 1
        else:
            self.replayed += 1
        return match

    def _diverge(self, server_round: int, why: str) -> None:
        self.replaying = False
        self.diverged_at = server_round
        self.divergence = why
        in_flight = sum(1 for e in self._unused.values() if e.state is PushState.SENT)
        log.warning(
            "resume: round %d diverged from the stopped run: %s; from here on every "
            "instruction is sent anew; %d unanswered instructions of the stopped run are "
            "abandoned",
            server_round,
            why,
            in_flight,
        )
        for entry in self._unused.values():  # a later resume replays only what this run sends
            self.journal.forget_push(self.run_id, entry.message_id)
        self._unused.clear()
        self._end_replay()

    def _end_replay(self) -> None:
        self.replaying = False
        if self.replay_seconds is None:
            self.replay_seconds = time.monotonic() - self._started
            log.info(
                "resume: %d instructions answered from the journal, %d re-attached, in %.2fs; "
                "continuing live",
                self.replayed,
                self.reattached,
                self.replay_seconds,
            )

    # -- recording -------------------------------------------------------------------------
    def observe(self, server_round: int | None, message: Message) -> None:
        """Every instruction pushed (sent or replayed): rounds and checkpoints."""
        if server_round is not None:
            self.journal.set_round(self.run_id, server_round)
        if self.checkpoints is not None:
            self.checkpoints.observe(server_round, message)

    def sent(self, message_id: str) -> None:
        self.journal.mark(self.run_id, message_id, PushState.SENT)

    def send_failed(self, message_id: str) -> None:
        self.journal.forget_push(self.run_id, message_id)

    def new_batch(self) -> int:
        """A number for one call that hands replies to the ServerApp."""
        with self._lock:
            self._batch += 1
            return self._batch

    def returned(self, message_id: str, reply: Message, batch: int | None) -> int:
        """Keep ``reply``, handed over by call ``batch`` (None: with the next call);
        returns its position in the order of this run's replies."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.journal.store_reply(
            self.run_id, message_id, encode_message(reply), reply_seq=seq, batch=batch
        )
        return seq

    def stops_sent(self, stops: Mapping[str, tuple[str, float]]) -> None:
        """The stop messages went out: ``{message id: (datasite, expires_at)}``."""
        self.journal.stops_sent(self.run_id, stops)

    def blob_used(self, ref: BlobRef, message_ids: Sequence[str]) -> None:
        self.journal.blob_used(self.run_id, ref, message_ids)

    def blob_dropped(self, ref: BlobRef) -> None:
        self.journal.blob_dropped(self.run_id, ref.name)

    def gave_up(self, message_id: str) -> None:
        self.journal.mark(self.run_id, message_id, PushState.GAVE_UP)

    def end(self, status: RunStatus) -> None:
        if status is RunStatus.FINISHED and self.checkpoints is not None:
            self.checkpoints.finish()
        if self._unused and status is RunStatus.FINISHED:
            log.warning("resume: the ServerApp ended before sending %d of the stopped run's "
                        "instructions again", len(self._unused))  # fmt: skip
        self.journal.end(self.run_id, status)


def _difference(old: PushRecord, parts: dict[str, str]) -> str:
    """Why an instruction differs from the one the stopped run sent the same datasite,
    in the same round, of the same type: the parts that differ, and what that means."""
    what = f"round {old.round}'s {old.message_type} instruction to {old.datasite}"
    if not old.parts:
        return (
            f"{what} differs from the stopped run's (its journal, written by an older "
            "syftflwr, does not say which part)"
        )
    changed = differing_parts(old.parts, parts)
    arrays = [p.partition(":")[2] for p in changed if p.startswith("arrays:")]
    values = [p.partition(":")[2] for p in changed if p.startswith(("config:", "metrics:"))]
    causes = []
    if values:
        causes.append(
            f"config/metric entries {', '.join(repr(v) for v in values)} differ: the "
            "ServerApp computed other values (the clock, or a random generator other than "
            "Python's and numpy's global ones?)"
        )
    if arrays:
        causes.append(
            f"the arrays of {', '.join(repr(a) for a in arrays)} differ: the ServerApp "
            "computed another model (non-deterministic arithmetic, an unseeded "
            "initialisation, or a strategy that aggregates replies in no fixed order, as "
            "Flower's legacy strategy API does)"
        )
    other = [p for p in changed if not p.startswith(("arrays:", "config:", "metrics:"))]
    if other or not causes:
        causes.append(f"its {', '.join(other) or 'content'} differs")
    return f"{what}: " + "; ".join(causes)
