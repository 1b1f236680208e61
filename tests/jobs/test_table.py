"""``syftflwr.jobs()``, the notebook table: both roles listed, approve and reject from it
(signed, recorded, sent back, as ``syftflwr jobs`` does), HTML for Jupyter/Colab, and
nothing of the app imported to list or show it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _bundle_apps import markers_written
from _jobs_world import AGG, DS1, World
from syftflwr.jobs.review import collect
from syftflwr.jobs.submit import submit
from syftflwr.jobs.table import JobsTable


def test_a_data_owner_decides_from_the_table(tmp_path: Path) -> None:
    world = World(tmp_path)
    ds1, agg = world.who(DS1), world.who(AGG, accept=())
    empty = JobsTable(ds1)
    assert len(empty) == 0 and repr(empty) == f"no jobs yet for {DS1}"
    empty.refresh()  # collects: publishes ds1's jobs key

    first = submit(world.app(), env=world.env, participant=agg.settings)
    table = JobsTable(ds1).refresh()
    [row] = table.rows
    assert (row.role, row.peer, row.app, row.version, row.status) == (
        "datasite", AGG, "marker-app", "1.0.0", "pending"
    )  # fmt: skip
    assert row.job == first.sent[0].job_id
    assert "<td>pending</td>" in table._repr_html_() and "marker-app" in repr(table)
    assert table.show(row.job[:8]).info.run_config == {"num-server-rounds": 2, "lr": 0.1}

    table.approve(row.job)
    assert [r.status for r in table.rows] == ["approved"]

    second = submit(world.app("1.1.0"), env=world.env, participant=agg.settings)
    table.refresh()
    table.reject(second.sent[0].job_id, reason="<b>too</b> new")
    assert [(r.version, r.status) for r in table.rows] == [
        ("1.0.0", "approved"), ("1.1.0", "rejected")
    ]  # fmt: skip
    assert "rejected: &lt;b&gt;too&lt;/b&gt; new" in table._repr_html_()  # escaped

    collect(agg)
    seen = JobsTable(agg)
    assert [(r.role, r.peer, r.status, r.reason) for r in seen.rows] == [
        ("aggregator", DS1, "approved", ""),
        ("aggregator", DS1, "rejected", "<b>too</b> new"),
    ]
    assert markers_written(world.markers) == []


def test_syftflwr_jobs_is_the_table_and_still_the_package(tmp_path: Path) -> None:
    world = World(tmp_path)
    env = {**world.env, "SYFTFLWR_HOME": str(world.home(DS1))}
    world.write_settings(DS1, accept=(AGG,))
    code = (
        "import syftflwr; t = syftflwr.jobs(); print(type(t).__name__, t.who.email); "
        "print(syftflwr.jobs.JOBS_APP)"
    )
    fresh = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["JobsTable", DS1, "syftflwr-jobs"]
    assert fresh.stderr == ""  # a notebook's first call: no warning

    import syftflwr

    table = syftflwr.jobs(env=env)  # collects: publishes ds1's jobs key, finds nothing
    assert isinstance(table, JobsTable) and table.who.email == DS1
    assert repr(table) == f"no jobs yet for {DS1}"
    assert syftflwr.jobs.JOBS_APP == "syftflwr-jobs"
    assert syftflwr.JobsTable is JobsTable
