"""The Python API a notebook uses: same rules as the CLI, no Flower import on
``import syftflwr``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import syftflwr
from syftflwr.errors import TransportUnavailableError

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"


def test_import_is_cheap() -> None:
    code = "import sys, syftflwr; print('flwr' in sys.modules, 'syftflwr.api' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def test_package_reexports_exactly_what_the_api_lists() -> None:
    import syftflwr.api

    exported = set(syftflwr.__all__) - {"PLUGIN_API_VERSION", "__version__", "hookimpl"}
    assert exported == set(syftflwr.api.__all__)
    for name in syftflwr.api.__all__:
        assert getattr(syftflwr, name) is getattr(syftflwr.api, name), name


def test_list_transports_survives_the_transports_subpackage_being_imported() -> None:
    import syftflwr.transports.memory  # the name clash this test guards against

    names = {t.name: t for t in syftflwr.list_transports()}
    assert names["memory"].status == "ok"


def test_simulate_in_threads_from_python() -> None:
    result = syftflwr.simulate(QUICKSTART, mode="threads", rounds=1, datasites=2)
    assert result.ok, result.describe_failures()
    assert result.mode == "threads" and result.transport == "memory"
    assert result.datasites == ("ds1@openmined.org", "ds2@openmined.org")
    assert result.accuracy is not None and result.accuracy > 0.9


def test_background_datasite_and_aggregator_in_one_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYFTFLWR_HOME", str(tmp_path))
    monkeypatch.setenv("SYFTFLWR_MEMORY_NAMESPACE", f"nb-{tmp_path.name}")
    from syftflwr.flower.launch import run_aggregator
    from syftflwr.flower.simulation import simulation_project
    from syftflwr.session import as_project

    fed = simulation_project(as_project(QUICKSTART), datasites=1)
    site = syftflwr.start_datasite(
        fed, email="ds1@openmined.org", transport="memory", allow_in_process=True
    )
    with syftflwr.connect(
        fed, email="aggregator@openmined.org", transport="memory", allow_in_process=True
    ) as aggregator:
        result = run_aggregator(aggregator, rounds=1)
    assert result.ok, result.describe_failures()
    assert site.join(timeout=10), "the stop message ends the background datasite"
    assert site.stats.handled == 2


def test_memory_is_refused_outside_one_process() -> None:
    with pytest.raises(TransportUnavailableError, match="simulate --threads"):
        syftflwr.connect(QUICKSTART, email="ds1@openmined.org", transport="memory")


def test_simulate_in_threads_shows_rounds_not_flowers_log(
    capfd: pytest.CaptureFixture[str],
) -> None:
    flower = logging.getLogger("flwr")
    assert any(type(h).__name__ == "ConsoleHandler" for h in flower.handlers)  # as in a notebook
    result = syftflwr.simulate(QUICKSTART, mode="threads", rounds=2)
    assert result.ok, result.describe_failures()
    err = capfd.readouterr().err
    assert "[ROUND" not in err and "Starting FedAvg" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(("initial", "round "))]
    assert lines[0] == "initial: accuracy 0.3684, loss 0.6931", err
    assert lines[1].startswith("round 1: 6 replies, accuracy 0.9"), err
    assert lines[2].startswith("round 2: 6 replies, accuracy 0.9"), err
    assert len(lines) == 3


def test_simulate_in_threads_stays_quiet_with_a_root_handler_at_info(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A notebook that ran ``logging.basicConfig(level=logging.INFO)`` (or an earlier
    CLI call in the same process) has a root handler Flower's records propagate to: the
    API's quiet must hold there too, not only on Flower's own handler."""
    root = logging.getLogger()
    handler = logging.StreamHandler()  # stderr, as basicConfig
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        result = syftflwr.simulate(QUICKSTART, mode="threads", rounds=1)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
    assert result.ok, result.describe_failures()
    err = capfd.readouterr().err
    assert "[ROUND" not in err and "Starting FedAvg" not in err, err
    assert "round 1: 6 replies" in err, err
    assert logging.getLogger("flwr").level != logging.WARNING, "the quiet is undone after"


def test_simulate_in_processes_shows_progress(tmp_path: Path) -> None:
    """From a script (or a notebook): a line per round as the rounds finish, what the
    ServerApp prints, no Flower INFO log; the result prints as one line."""
    script = (
        "import syftflwr, sys\n"
        f"result = syftflwr.simulate({str(QUICKSTART)!r}, rounds=2)\n"
        "print(repr(result))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFTFLWR_")}
    env.update(SYFTFLWR_HOME=str(tmp_path), FLWR_TELEMETRY_ENABLED="0")
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("<SimulationResult quickstart: run "), out.stdout
    assert "processes mode" in out.stdout
    assert len(out.stdout) < 300
    lines = [line for line in out.stderr.splitlines() if line.startswith(("initial", "round "))]
    assert [line.split(":")[0] for line in lines] == ["initial", "round 1", "round 2"], out.stderr
    assert "[ROUND" not in out.stderr and "INFO" not in out.stderr, out.stderr
