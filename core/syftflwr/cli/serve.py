"""``syftflwr serve --as EMAIL``: a datasite serves every app it approved, and only them
(docs/jobs.md)."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from syftflwr.cli._output import make_console, verbosity
from syftflwr.jobs.review import who_am_i
from syftflwr.logs import adopt_flower_logs
from syftflwr.signals import STOP, signal_name


@click.command("serve")
@click.option(
    "--as",
    "email",
    metavar="EMAIL",
    help="Who you are (default: SYFTFLWR_EMAIL, then your settings file).",
)
@click.option("--transport", help="Transport name (default: SYFTFLWR_TRANSPORT, else detected).")
def serve(email: str | None, transport: str | None) -> None:
    """Serve every app you approved (`syftflwr jobs approve`), until Ctrl-C.

    Each approved app answers its aggregator's runs with the code you approved: its
    ClientApp runs in a process of its own, with the run config you approved. A request
    for any other code (not submitted, pending review, rejected, or replaced by a later
    approval) is refused, and its aggregator's summary says why. Apps approved while
    this runs are served within seconds; jobs that arrive are received every 30 s, as
    `syftflwr jobs` receives them (your [auto_approve] rules apply).
    """
    with STOP.handling():
        code = _serve(email, transport)
    sys.exit(code)


def _serve(email: str | None, transport: str | None) -> int:
    from syftflwr.jobs.review import Collected
    from syftflwr.jobs.serve import ServedApp, Server
    from syftflwr.jobs.store import ReceivedJob

    who = who_am_i(email, transport=transport)
    console = make_console(stderr=True)
    adopt_flower_logs(verbosity())

    def serving(served: ServedApp, job: ReceivedJob) -> None:
        offer = job.offer
        console.print(
            f"serving [bold]{escape(offer.app_name)}[/] of {escape(offer.aggregator)}: "
            f"{escape(offer.app)} {escape(offer.version)} (FAB {offer.fab_hash[:16]})",
            highlight=False,
        )

    def collected(got: Collected) -> None:
        automatic = dict(got.automatic)
        for job in got.stored:
            if job in automatic:
                console.print(f"job {job}: {escape(automatic[job])}", highlight=False)
            else:
                console.print(f"job {job} arrived: review it with `syftflwr jobs show {job}`",
                              highlight=False)  # fmt: skip

    with Server(who, on_serving=serving, on_collected=collected) as server:
        STOP.on_stop(lambda _signum: server.stop())
        server.refresh()
        if not server.serving and not server.stopped.is_set():
            console.print(
                f"{who.email}: nothing approved to serve yet; waiting for approvals "
                "(`syftflwr jobs` lists the jobs sent to you, `syftflwr jobs approve ID` "
                "approves one)",
                highlight=False,
            )
        server.run()
    how = signal_name(STOP.signum) if STOP.signum is not None else "stopped"
    console.print(f"{who.email}: serve stopped ({how}); served {len(server.serving)} app(s)")
    return 0
