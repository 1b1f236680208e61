"""The live progress table and the end-of-run summary of `run` / `simulate`."""

from __future__ import annotations

import io

import click
import pytest
from rich.console import Console
from syftflwr.cli._live import LiveProgress, exit_status, parse_assignments, print_summary
from syftflwr.flower.progress import FailureEvent, MessageInfo, ReplyEvent, RunRecorder
from syftflwr.flower.results import RunResult


def info(datasite: str, rnd: int, kind: str = "train") -> MessageInfo:
    return MessageInfo(datasite, 1, f"id-{datasite}-{rnd}-{kind}", kind, rnd, 0.0)


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=140, color_system=None), out


def recorded_run() -> RunResult:
    rec = RunRecorder()
    for rnd in (1, 2):
        for ds in ("ds1@x.org", "ds2@x.org"):
            rec.on_sent(info(ds, rnd))
        rec.on_reply(ReplyEvent(info("ds1@x.org", rnd), 0.5))
        rec.on_failure(FailureEvent(info("ds2@x.org", rnd), "timeout", "no reply [late]", 3.0))
        rec.on_metrics(rnd, {"accuracy": 0.9 + rnd / 100}, "server")
    return RunResult(
        transport="fsspec-local",
        aggregator="agg@x.org",
        datasites=("ds1@x.org", "ds2@x.org"),
        rounds=rec.rounds,
        failures=rec.failures,
        stop_acks={"ds1@x.org": True, "ds2@x.org": False},
        duration=4.2,
    )


def cells_of(frame: str, start: str) -> list[str]:
    """The cells of the first table row of ``frame`` whose first cell is ``start``."""
    for line in frame.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").replace("┃", "│").split("│")]
        if cells and cells[0] == start:
            return cells
    raise AssertionError(f"no row {start!r} in:\n{frame}")


def test_live_table_follows_the_run() -> None:
    con, out = console()
    with LiveProgress(con, datasites=("ds1@x.org", "ds2@x.org", "ds3@x.org")) as live:
        for ds in ("ds1@x.org", "ds2@x.org", "ds3@x.org"):
            live.on_sent(info(ds, 1))
        live.on_picked_up(info("ds1@x.org", 1))
        live.on_picked_up(info("ds2@x.org", 1))
        live.on_reply(ReplyEvent(info("ds1@x.org", 1), 0.2))
        live.on_failure(FailureEvent(info("ds2@x.org", 1), "error", "boom", 0.3))
        live.on_metrics(1, {"accuracy": 0.9731, "loss": 0.1}, "server")
    text = out.getvalue()
    assert "federated run (3 datasites)" in text
    final = text.rsplit("federated run", 1)[1]  # the last frame the display drew
    assert cells_of(final, "1") == ["1", "3", "1", "ds2@x.org", "0.9731", "0.1000"]
    # per datasite: sent, picked up, answered, failed (ds3 never picked its message up)
    assert cells_of(final, "datasite") == ["datasite", "sent", "picked up", "answered", "failed"]
    assert cells_of(final, "ds1@x.org") == ["ds1@x.org", "1", "1", "1", "-"]
    assert cells_of(final, "ds2@x.org") == ["ds2@x.org", "1", "1", "-", "1"]
    assert cells_of(final, "ds3@x.org") == ["ds3@x.org", "1", "-", "-", "-"]


def test_summary_names_every_failure_and_missing_stop_ack() -> None:
    con, out = console()
    result = recorded_run()
    print_summary(con, result, title="demo")
    text = out.getvalue()
    assert "ds2@x.org (round 1, train): timeout after 3.0s — no reply [late]" in text
    assert "ds2@x.org (round 2, train): timeout" in text
    assert "no stop acknowledgement from: ds2@x.org" in text
    assert "final accuracy 0.9200" in text


def test_failures_are_never_success_unless_tolerated() -> None:
    con, out = console()
    result = recorded_run()
    assert exit_status(result, allow_failures=False, console=con) == 1
    assert "--allow-failures" in out.getvalue()
    assert exit_status(result, allow_failures=True, console=con) == 0
    result.error = "Traceback ..."
    assert exit_status(result, allow_failures=True, console=con) == 1


def test_assignments_are_toml_scalars_or_strings() -> None:
    parsed = parse_assignments(("a=3", "b=0.5", "c=true", 'd="x y"', "e=plain text"), "--x")
    assert parsed == {"a": 3, "b": 0.5, "c": True, "d": "x y", "e": "plain text"}
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_assignments(("novalue",), "--run-config")
