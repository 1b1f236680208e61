"""Live progress of a federated run: what was sent, what came back, what failed.

The Grid reports every instruction it sends, every reply, and every failure (an error
reply, no reply by the end of a wait, an expired TTL) to a :class:`ProgressReporter`.
:class:`RunRecorder` keeps them per round for summaries and tests; a CLI plugs in its
own reporter for a live display. A ServerApp may publish centralised metrics (e.g. the
accuracy its ``evaluate_fn`` computed) with :func:`report_metrics`; it is a no-op when
nothing listens, so apps stay plain Flower apps.

Rounds come from Flower's ``group_id``, which both strategy APIs set to the round.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

log = logging.getLogger("syftflwr.flower")

FailureKind = Literal["error", "rejected", "timeout", "expired", "invalid", "unsent"]
"""* ``error`` — the datasite answered with a Flower error (its ClientApp raised);
* ``rejected`` — the datasite could not process the message (malformed, refused);
* ``timeout`` — no reply when the caller's wait ended (a late reply may still come);
* ``expired`` — the instruction's TTL passed without a reply (message unavailable);
* ``invalid`` — a reply arrived but failed validation (wrong ids) or had expired;
* ``unsent`` — the instruction could not be sent to that datasite (its public key is
  missing or untrusted, the message is too large, the storage failed)."""


@dataclass(frozen=True)
class MessageInfo:
    """One instruction the Grid sent."""

    datasite: str
    node_id: int
    message_id: str
    message_type: str
    round: int | None
    sent_at: float


@dataclass(frozen=True)
class ReplyEvent:
    info: MessageInfo
    elapsed: float
    """Seconds from sending to receiving the reply."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Scalar metrics of the reply's MetricRecords, as ``record.metric``."""


@dataclass(frozen=True)
class FailureEvent:
    info: MessageInfo
    kind: FailureKind
    detail: str
    waited: float
    """Seconds between sending and noticing the failure."""
    code: int | None = None
    """Flower ``ErrorCode`` carried to the strategy, if any."""

    def describe(self) -> str:
        where = f"round {self.info.round}" if self.info.round is not None else "no round"
        return (
            f"{self.info.datasite} ({where}, {self.info.message_type}): {self.kind} "
            f"after {self.waited:.1f}s — {self.detail}"
        )


@runtime_checkable
class ProgressReporter(Protocol):
    def on_sent(self, info: MessageInfo) -> None: ...

    def on_reply(self, event: ReplyEvent) -> None: ...

    def on_failure(self, event: FailureEvent) -> None: ...

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None: ...


class BaseReporter:
    """No-op reporter to subclass: override only what you display.

    Besides the :class:`ProgressReporter` methods it has the optional
    ``on_picked_up(info)``: the datasite was seen taking that instruction (only on
    transports that can tell, see ``on_picked_up`` in docs/reference/hooks.md)."""

    def on_sent(self, info: MessageInfo) -> None:
        pass

    def on_picked_up(self, info: MessageInfo) -> None:
        pass

    def on_reply(self, event: ReplyEvent) -> None:
        pass

    def on_failure(self, event: FailureEvent) -> None:
        pass

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        pass


class FanOut(BaseReporter):
    """Several reporters as one; a failing reporter is logged, never breaks the run."""

    def __init__(self, reporters: Sequence[ProgressReporter]) -> None:
        self.reporters = list(reporters)

    def _each(self, method: str, *args: object) -> None:
        for reporter in self.reporters:
            call = getattr(reporter, method, None)
            if call is None:  # an optional method this reporter does not have
                continue
            try:
                call(*args)
            except Exception:
                log.exception("progress reporter %r failed in %s", reporter, method)

    def on_sent(self, info: MessageInfo) -> None:
        self._each("on_sent", info)

    def on_picked_up(self, info: MessageInfo) -> None:
        self._each("on_picked_up", info)

    def on_reply(self, event: ReplyEvent) -> None:
        self._each("on_reply", event)

    def on_failure(self, event: FailureEvent) -> None:
        self._each("on_failure", event)

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        self._each("on_metrics", server_round, metrics, source)


