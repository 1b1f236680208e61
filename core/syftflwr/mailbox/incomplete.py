"""Incomplete requests: a file read while its writer is still writing (sync clients and
syft-rpc write in place) is waited for, up to a grace period from its first sighting,
then refused — one rule for every events role: the mailbox's, and a plugin's own (the
syftbox plugin's ``syft-flwr-0.5`` role). Whether bytes are the start of an object or
garbage is the wire format's call (``WireProfile.incomplete``)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    deadline: float
    next_check: float


class IncompleteRequests(Generic[T]):
    """The requests found incomplete, by key, each with ``item`` (what its re-check
    needs). A source that polls reports a name once, not each time its file grows, so
    the role re-checks the :meth:`due` ones itself: every ``grace / 4`` seconds, and at
    the deadline."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._waiting: dict[str, _Waiting[T]] = {}

    def wait(self, key: str, item: T) -> bool:
        """Whether to wait longer for ``key``, just found incomplete: True until ``grace``
        seconds after its first sighting (a trickle of writes cannot extend that), then
        False — the caller refuses it — and it is forgotten."""
        now = time.monotonic()
        with self._lock:
            waiting = self._waiting.get(key)
            if waiting is None and self.grace > 0:
                self._waiting[key] = _Waiting(item, now + self.grace, now + self.grace / 4)
                return True
            if waiting is not None and now < waiting.deadline:
                return True
            self._waiting.pop(key, None)
            return False

    def forget(self, key: str) -> None:
        """``key`` is complete, gone, or handled otherwise."""
        with self._lock:
            self._waiting.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._waiting

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._waiting)

    def due(self, skip: Container[str] = ()) -> list[tuple[str, T]]:
        """The keys and items to check again now; ``skip``: keys being checked already."""
        now = time.monotonic()
        found = []
        with self._lock:
            for key, waiting in self._waiting.items():
                if waiting.next_check <= now and key not in skip:
                    late = now >= waiting.deadline  # that check is the last: no more
                    waiting.next_check = (
                        math.inf if late else min(waiting.deadline, now + self.grace / 4)
                    )
                    found.append((key, waiting.item))
        return found

    def next_check(self) -> float:
        """When :meth:`due` next has an item (``time.monotonic()``; inf: none waits)."""
        with self._lock:
            return min((w.next_check for w in self._waiting.values()), default=math.inf)
