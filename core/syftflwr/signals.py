"""SIGINT and SIGTERM for ``syftflwr run``: a request to stop, from the first line of
syftflwr the interpreter runs, never an exception in the middle of what the process is
doing (click's ``Aborted!`` during start-up, a half-written journal).

A signal is recorded; whoever registered with :meth:`StopRequests.on_stop` is called from
a thread of its own (a datasite runner stops serving, the aggregator's Grid ends the run).
A signal that arrives before anyone registered is not lost: registering later calls back
at once, and start-up code can look at :attr:`StopRequests.signum`. A second signal ends
the process at once (exit ``128 + signal``), for when a clean stop takes too long.

The interpreter's own start-up (before it runs any syftflwr code, ~20-80 ms) is outside
any program's reach: a launcher that must stop its participants at any moment starts them
with both signals blocked (:func:`spawn_blocked`), and :func:`take_over` unblocks them once
the handlers are in place — a signal that came meanwhile is then handled like any other.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def _say(line: str) -> None:
    """One line on stderr, if anyone still reads it (a dead launcher's pipe is broken)."""
    with suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by ``signum``: 130 (SIGINT), 143 (SIGTERM)."""
    return 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopRequests:
    """The stop signals of this process (see the module docstring)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        """The first stop signal received (None: none yet)."""
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[int], None]] = []
        self._seen = 0
        self._pipe: tuple[int, int] | None = None
        self._previous: dict[int, object] = {}

    @property
    def installed(self) -> bool:
        return self._pipe is not None

    def install(self) -> None:
        """Handle SIGINT and SIGTERM here (main thread only; idempotent)."""
        if self._pipe is not None or threading.current_thread() is not threading.main_thread():
            return
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        threading.Thread(target=self._watch, name="syftflwr-signals", daemon=True).start()
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Give the signals back to their earlier handlers (in-process callers, tests)."""
        if self._pipe is None:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        os.close(self._pipe[1])  # ends the watcher thread
        self._pipe = None
        with self._lock:
            self._callbacks.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        # Runs between two bytecodes of the main thread, which may hold any lock: record
        # and hand over to the watcher thread, nothing else.
        if self.signum is None:
            self.signum = signum
        if self._pipe is not None:
            with suppress(OSError):  # the pipe is full: plenty of signals are queued already
                os.write(self._pipe[1], bytes([signum]))

    def _watch(self) -> None:
        assert self._pipe is not None
        read = self._pipe[0]
        try:
            while data := os.read(read, 64):
                for signum in data:
                    self._deliver(signum)
        finally:
            os.close(read)

    def _deliver(self, signum: int) -> None:
        with self._lock:
            self._seen += 1
            first = self._seen == 1
            callbacks = list(self._callbacks)
        if not first:
            _say(f"\n{signal_name(signum)} again: exiting without waiting")
            os._exit(exit_code(signum))
        import logging  # not at import: this module is on the CLI's first milliseconds

        log = logging.getLogger("syftflwr")
        log.info("%s: stopping", signal_name(signum))
        for callback in callbacks:
            try:
                callback(signum)
            except Exception:  # one failing callback must not keep the others from stopping
                log.exception("stopping on %s failed", signal_name(signum))

    @contextmanager
    def handling(self) -> Iterator[StopRequests]:
        """Handle the stop signals for the duration (if ``main`` did not already)."""
        mine = not self.installed
        self.install()
        try:
            yield self
        finally:
            if mine:
                self.restore()

    def request(self, signum: int) -> None:
        """Stop as if ``signum`` had arrived (from any thread)."""
        self._handle(signum, None)

    def on_stop(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(signum)`` on the first stop signal (at once if it came already)."""
        with self._lock:
            self._callbacks.append(callback)
            signum = self.signum if self._seen else None
        if signum is not None:
            callback(signum)


STOP = StopRequests()
"""The stop requests of this process (``syftflwr run`` registers with it)."""

PARENT_ENV = "SYFTFLWR_PARENT_PID"
"""Set by a launcher (``simulate``) whose participants must not outlive it."""
PARENT_GRACE = 3.0
"""Seconds a participant whose launcher died gets to stop cleanly before it exits."""


def watch_parent(pid: int, *, every: float = 0.5, grace: float = PARENT_GRACE) -> None:
    """Stop this process, as on SIGTERM, once process ``pid`` (its launcher) is gone — a
    ``simulate`` killed with ``kill -9`` cannot stop its participants itself — and end it
    ``grace`` seconds later even if stopping hangs (a storage call that never returns)."""
    from syftflwr.processes import pid_alive

    def watch() -> None:
        while pid_alive(pid):
            time.sleep(every)
        _say(f"the process that started this one ({pid}) is gone: stopping")
        STOP.request(signal.SIGTERM)
        time.sleep(grace)
        os._exit(exit_code(signal.SIGTERM))

    threading.Thread(target=watch, name="syftflwr-parent-watch", daemon=True).start()


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand of a ``syftflwr`` command line (root options take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


@contextmanager
def take_over(argv: Sequence[str]) -> Iterator[None]:
    """For ``syftflwr run``: handle the stop signals from here on. For every command:
    unblock them, in case a launcher started this process with them blocked."""
    handle = command_of(argv) == "run"
    if handle:
        STOP.install()
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        if handle:
            STOP.restore()


@contextmanager
def spawn_blocked() -> Iterator[None]:
    """Around starting a ``syftflwr`` child process: it starts with SIGINT and SIGTERM
    blocked (the mask is inherited across exec) and handles one that came during its
    interpreter's start-up as soon as it can. Only this thread's mask changes, and only
    for the duration."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
