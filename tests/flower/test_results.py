"""Result files (versioned, read back, summarised, plotted) and the Python API's view of
a result: a one-line repr, an HTML table, ``.plot()``, and progress instead of Flower's
INFO log."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _flower_helpers import QUICKSTART
from syftflwr.errors import ConfigError
from syftflwr.flower import results
from syftflwr.flower.simulation import SimulationResult, simulate_in_threads


@pytest.fixture(scope="module")
def trained() -> SimulationResult:
    return simulate_in_threads(QUICKSTART, rounds=2, timeout=60)


def test_a_result_file_reads_back_as_it_was_written(
    trained: SimulationResult, tmp_path: Path
) -> None:
    path = results.save(trained, results.result_path(tmp_path, trained.run_id))
    assert path == tmp_path / "runs" / str(trained.run_id) / "result.json"
    document = json.loads(path.read_text())
    assert (document["format"], document["version"]) == ("syftflwr-result", 1)
    assert document["app_name"] == "quickstart" and document["mode"] == "threads"
    again = results.load(path.parent)  # the folder works too
    assert again.run_id == trained.run_id and again.accuracy == trained.accuracy
    assert [r.metrics for r in again.rounds] == [r.metrics for r in trained.rounds]
    assert [[e.metrics for e in r.replies] for r in again.rounds] == [
        [e.metrics for e in r.replies] for r in trained.rounds
    ]
    assert again.runner_stats == trained.runner_stats
    assert results.to_document(again) == document


def test_an_aggregators_result_reads_back_as_a_run_not_a_simulation(
    trained: SimulationResult, tmp_path: Path
) -> None:
    """`syftflwr run` writes a plain RunResult (no simulation fields): `syftflwr report`
    must not call it a threads-mode simulation."""
    plain = {f.name: getattr(trained, f.name) for f in dataclasses.fields(results.RunResult)}
    path = results.save(results.RunResult(**plain), tmp_path / "result.json")
    assert "mode" not in json.loads(path.read_text())
    again = results.load(path)
    assert type(again) is results.RunResult
    assert "mode" not in results.headline(again)
    assert again.accuracy == trained.accuracy
    assert results.to_document(again) == json.loads(path.read_text())


@pytest.mark.parametrize(
    ("content", "problem", "fix"),
    [
        (None, "does not exist", "printed"),
        ("{not json", "not a readable result file", "result.json written by"),
        ('{"rounds": []}', 'not a syftflwr result (no "format"', "result.json written by"),
        ('{"format": "syftflwr-result", "version": 2}', "version 2 result", "upgrade"),
        ('{"format": "syftflwr-result", "version": 1, "rounds": [{}]}', "damaged", "again"),
    ],
)
def test_a_bad_result_file_is_a_clear_error(
    tmp_path: Path, content: str | None, problem: str, fix: str
) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        results.load(path)
    assert problem in str(caught.value) and fix in str(caught.value)


def test_series_are_the_servers_and_each_datasites_metrics(trained: SimulationResult) -> None:
    series = results.series(trained)
    assert set(series) == {"accuracy", "loss"}
    assert [r for r, _ in series["accuracy"]["server"]] == [0, 1, 2]
    assert series["accuracy"]["server"][-1][1] == trained.accuracy
    for site in ("ds1", "ds2", "ds3"):
        assert [r for r, _ in series["accuracy"][f"{site} eval_acc"]] == [1, 2]
        assert f"{site} train_loss" in series["loss"] and f"{site} eval_loss" in series["loss"]


def test_the_api_result_is_short_html_and_plots(trained: SimulationResult) -> None:
    text = repr(trained)
    assert len(text) < 300, text
    assert text.startswith("<SimulationResult quickstart: run ")
    assert f"accuracy {trained.accuracy:.4f}" in text and text.endswith(", ok>")
    page = trained._repr_html_()
    assert page.count("<tr>") == 1 + len(trained.rounds)  # header + one per round
    assert f"<td>{trained.accuracy:.4f}</td>" in page
    figure = trained.plot()
    panels = {ax.get_title(): ax for ax in figure.axes}
    assert set(panels) == {"accuracy", "loss"}
    labels = {line.get_label() for line in panels["accuracy"].get_lines()}
    assert labels == {"server", "ds1 eval_acc", "ds2 eval_acc", "ds3 eval_acc"}


def test_the_documented_format_lists_every_field() -> None:
    from dataclasses import fields

    page = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    table = page.split("## The format", 1)[1].split("\n## ", 1)[0]
    missing = [f.name for f in fields(SimulationResult) if f"`{f.name}`" not in table]
    assert not missing, f"docs/results.md does not describe {missing}"


def test_the_run_journal_keeps_a_result_when_it_drops_the_replies(tmp_path: Path) -> None:
    from syftflwr.flower.run_journal import RunJournal, RunStatus

    journal = RunJournal.in_state_dir(tmp_path)
    try:
        for run_id, status in ((7, RunStatus.FAILED), (8, RunStatus.FINISHED)):
            journal.start(run_id, seed=1, config_hash="x")
            replies = tmp_path / "runs" / str(run_id) / "replies"
            replies.mkdir(parents=True)
            (replies / "m.msg").write_bytes(b"reply")
            journal.end(run_id, status)
        kept = tmp_path / "runs" / "7" / "result.json"
        kept.write_text("{}")  # a failed run's result, then a new run abandons it
        journal.end(7, RunStatus.ABANDONED)
        assert kept.is_file()
        assert not (tmp_path / "runs" / "7" / "replies").exists()
        assert not (tmp_path / "runs" / "8").exists()  # nothing kept: the folder goes too
    finally:
        journal.close()
