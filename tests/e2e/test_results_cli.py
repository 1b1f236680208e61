"""`simulate` and `run` keep their result in the state directory and print its path;
`--json` prints it; `syftflwr report` summarises and plots it (real processes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _e2e import AGG, QUICKSTART, env_for, syftflwr

pytest.importorskip("syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox")


def saved_path(text: str) -> Path:
    found = re.findall(r"^result: (.+)$", text, re.M)
    assert len(found) == 1, text
    return Path(found[0])


def test_simulate_keeps_its_result_and_report_plots_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = env_for(home)
    out = subprocess.run(
        syftflwr("simulate", str(QUICKSTART), "--rounds", "2", "--json"),
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    document = json.loads(out.stdout)  # stdout holds the JSON document and nothing else
    assert (document["format"], document["version"]) == ("syftflwr-result", 1)
    assert document["mode"] == "processes" and document["error"] is None
    assert "final accuracy" in out.stderr  # the summary went to stderr
    path = saved_path(out.stderr)
    state = home / "state" / "quickstart" / AGG  # where `run` keeps the aggregator's state
    assert path == state / "runs" / str(document["run_id"]) / "result.json"
    assert json.loads(path.read_text()) == document

    plot = tmp_path / "plots" / "result.png"
    report = subprocess.run(  # the app's folder names its latest result
        syftflwr("report", str(QUICKSTART), "--plot", str(plot)),
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr
    accuracy = document["rounds"][-1]["metrics"]["accuracy"]
    assert f"final accuracy {accuracy:.4f}" in report.stdout
    assert saved_path(report.stdout) == path
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000

    # without matplotlib: a clear error with the install line, exit 2, no traceback
    no_matplotlib = (
        "import sys; sys.modules['matplotlib'] = None; from syftflwr.cli import main; main()"
    )
    missing = subprocess.run(
        [sys.executable, "-c", no_matplotlib, "report", str(path), "--plot", str(plot) + "2"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "error: plotting needs matplotlib, which is not installed" in missing.stderr
    assert "fix: pip install matplotlib" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_report_refuses_what_is_not_a_result(tmp_path: Path) -> None:
    other = tmp_path / "pyproject.json"
    other.write_text('{"name": "x"}')
    env = env_for(tmp_path / "home")
    out = subprocess.run(
        syftflwr("report", str(other)),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert f"error: {other} is not a syftflwr result" in out.stderr
    assert "fix: give a result.json written by `syftflwr run` or `syftflwr simulate`" in out.stderr
    none_yet = subprocess.run(
        syftflwr("report", str(QUICKSTART)),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert none_yet.returncode == 2
    assert f"error: {QUICKSTART} has no result yet" in none_yet.stderr
    assert f"fix: run `syftflwr simulate {QUICKSTART}`" in none_yet.stderr
    assert not (tmp_path / "home").exists()  # reading created nothing
