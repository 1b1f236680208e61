"""The Python API a notebook uses: same rules as the CLI, no Flower import on
``import syftflwr``."""

from __future__ import annotations

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
