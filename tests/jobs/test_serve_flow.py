"""Done-when of issue 19 over fsspec-local, every step a ``syftflwr`` process of its own
with encryption on: submit -> review -> approve -> ``syftflwr serve`` trains the
quickstart -> the aggregator changes the app -> refused until submitted and approved
(the flow of :mod:`syftflwr.testing.jobs_flow`, which gdrive and syftbox run too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _jobs_world import AGG, DS1, DS2
from syftflwr.testing.jobs_flow import JobsFederation, jobs_flow_cli

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.mark.slow
def test_serve_trains_only_what_each_data_owner_approved(tmp_path: Path) -> None:
    root = str(tmp_path / "mailbox")
    federation = JobsFederation(
        tmp_path, "fsspec-local", AGG, (DS1, DS2), options=lambda _email: {"root": root}
    )
    jobs_flow_cli(federation, QUICKSTART, rounds=2, reapprove=True)
