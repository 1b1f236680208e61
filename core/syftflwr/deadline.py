"""Deadlines that cross layers which do not know each other.

The aggregator's Grid bounds a whole round by ``--round-timeout``: sending, the wait for
a peer's public key inside the sealing layer, and collecting replies share one budget.
:func:`within` sets it for the code that runs next (a context variable, so it follows
the call into any layer: :func:`remaining` is what the keyring waits for a key);
:func:`call_all_within` runs calls on threads of their own, so even a call that never
returns (a transport plugin blocking in its storage) cannot hold the caller past it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "syftflwr_deadline", default=None
)


@contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Everything in the block honours a deadline ``seconds`` from now (None: none
    added; an enclosing, earlier deadline always wins)."""
    current = _DEADLINE.get()
    if seconds is not None:
        mine = time.monotonic() + max(0.0, seconds)
        current = mine if current is None else min(current, mine)
    token = _DEADLINE.set(current)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining(default: float) -> float:
    """``default``, or less if the current deadline comes sooner (never negative)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


class OverrunError(TimeoutError):
    """A call did not return in time; it goes on in the background (it may never end)."""


@dataclass
class Outcome(Generic[T]):
    """What one call of :func:`call_all_within` came to: a value, an exception, or
    :class:`OverrunError` (then ``late`` receives its value if it ever returns one)."""

    value: T | None = None
    error: BaseException | None = None


def call_all_within(
    calls: Sequence[Callable[[], T]],
    seconds: float | None,
    *,
    name: str,
    late: Callable[[int, T], None] | None = None,
) -> list[Outcome[T]]:
    """Run ``calls`` in parallel on daemon threads (the caller's deadline context carried
    over) and return their outcomes once all returned or ``seconds`` passed. A call still
    running then gets an :class:`OverrunError` outcome; if it returns later, ``late(index,
    value)`` is called from its thread (e.g. to undo what nobody will use). Daemon
    threads: a call that never returns does not keep the process alive either."""
    outcomes: list[Outcome[T]] = [Outcome() for _ in calls]
    finished = [False] * len(calls)
    abandoned = False
    lock = threading.Condition()

    def run(index: int, call: Callable[[], T]) -> None:
        value: T | None = None
        error: BaseException | None = None
        try:
            value = call()
        except BaseException as exc:
            error = exc
        with lock:
            too_late = abandoned
            if not too_late:
                outcomes[index] = Outcome(value, error)
                finished[index] = True
                lock.notify_all()
        if too_late and error is None and late is not None:
            late(index, value)  # type: ignore[arg-type]

    for index, call in enumerate(calls):
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(run, index, call), name=f"syftflwr-{name}", daemon=True
        ).start()
    deadline = None if seconds is None else time.monotonic() + max(0.0, seconds)
    with lock:
        while not all(finished):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            lock.wait(left)
        abandoned = True
        for index, done in enumerate(finished):
            if not done:
                outcomes[index] = Outcome(error=OverrunError(f"{name} did not return within "
                                                        f"{seconds or 0:.1f}s"))  # fmt: skip
    return outcomes
