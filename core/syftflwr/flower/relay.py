"""The participants' output under ``simulate`` in processes.

Each participant's stdout and stderr are read through pipes, line by line: every line
goes to its log file (``<workspace>/logs/<email>.log``, both streams, as written), and
to a sink that decides what reaches the person running the simulation, prefixed by
participant (the CLI shows everything the aggregator writes and the datasites' errors).
Levels of stderr lines come from :class:`syftflwr.logs.LineLevels`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from rich.console import Console
from rich.text import Text

from syftflwr.logs import LineLevels

Role = Literal["aggregator", "datasite"]
Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class OutputLine:
    """One line a participant wrote (without its newline)."""

    participant: str
    role: Role
    stream: Stream
    level: int
    """Its log level for stderr (a traceback's lines are errors); INFO for stdout."""
    text: str


Sink = Callable[[OutputLine], None]


class ProcessLike(Protocol):
    """A participant process: ``subprocess.Popen`` or one the fork server forked."""

    pid: int
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None
    returncode: int | Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class Relay:
    """Reads the output of participant processes into log files and a sink, one
    thread per pipe (a participant blocked on a full pipe would stall the run)."""

    def __init__(self, logs: Path, sink: Sink | None = None) -> None:
        self.logs = logs
        self.sink = sink
        self._threads: list[threading.Thread] = []
        self._files: list[IO[bytes]] = []

    def log_path(self, email: str) -> Path:
        return self.logs / f"{email}.log"

    def attach(self, email: str, role: Role, proc: ProcessLike) -> None:
        """Follow ``proc``'s piped stdout and stderr until they close."""
        out = self.log_path(email).open("ab")
        self._files.append(out)
        lock = threading.Lock()
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if pipe is None:
                continue
            thread = threading.Thread(
                target=self._follow,
                args=(email, role, stream, pipe, out, lock),
                name=f"syftflwr-relay-{email}-{stream}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _follow(
        self,
        email: str,
        role: Role,
        stream: Stream,
        pipe: IO[bytes],
        out: IO[bytes],
        lock: threading.Lock,
    ) -> None:
        levels = LineLevels()
        with pipe:
            for raw in iter(pipe.readline, b""):
                with lock:
                    out.write(raw)
                    out.flush()
                if self.sink is None:
                    continue
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                level = levels.level(text) if stream == "stderr" else logging.INFO
                try:
                    self.sink(OutputLine(email, role, stream, level, text))
                except Exception:  # a broken display must not stall the participant
                    logging.getLogger("syftflwr.flower").exception("output relay failed")

    def close(self, timeout: float = 5.0) -> None:
        """Wait for the pipes to be drained (the processes have ended), close the logs.
        A pipe kept open by a process's own children is given up after ``timeout``."""
        for thread in self._threads:
            thread.join(timeout)
        for handle in self._files:
            handle.close()


# --------------------------------------------------------------------------- display
def short_labels(emails: Iterable[str]) -> dict[str, str]:
    """``ds2`` for ``ds2@lab.org`` when no other participant has that local part."""
    emails = list(emails)
    locals_ = [e.partition("@")[0] for e in emails]
    return {e: (p if locals_.count(p) == 1 else e) for e, p in zip(emails, locals_, strict=True)}


def is_problem(line: OutputLine) -> bool:
    """The aggregator's warnings and errors, a datasite's errors (a datasite's warnings
    stay in its log: what it refuses is the aggregator's concern only when it fails)."""
    return line.level >= (logging.WARNING if line.role == "aggregator" else logging.ERROR)


def aggregator_and_problems(line: OutputLine) -> bool:
    """The CLI's choice: all the aggregator writes (its ServerApp's prints, Flower's
    log) and the datasites' errors."""
    return line.role == "aggregator" or is_problem(line)


def prints_and_problems(line: OutputLine) -> bool:
    """The Python API's choice: the ServerApp's prints and the problems (a notebook gets
    a progress line per round instead of Flower's INFO log)."""
    return (line.role == "aggregator" and line.stream == "stdout") or is_problem(line)


STYLES = {logging.ERROR: "red", logging.WARNING: "yellow"}


def printer(
    console: Console, participants: Mapping[str, Role], show: Callable[[OutputLine], bool]
) -> Sink:
    """A sink printing the lines ``show`` picks as ``label | text``."""
    labels = short_labels(participants)
    width = max(map(len, labels.values()), default=0)

    def sink(line: OutputLine) -> None:
        if not show(line):
            return
        text = Text(f"{labels.get(line.participant, line.participant):<{width}} | ", style="dim")
        text.append(line.text, style=STYLES.get(min(line.level, logging.ERROR), ""))
        console.print(text, soft_wrap=True, highlight=False)

    return sink
