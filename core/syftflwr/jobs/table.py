"""``syftflwr.jobs()``: a participant's jobs as a table, for a notebook (Colab is where
many data owners live), with the decisions ``syftflwr jobs`` makes on the command line.

    import syftflwr

    table = syftflwr.jobs(email="ds1@hospital.org")   # collects what arrived, then lists
    table                                              # an HTML table in a notebook
    print(table.show("69e496af").diff)                 # review: files, config, diff
    table.approve("69e496af")                          # signed, recorded, sent back
    table.reject("7c01...", reason="reads too much")

Everything goes through :mod:`syftflwr.jobs.review`, exactly as the CLI: nothing of a
bundle is imported or executed to list, show or diff it.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from syftflwr.jobs.review import Decided, Review, Who, collect, decide, review, who_am_i
from syftflwr.jobs.store import JobStore


@dataclass(frozen=True)
class JobRow:
    """One line of the table: a job received (``role="datasite"``) or one datasite's
    copy of a job submitted (``role="aggregator"``)."""

    role: str
    job: str
    peer: str
    """Who sent it (received) or to whom it went (submitted)."""
    app: str
    version: str
    fab_hash: str
    at: float
    """When it was received or sent (Unix time)."""
    status: str
    reason: str


class JobsTable:
    """A participant's jobs, as read when made (:meth:`refresh` reads them again)."""

    def __init__(self, who: Who) -> None:
        self.who = who
        self.rows: list[JobRow] = []
        self.refresh(collect_first=False)

    def refresh(self, *, collect_first: bool = True) -> JobsTable:
        """Collect what has arrived (unless ``collect_first`` is False), then read the
        store again; returns the table, for a notebook cell's last line."""
        if collect_first:
            collect(self.who)
        with JobStore(self.who.state_root, self.who.email) as store:
            received = store.received_jobs()
            submitted = store.submitted_jobs()
        rows = [
            JobRow("datasite", j.job_id, j.offer.aggregator, j.offer.app, j.offer.version,
                   j.offer.fab_hash, j.received_at, j.status,
                   j.decision.decision.reason if j.decision else "")
            for j in received
        ]  # fmt: skip
        rows += [
            JobRow("aggregator", j.job_id, j.offer.datasite, j.offer.app, j.offer.version,
                   j.offer.fab_hash, j.sent_at, j.status,
                   j.decision.decision.reason if j.decision else "")
            for j in submitted
        ]  # fmt: skip
        self.rows = rows
        return self

    # -- review and decisions (a datasite's) ---------------------------------------------
    def show(self, job: str) -> Review:
        """What ``syftflwr jobs show`` prints: files, entry points, run config, signer,
        the diff against the version approved last (a unique id prefix is enough)."""
        return review(self.who, job)

    def approve(self, job: str) -> Decided:
        """Approve ``job`` (signed, recorded append-only, sent to its aggregator)."""
        decided = decide(self.who, job, "approved")
        self.refresh(collect_first=False)
        return decided

    def reject(self, job: str, reason: str) -> Decided:
        """Reject ``job`` with ``reason``, which its aggregator reads."""
        decided = decide(self.who, job, "rejected", reason=reason)
        self.refresh(collect_first=False)
        return decided

    # -- display ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def _cells(self, row: JobRow) -> list[str]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.at))
        status = f"{row.status}: {row.reason}" if row.reason else row.status
        return [row.role, row.job, row.peer, row.app, row.version, row.fab_hash[:16], when,
                status]  # fmt: skip

    HEADERS = ("role", "job", "from / to", "app", "version", "FAB hash", "when (UTC)", "status")

    def __repr__(self) -> str:
        if not self.rows:
            return f"no jobs yet for {self.who.email}"
        lines = [self.HEADERS, *(self._cells(r) for r in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.HEADERS))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )

    def _repr_html_(self) -> str:
        """The table a notebook shows (Jupyter, Colab)."""
        if not self.rows:
            return f"<p>no jobs yet for {html.escape(self.who.email)}</p>"
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
            for r in self.rows
        )
        title = html.escape(f"jobs of {self.who.email}")
        return f"<table><caption>{title}</caption><tr>{head}</tr>{body}</table>"


def jobs(
    email: str | None = None,
    *,
    transport: str | None = None,
    collect_first: bool = True,
    env: Mapping[str, str] = os.environ,
) -> JobsTable:
    """Collect what has arrived for ``email`` (default: ``SYFTFLWR_EMAIL`` / settings),
    then return its jobs as a :class:`JobsTable` (``collect_first=False``: offline)."""
    table = JobsTable(who_am_i(email, transport=transport, env=env))
    return table.refresh() if collect_first else table