@dataclass
class RoundInfo:
    """Everything recorded for one round (``round`` 0: messages without a round)."""

    round: int
    sent: list[MessageInfo] = field(default_factory=list)
    replies: list[ReplyEvent] = field(default_factory=list)
    failures: list[FailureEvent] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    """Centralised metrics published by the ServerApp for this round."""

    @property
    def failed_datasites(self) -> list[str]:
        return sorted({f.info.datasite for f in self.failures})

    def replies_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reply in self.replies:
            counts[reply.info.message_type] = counts.get(reply.info.message_type, 0) + 1
        return counts


class RunRecorder(BaseReporter):
    """Thread-safe record of a run, per round; the Grid always keeps one (``grid.report``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rounds: dict[int, RoundInfo] = {}

    def _round(self, server_round: int | None) -> RoundInfo:
        key = server_round or 0
        if key not in self._rounds:
            self._rounds[key] = RoundInfo(round=key)
        return self._rounds[key]

    def on_sent(self, info: MessageInfo) -> None:
        with self._lock:
            self._round(info.round).sent.append(info)

    def on_reply(self, event: ReplyEvent) -> None:
        with self._lock:
            self._round(event.info.round).replies.append(event)

    def on_failure(self, event: FailureEvent) -> None:
        with self._lock:
            self._round(event.info.round).failures.append(event)

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        with self._lock:
            self._round(server_round).metrics.update(metrics)

    @property
    def rounds(self) -> list[RoundInfo]:
        with self._lock:
            return [self._rounds[k] for k in sorted(self._rounds)]

    @property
    def failures(self) -> list[FailureEvent]:
        return [f for r in self.rounds for f in r.failures]

    @property
    def replies(self) -> list[ReplyEvent]:
        return [e for r in self.rounds for e in r.replies]


@dataclass
class _RoundLine:
    replies: int = 0
    failed: set[str] = field(default_factory=set)
    metrics: dict[str, float] = field(default_factory=dict)


class RoundLines(BaseReporter):
    """One line per finished round (``round 2: 6 replies, accuracy 0.9649, loss
    0.1172``), written when the next round starts and on :meth:`close`: the progress a
    script or a notebook shows instead of Flower's whole INFO log."""

    SHOWN = ("accuracy", "loss")

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._rounds: dict[int, _RoundLine] = {}
        self._current: int | None = None

    def _round(self, server_round: int | None) -> _RoundLine:
        key = server_round or 0
        if self._current is None or key > self._current:
            if self._current is not None:
                self._flush(self._current)
            self._current = key
        return self._rounds.setdefault(key, _RoundLine())

    def _flush(self, key: int) -> None:
        row = self._rounds.pop(key, None)
        if row is None:
            return
        parts = [f"{row.replies} replies"] if row.replies else []
        if row.failed:
            parts.append(f"{len(row.failed)} datasites failed ({', '.join(sorted(row.failed))})")
        parts += [f"{m} {row.metrics[m]:.4f}" for m in self.SHOWN if m in row.metrics]
        if parts:
            self._write(f"{f'round {key}' if key else 'initial'}: {', '.join(parts)}")

    def on_sent(self, info: MessageInfo) -> None:
        with self._lock:
            self._round(info.round)

    def on_reply(self, event: ReplyEvent) -> None:
        with self._lock:
            self._round(event.info.round).replies += 1

    def on_failure(self, event: FailureEvent) -> None:
        with self._lock:
            self._round(event.info.round).failed.add(event.info.datasite)

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        with self._lock:
            self._round(server_round).metrics.update(metrics)

    def close(self) -> None:
        with self._lock:
            for key in sorted(self._rounds):
                self._flush(key)


