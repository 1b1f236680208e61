"""Apps that travel with consent: an aggregator submits a signed Flower app (a FAB), each
data owner reviews and approves it, only approved code runs on their data (issue 19).

* :mod:`.fab` — building and unpacking FABs through one shim over Flower's CLI internals
  (their signatures moved between flwr 1.26 and 1.42);
* :mod:`.bundle` — reading a received FAB without importing or running any of it: its
  files, entry points, run config; the refusals (paths, sizes, shadowed modules); diffs;
* :mod:`.fabsig` — FAB signatures in Flower's verification-record format, so the same
  FAB also verifies with ``flower-supernode --trusted-entities``;
* :mod:`.statements` — what each side signs: the aggregator's job offer and the data
  owner's decision (both bound to aggregator, datasite, app, version, FAB hash, job id);
* :mod:`.store` — a participant's jobs: received, submitted, decided (append-only);
* :mod:`.channel` — the participant-level jobs endpoint over the project's transport;
* :mod:`.table` — ``syftflwr.jobs()``, the notebook's table of jobs with approve/reject;
* :mod:`.serve` / :mod:`.running` — ``syftflwr serve`` and the hash an aggregator's run
  names;
* :mod:`.isolated` — an approved app's ClientApp in a child process of its own, fed
  decrypted messages over a private socket (process isolation, not a sandbox).

Jobs travel as requests of the reserved app :data:`JOBS_APP` on the participant's own
transport, so they reach a datasite before any app's mailbox exists there, and live for
:data:`JOB_TTL` (a 1 h message TTL would expire a job before an offline datasite sees it).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from syftflwr.names import JOBS_APP

JOB_TTL = 30 * 24 * 3600.0
"""Seconds a submitted job (and a decision sent back) waits in storage to be picked up."""

__all__ = ["JOBS_APP", "JOB_TTL"]


class _CallablePackage(types.ModuleType):
    """``syftflwr.jobs(...)`` is the notebook's table of jobs
    (:func:`syftflwr.jobs.table.jobs`), while ``syftflwr.jobs`` stays this package."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from syftflwr.jobs.table import jobs

        return jobs(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
