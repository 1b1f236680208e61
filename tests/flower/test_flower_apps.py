"""Loading Flower apps and run configs from a project directory."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from _flower_helpers import QUICKSTART
from syftflwr.config import load_project
from syftflwr.errors import ConfigError
from syftflwr.flower.apps import (
    fused_run_config,
    load_client_app,
    load_object,
    load_server_app,
    node_config_for,
    read_app,
)
from syftflwr.flower.simulation import simulation_project


def project(root: Path, body: str) -> Path:
    (root / "pyproject.toml").write_text(textwrap.dedent(body))
    return root


def test_quickstart_project_is_read_and_loaded_without_installing() -> None:
    app = read_app(QUICKSTART)
    assert app.server_app_ref == "syftflwr_quickstart.server_app:app"
    assert app.run_config["num-server-rounds"] == 3
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    assert isinstance(load_server_app(app), ServerApp)
    assert isinstance(load_client_app(app), ClientApp)
    module = sys.modules["syftflwr_quickstart"]
    assert Path(module.__file__).resolve().parent == QUICKSTART / "syftflwr_quickstart"  # type: ignore[arg-type]


def test_nested_config_is_flattened_and_overrides_checked(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        """
        [tool.flwr.app.components]
        serverapp = "a.s:app"
        clientapp = "a.c:app"
        [tool.flwr.app.config]
        lr = 0.1
        model.layers = 3
        model.name = "mlp"
        """,
    )
    app = read_app(root)
    assert app.run_config == {"lr": 0.1, "model.layers": 3, "model.name": "mlp"}
    assert fused_run_config(app, {"model.layers": 5})["model.layers"] == 5
    with pytest.raises(ConfigError, match=r"no key 'epochs'.*keys: lr, model\.layers"):
        fused_run_config(app, {"epochs": 2})


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("[tool.flwr.app.components]\nclientapp = 'a:b'\n", "serverapp"),
        ("[tool.flwr.app.components]\nserverapp = 'nocolon'\nclientapp = 'a:b'\n", "serverapp"),
        (
            "[tool.flwr.app.components]\nserverapp = 'a:b'\nclientapp = 'a:b'\n"
            "[tool.flwr.app.config]\nbad = [1, 2]\n",
            "tool.flwr.app.config.bad",
        ),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_projects_name_the_file_and_key(tmp_path: Path, body: str, match: str) -> None:
    project(tmp_path, body)
    with pytest.raises(ConfigError, match=match) as info:
        read_app(tmp_path)
    assert "pyproject.toml" in str(info.value)


def test_missing_pyproject_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="so it is not a Flower app"):
        read_app(tmp_path)


def test_load_object_errors_and_foreign_package_shadowing(tmp_path: Path) -> None:
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    first, second = tmp_path / "one", tmp_path / "two"
    for root, value in ((first, 1), (second, 2)):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(f"VALUE = {value}\n")
    assert load_object(f"{name}:VALUE", first) == 1
    assert load_object(f"{name}:VALUE", second) == 2  # not the copy imported from `one`
    with pytest.raises(ConfigError, match="has no attribute 'MISSING'"):
        load_object(f"{name}:MISSING", second)
    with pytest.raises(ConfigError, match="cannot import"):
        load_object("no_such_module_xyz:app", second)


def test_wrong_object_type_is_refused(tmp_path: Path) -> None:
    name = f"wrong_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("app = 42\n")
    project(
        tmp_path,
        f"""
        [tool.flwr.app.components]
        serverapp = "{name}:app"
        clientapp = "{name}:app"
        """,
    )
    with pytest.raises(ConfigError, match="not a flwr ServerApp"):
        load_server_app(read_app(tmp_path))


def test_simulated_federation() -> None:
    project = load_project(QUICKSTART)
    fed = simulation_project(project)
    assert fed.datasites == ("ds1@openmined.org", "ds2@openmined.org", "ds3@openmined.org")
    assert fed.aggregator == "aggregator@openmined.org"
    more = simulation_project(project, datasites=5)
    assert more.datasites[:3] == fed.datasites and len(set(more.datasites)) == 5
    assert simulation_project(project, datasites=["x@y.org"]).datasites == ("x@y.org",)
    assert node_config_for(1, 3) == {"partition-id": 1, "num-partitions": 3}
    with pytest.raises(ConfigError, match="at least one datasite"):
        simulation_project(project, datasites=0)
    with pytest.raises(ConfigError, match="distinct"):
        simulation_project(project, datasites=["x@y.org", "x@y.org"])
