"""``syftflwr jobs``: collect and list jobs (both roles), review one, decide, and say
whom you accept jobs from (docs/jobs.md)."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from syftflwr.cli._output import echo_json, make_console, print_table
from syftflwr.jobs.review import (
    Collected,
    Decided,
    Review,
    Who,
    collect,
    decide,
    review,
    trust,
    who_am_i,
)
from syftflwr.jobs.store import JobStore, ReceivedJob, SubmittedJob

F = TypeVar("F", bound=Callable[..., Any])


def _as(func: F) -> F:
    return click.option(
        "--as",
        "email",
        metavar="EMAIL",
        help="Who you are (default: SYFTFLWR_EMAIL, then your settings file).",
    )(func)


def _transport(func: F) -> F:
    return click.option(
        "--transport",
        help="Transport name (default: SYFTFLWR_TRANSPORT, else auto-detection).",
    )(func)


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


@click.group(invoke_without_command=True)
@_as
@_transport
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--live",
    is_flag=True,
    help="Keep collecting and show the jobs you submitted as datasites answer, until "
    "every one is decided or refused (Ctrl-C stops).",
)
@click.pass_context
def jobs(
    ctx: click.Context, email: str | None, transport: str | None, as_json: bool, live: bool
) -> None:
    """Collect and list jobs: the apps sent to you for review, and those you submitted.

    Without a subcommand: receive what has arrived (jobs from the senders you accept,
    decisions on your jobs), then list both. Review a job with `jobs show ID`, decide
    with `jobs approve ID` or `jobs reject ID --reason TEXT`. Jobs from anyone not in
    your settings' accept_jobs_from (or added with `jobs trust EMAIL`) are never read.
    """
    if ctx.invoked_subcommand is not None:
        return
    who = who_am_i(email, transport=transport)
    if live:
        ctx.exit(_live(who))
    collected = collect(who)
    with JobStore(who.state_root, who.email) as store:
        received = store.received_jobs()
        submitted = store.submitted_jobs()
    if as_json:
        echo_json(_listing_json(who, collected, received, submitted))
        return
    _print_listing(make_console(), who, collected, received, submitted)


def _submitted_status(job: SubmittedJob, collected: Collected) -> str:
    if job.decision is not None:
        reason = job.decision.decision.reason
        return f"{job.status}: {reason}" if reason else job.status
    refused = collected.replies.get(job.job_id)
    if refused is not None:
        return refused
    return job.status


def _listing_json(
    who: Who,
    collected: Collected,
    received: list[ReceivedJob],
    submitted: list[SubmittedJob],
) -> dict[str, Any]:
    return {
        "email": who.email,
        "received": [
            {
                "job": j.job_id,
                "from": j.offer.aggregator,
                "app": j.offer.app,
                "version": j.offer.version,
                "fab_hash": j.offer.fab_hash,
                "size": j.fab_size,
                "received_at": j.received_at,
                "rollback": j.offer.rollback,
                "status": j.status,
                "reason": j.decision.decision.reason if j.decision else None,
            }
            for j in received
        ],
        "submitted": [
            {
                "job": j.job_id,
                "datasite": j.offer.datasite,
                "app": j.offer.app,
                "version": j.offer.version,
                "fab_hash": j.offer.fab_hash,
                "sent_at": j.sent_at,
                "status": j.status if j.job_id not in collected.replies else "refused",
                "reason": (
                    j.decision.decision.reason if j.decision else collected.replies.get(j.job_id)
                ),
            }
            for j in submitted
        ],
        "refused": [
            {"job": job_id, "from": sender, "reason": reason}
            for job_id, sender, reason in collected.refused
        ],
        "ignored": dict(collected.ignored),
    }


def _print_listing(
    console: Console,
    who: Who,
    collected: Collected,
    received: list[ReceivedJob],
    submitted: list[SubmittedJob],
) -> None:
    for job_id, sender, reason in collected.refused:
        console.print(f"refused job {job_id} from {sender}: {reason}", highlight=False)
    for sender, count in sorted(collected.ignored.items()):
        console.print(
            f"left {count} request(s) from {sender} unread: not accepted "
            f"(`syftflwr jobs trust {sender}` accepts them)",
            highlight=False,
        )
    if received:
        console.print(f"jobs received by {who.email}:", highlight=False)
        table = _table("job", "from", "app", "version", "FAB hash", "size", "received (UTC)",
                       "status")  # fmt: skip
        for r in received:
            reason = r.decision.decision.reason if r.decision else ""
            table.add_row(
                r.job_id,
                r.offer.aggregator,
                r.offer.app,
                r.offer.version + (" (rollback)" if r.offer.rollback else ""),
                r.offer.fab_hash[:16],
                _size(r.fab_size),
                _when(r.received_at),
                f"{r.status}: {reason}" if reason else r.status,
            )
        print_table(console, table)
    if submitted:
        console.print(f"jobs submitted by {who.email}:", highlight=False)
        print_table(console, _submitted_table(submitted, collected))
    if not received and not submitted:
        console.print(f"no jobs yet for {who.email}", highlight=False)


def _submitted_table(submitted: list[SubmittedJob], collected: Collected) -> Table:
    table = _table("job", "datasite", "app", "version", "FAB hash", "sent (UTC)", "status")
    for s in submitted:
        table.add_row(
            s.job_id,
            s.offer.datasite,
            s.offer.app,
            s.offer.version,
            s.offer.fab_hash[:16],
            _when(s.sent_at),
            _submitted_status(s, collected),
        )
    return table


LIVE_INTERVAL = 2.0
"""Seconds between two collections of ``syftflwr jobs --live``."""


def _live(who: Who) -> int:
    """Collect every :data:`LIVE_INTERVAL` seconds until every submitted job is decided
    or refused: a redrawn table in a terminal, else one line per change. 0 when all are
    closed, 130 on Ctrl-C."""
    console = make_console()
    shown: dict[tuple[str, str], str] = {}
    view = Live(console=console, auto_refresh=False) if console.is_terminal else None
    try:
        with view or contextlib.nullcontext():
            while True:
                collected = collect(who)
                with JobStore(who.state_root, who.email) as store:
                    submitted = store.submitted_jobs()
                if view is not None:
                    view.update(_submitted_table(submitted, collected), refresh=True)
                for job in submitted:
                    status = _submitted_status(job, collected)
                    key = (job.job_id, job.offer.datasite)
                    if view is None and shown.get(key) != status:
                        click.echo(f"{job.job_id}  {job.offer.datasite}  {status}")
                    shown[key] = status
                open_jobs = [
                    j for j in submitted
                    if j.decision is None and j.job_id not in collected.replies
                ]  # fmt: skip
                if not open_jobs:
                    return 0
                time.sleep(LIVE_INTERVAL)
    except KeyboardInterrupt:
        return 130


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@jobs.command()
@click.argument("job_id", metavar="ID")
@_as
def show(job_id: str, email: str | None) -> None:
    """Review job ID (or the start of it): files, entry points, run config, signer, and
    the changes since the version you last approved. Offline; nothing of the app is run.
    """
    who = who_am_i(email)
    _print_review(make_console(), review(who, job_id))


SIGNER = {
    "pinned": "pinned",
    "known": "trusted since first seen",
    "new": "NEW: not met before; compare it with the aggregator over a channel you trust",
    None: "CHANGED: not the signing key you believe for this aggregator",
}


def _print_review(console: Console, r: Review) -> None:
    offer, info = r.job.offer, r.info
    status = r.job.decision.describe() if r.job.decision else "pending"
    about = [
        ("app", f"{info.name} {info.version} (publisher {info.publisher})"),
        ("FAB", f"{info.fab_hash}, {info.compressed_size:,} bytes "
                f"({info.uncompressed_size:,} unpacked)"),
        ("received", f"{_when(r.job.received_at)} UTC"),
        ("signer", f"{offer.signer} ({SIGNER[r.signer_status]})"),
        *([("rollback", "yes: an older version, sent on purpose")] if offer.rollback else []),
        ("status", status),
    ]  # fmt: skip
    _block(f"job {offer.job_id} from {offer.aggregator}", about)
    _block("entry points", sorted(info.entry_points.items()))
    _block("run config", [(k, repr(v)) for k, v in sorted(info.run_config.items())])
    _block("dependencies", [(d, "") for d in info.dependencies])
    if info.locked is None:
        click.echo("locked: no pylock.toml: the app runs with the packages installed here")
    else:
        _block(f"locked (pylock.toml, {len(info.locked)} wheels, installed by serve)",
               [(f"{p.name}=={p.version}", ", ".join(h[:16] for h in p.sha256))
                for p in info.locked])  # fmt: skip
    _block(f"files ({len(info.files)})", [(p, d[:16]) for p, d in sorted(info.files.items())])
    if r.previous is None:
        click.echo(
            f"no earlier version of {offer.app} from {offer.aggregator} was approved here: "
            "every file above is new to you"
        )
        return
    before = f"the approved {r.previous.offer.version} (job {r.previous.job_id})"
    if r.same_files:
        click.echo(f"same files, other build: identical to {before}")
    elif not r.diff:
        click.echo(f"no change in the files since {before}")
    else:
        click.echo(f"changes since {before}:")
        click.echo(r.diff.rstrip("\n"))


def _block(title: str, rows: list[tuple[str, str]]) -> None:
    """``title`` then its rows as aligned ``label  value`` lines (plain text: a diff
    and paths must print as they are)."""
    click.echo(title)
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows or [("(none)", "")]:
        click.echo(f"  {label:<{width}}  {value}".rstrip())


@jobs.command()
@click.argument("job_id", metavar="ID")
@_as
@_transport
def approve(job_id: str, email: str | None, transport: str | None) -> None:
    """Approve job ID: signed, recorded for good, and sent back to the aggregator."""
    who = who_am_i(email, transport=transport)
    _print_decided(decide(who, job_id, "approved"))


@jobs.command()
@click.argument("job_id", metavar="ID")
@click.option("--reason", required=True, help="Why: the aggregator reads it.")
@_as
@_transport
def reject(job_id: str, reason: str, email: str | None, transport: str | None) -> None:
    """Reject job ID with a reason: signed, recorded for good, sent back."""
    who = who_am_i(email, transport=transport)
    _print_decided(decide(who, job_id, "rejected", reason=reason))


def _print_decided(done: Decided) -> None:
    decision = done.stored.decision
    offer = decision.offer
    what = f"job {offer.job_id} ({offer.app} {offer.version} from {offer.aggregator})"
    if done.new:
        click.echo(f"{decision.verdict} {what}")
    else:
        click.echo(f"{what} was already {done.stored.describe()}")
    if done.delivery.sent:
        click.echo(f"decision sent to {offer.aggregator}")
    else:
        click.echo(
            f"decision recorded here, not sent to {offer.aggregator}: {done.delivery.problem}"
            " (decide again later to send it)"
        )


@jobs.command("trust")
@click.argument("sender", metavar="EMAIL")
@_as
def trust_command(sender: str, email: str | None) -> None:
    """Accept jobs from EMAIL from now on (as accept_jobs_from in your settings does)."""
    who = who_am_i(email)
    if trust(who, sender):
        click.echo(f"{who.email} now accepts jobs from {sender}")
    else:
        click.echo(f"{who.email} already accepts jobs from {sender}")
