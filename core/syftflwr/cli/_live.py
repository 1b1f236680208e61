"""Live progress and end-of-run summaries for ``run`` (aggregator) and ``simulate``."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from syftflwr.flower.progress import BaseReporter, FailureEvent, MessageInfo, ReplyEvent
from syftflwr.flower.results import RunResult

SHOWN_METRICS = ("accuracy", "loss")
SITE_COLUMNS = ("sent", "picked up", "answered", "failed")


def parse_assignments(values: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``key=value`` flags; values are TOML scalars (``3``, ``0.1``, ``true``, ``"x"``) or
    plain strings."""
    parsed: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        parsed[key.strip()] = value
    return parsed


class LiveProgress(BaseReporter):
    """A live view: one line per round (sent, replies, failures, latest metrics) and one
    per datasite (sent, picked up, answered, failed), so a datasite that is not running
    shows as instructions sent and never picked up."""

    def __init__(self, console: Console, datasites: Sequence[str]) -> None:
        self.console = console
        self.datasites = list(datasites)
        self._lock = threading.Lock()
        self._rows: dict[int, dict[str, Any]] = {}
        self._sites: dict[str, dict[str, int]] = {e: self._site_row() for e in self.datasites}
        self._live = Live(self._view(), console=console, refresh_per_second=4, transient=False)

    @staticmethod
    def _site_row() -> dict[str, int]:
        return dict.fromkeys(SITE_COLUMNS, 0)

    def _row(self, server_round: int | None) -> dict[str, Any]:
        key = server_round or 0
        return self._rows.setdefault(key, {"sent": 0, "replies": 0, "failed": set(), "metrics": {}})

    def _site(self, email: str) -> dict[str, int]:
        return self._sites.setdefault(email, self._site_row())

    def _view(self) -> Group:
        return Group(self._table(), self._site_table())

    def _table(self) -> Table:
        table = Table(title=f"federated run ({len(self.datasites)} datasites)", expand=False)
        for column in ("round", "sent", "replies", "failed datasites", *SHOWN_METRICS):
            table.add_column(column, justify="right" if column != "failed datasites" else "left")
        for key in sorted(self._rows):
            row = self._rows[key]
            metrics = row["metrics"]
            table.add_row(
                str(key) if key else "init/eval",
                str(row["sent"]),
                str(row["replies"]),
                ", ".join(sorted(row["failed"])) or "-",
                *(f"{metrics[m]:.4f}" if m in metrics else "-" for m in SHOWN_METRICS),
            )
        return table

    def _site_table(self) -> Table:
        table = Table(expand=False)
        table.add_column("datasite")
        for column in SITE_COLUMNS:
            table.add_column(column, justify="right")
        for email, row in self._sites.items():
            table.add_row(email, *(str(row[c]) if row[c] else "-" for c in SITE_COLUMNS))
        return table

    def _refresh(self) -> None:
        self._live.update(self._view())

    def on_sent(self, info: MessageInfo) -> None:
        with self._lock:
            self._row(info.round)["sent"] += 1
            self._site(info.datasite)["sent"] += 1
            self._refresh()

    def on_picked_up(self, info: MessageInfo) -> None:
        with self._lock:
            self._site(info.datasite)["picked up"] += 1
            self._refresh()

    def on_reply(self, event: ReplyEvent) -> None:
        with self._lock:
            self._row(event.info.round)["replies"] += 1
            self._site(event.info.datasite)["answered"] += 1
            self._refresh()

    def on_failure(self, event: FailureEvent) -> None:
        with self._lock:
            self._row(event.info.round)["failed"].add(event.info.datasite)
            self._site(event.info.datasite)["failed"] += 1
            self._refresh()

    def on_metrics(self, server_round: int, metrics: Mapping[str, float], source: str) -> None:
        with self._lock:
            self._row(server_round)["metrics"].update(metrics)
            self._refresh()

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)


def protection(encryption: str | None) -> str:
    """The summary's phrase for :attr:`RunResult.encryption` (what the roles did)."""
    if encryption is None:
        return "encryption not known (the run ended before it connected)"
    if encryption == "core":
        return "end-to-end encrypted"
    if encryption:
        return f"end-to-end encrypted by {encryption}"
    return "[yellow]NOT encrypted[/] (encryption = false)"


def print_summary(console: Console, result: RunResult, *, title: str) -> None:
    table = Table(title=title)
    for column in ("round", "replies", "failures", *SHOWN_METRICS):
        table.add_column(column, justify="right")
    for info in result.rounds:
        counts = info.replies_by_type()
        table.add_row(
            str(info.round) if info.round else "init/eval",
            ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "-",
            str(len(info.failures)) if info.failures else "-",
            *(f"{info.metrics[m]:.4f}" if m in info.metrics else "-" for m in SHOWN_METRICS),
        )
    console.print(table)
    console.print(
        f"transport [bold]{result.transport}[/], {len(result.datasites)} datasites, "
        + protection(result.encryption)
        + (f", {escape(result.broadcast)}" if result.broadcast else "")
        + f", {result.duration:.1f}s"
        + (
            f", final accuracy [bold]{result.accuracy:.4f}[/]"
            if result.accuracy is not None
            else ""
        )
    )
    for line in result.describe_failures():
        console.print(f"[red]failed:[/] {escape(line)}", highlight=False)
    missing = [email for email, ok in result.stop_acks.items() if not ok]
    if missing:
        console.print(f"[yellow]no stop acknowledgement from:[/] {', '.join(missing)}")
    if result.error:
        console.print("[red]the run failed:[/]")
        console.print(result.error, markup=False, highlight=False)


def print_saved(console: Console, path: Path) -> None:
    """Where the result file is (``syftflwr report PATH --plot out.png`` reads it)."""
    console.print(f"result: {escape(str(path))}", highlight=False, soft_wrap=True)


def exit_status(result: RunResult, allow_failures: bool, console: Console) -> int:
    """0 only for a clean run, or a run with failed replies the user chose to tolerate."""
    if result.error:
        return 1
    if result.failures and not allow_failures:
        console.print(
            f"[red]{len(result.failures)} failed or missing replies[/] (exit 1; pass "
            "--allow-failures to accept a run with failed replies)"
        )
        return 1
    return 0
