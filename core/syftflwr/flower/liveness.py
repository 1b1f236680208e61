"""Which datasites are alive, seen from the aggregator: a datasite that picks up its
instruction (the transport reports it, see ``on_picked_up`` in docs/reference/hooks.md)
or answers is running; one that shows no sign of life for a while gets one hint line,
instead of the aggregator waiting in the dark for the whole round timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from syftflwr.flower.progress import MessageInfo, ProgressReporter

log = logging.getLogger("syftflwr.flower")

MAX_QUIET = 30.0
"""Longest silence (seconds) before the hint; shorter for short round timeouts."""


def quiet_period(round_timeout: float | None) -> float:
    """``min(30 s, round_timeout / 4)``: the hint comes well before the round gives up."""
    return MAX_QUIET if not round_timeout else min(MAX_QUIET, round_timeout / 4)


@dataclass
class _Waiting:
    info: MessageInfo
    since: float
    """monotonic time the send began (a send may itself wait, for the peer's key)"""
    picked: bool = False
    announced: bool = False
    """its ``on_sent`` was reported: a pick-up is reported after it, never before"""


class Liveness:
    """Tracks the instructions being sent and the datasites' signs of life (a pick-up,
    a reply). A timer thread logs one line for a datasite that has shown no sign since
    an instruction began to be sent to it ``quiet`` seconds ago — ``no sign of
    ds2@lab.org for 30 s: is `syftflwr run … --as ds2@lab.org` running?`` — once, until
    it shows one. The thread runs only while something is awaited."""

    def __init__(
        self, reporter: ProgressReporter, *, quiet: float, command: str | None = None
    ) -> None:
        self.reporter = reporter
        self.quiet = quiet
        self.command = command or "syftflwr run PROJECT --as {email}"
        self._cond = threading.Condition()
        self._waiting: dict[str, _Waiting] = {}
        self._last_sign: dict[str, float] = {}
        self._hinted: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    def sending(self, info: MessageInfo) -> None:
        """An instruction to ``info.datasite`` is being sent (call before the send)."""
        with self._cond:
            if self._closed:
                return
            self._waiting[info.message_id] = _Waiting(info, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="syftflwr-liveness", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def done(self, message_id: str, *, answered: bool) -> None:
        """No longer awaited: answered (a sign of life), or failed / given up."""
        with self._cond:
            waiting = self._waiting.pop(message_id, None)
            if waiting is not None and answered:
                self._sign(waiting.info.datasite)

    def announced(self, message_id: str) -> None:
        """``on_sent`` was reported for ``message_id``: report a pick-up seen before."""
        with self._cond:
            waiting = self._waiting.get(message_id)
            if waiting is None:
                return
            waiting.announced = True
            picked = waiting.picked
        if picked:
            self._report(waiting.info)

    def picked_up(self, message_id: str) -> None:
        """The transport saw the recipient take ``message_id`` (any thread)."""
        with self._cond:
            waiting = self._waiting.get(message_id)
            if waiting is None or waiting.picked:
                return
            waiting.picked = True
            self._sign(waiting.info.datasite)
            announced = waiting.announced
        if announced:
            self._report(waiting.info)

    def _report(self, info: MessageInfo) -> None:
        pick = getattr(self.reporter, "on_picked_up", None)
        if callable(pick):
            pick(info)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    # -- internals (the caller holds the condition) ---------------------------------
    def _sign(self, email: str) -> None:
        self._last_sign[email] = time.monotonic()
        self._hinted.discard(email)

    def _silent(self) -> list[_Waiting]:
        """Instructions whose datasite has shown no sign since they were sent."""
        return [
            w
            for w in self._waiting.values()
            if not w.picked
            and w.info.datasite not in self._hinted
            and self._last_sign.get(w.info.datasite, float("-inf")) < w.since
        ]

    def _watch(self) -> None:
        while True:
            silent: dict[str, float] = {}
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                due = None
                for waiting in self._silent():
                    at = waiting.since + self.quiet
                    email = waiting.info.datasite
                    if at <= now:
                        silent[email] = max(silent.get(email, 0.0), now - waiting.since)
                    else:
                        due = at if due is None else min(due, at)
                self._hinted.update(silent)
                if not silent:
                    self._cond.wait(None if due is None else due - now)
            for email, waited in sorted(silent.items()):
                log.warning(
                    "no sign of %s for %.0f s: is `%s` running?",
                    email,
                    waited,
                    self.command.replace("{email}", email),
                )