# --------------------------------------------------------------------------- metrics sink
_SINKS: list[ProgressReporter] = []
_SINKS_LOCK = threading.Lock()


@contextlib.contextmanager
def listening(reporter: ProgressReporter) -> Iterator[None]:
    """Route :func:`report_metrics` calls to ``reporter`` while the block runs."""
    with _SINKS_LOCK:
        _SINKS.append(reporter)
    try:
        yield
    finally:
        with _SINKS_LOCK:
            _SINKS.remove(reporter)


def report_metrics(
    server_round: int, metrics: Mapping[str, float | int], source: str = "server"
) -> None:
    """Publish centralised metrics of ``server_round`` to whoever runs this ServerApp.

    Safe to call from any Flower app: without a listener (``flwr run``) it does nothing.
    """
    clean = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    with _SINKS_LOCK:
        sinks = list(_SINKS)
    for sink in sinks:
        try:
            sink.on_metrics(server_round, clean, source)
        except Exception:
            log.exception("progress reporter %r failed in on_metrics", sink)


# --------------------------------------------------------------------------- across processes
def _info_from(data: Mapping[str, object]) -> MessageInfo:
    return MessageInfo(**data)  # type: ignore[arg-type]


def reply_from(data: Mapping[str, Any]) -> ReplyEvent:
    return ReplyEvent(**{**data, "info": _info_from(data["info"])})


def failure_from(data: Mapping[str, Any]) -> FailureEvent:
    return FailureEvent(**{**data, "info": _info_from(data["info"])})


def round_from(data: Mapping[str, object]) -> RoundInfo:
    return RoundInfo(
        round=int(data["round"]),  # type: ignore[call-overload]
        sent=[_info_from(d) for d in data.get("sent", [])],  # type: ignore[attr-defined]
        replies=[reply_from(d) for d in data.get("replies", [])],  # type: ignore[attr-defined]
        failures=[failure_from(d) for d in data.get("failures", [])],  # type: ignore[attr-defined]
        metrics=dict(data.get("metrics", {})),  # type: ignore[call-overload]
    )


class JsonlReporter(BaseReporter):
    """Writes every progress event as one JSON line (flushed), so a parent process
    (``syftflwr simulate``) can follow an aggregator running in another process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = Path(path).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._lock = threading.Lock()

    def _write(self, event: str, payload: Mapping[str, object]) -> None:
        line = json.dumps({"event": event, **payload}, default=str)
        with self._lock:
            self._file.write(line + "\n")

    def on_sent(self, info: MessageInfo) -> None:
        self._write("sent", {"info": asdict(info)})

    def on_picked_up(self, info: MessageInfo) -> None:
        self._write("picked_up", {"info": asdict(info)})

    def on_reply(self, event: ReplyEvent) -> None:
        self._write("reply", {"data": asdict(event)})

    def on_failure(self, event: FailureEvent) -> None:
        self._write("failure", {"data": asdict(event)})

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        self._write("metrics", {"round": server_round, "metrics": dict(metrics), "source": source})

    def close(self) -> None:
        with self._lock:
            self._file.close()


def replay_line(line: str, reporter: ProgressReporter) -> None:
    """Feed one line written by :class:`JsonlReporter` to ``reporter`` (bad lines are
    skipped: a half-written last line is retried by the caller when complete)."""
    try:
        data = json.loads(line)
        event = data["event"]
        if event == "sent":
            reporter.on_sent(_info_from(data["info"]))
        elif event == "picked_up":
            pick = getattr(reporter, "on_picked_up", None)
            if callable(pick):
                pick(_info_from(data["info"]))
        elif event == "reply":
            reporter.on_reply(reply_from(data["data"]))
        elif event == "failure":
            reporter.on_failure(failure_from(data["data"]))
        elif event == "metrics":
            reporter.on_metrics(int(data["round"]), data["metrics"], str(data["source"]))
    except (ValueError, KeyError, TypeError) as exc:
        log.debug("skipped progress line %r: %s", line[:80], exc)
