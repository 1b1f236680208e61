"""What gets imported, proven in fresh interpreters (``sys.modules`` inspection):

* importing syftflwr and listing transports by name, distribution and version imports no
  plugin module (and not Flower);
* asking for detection verdicts imports each plugin's small hook module, never its roles
  or a transport library;
* ``SYFTFLWR_DISABLE_PLUGINS`` blocks a plugin before import.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _plugin_env import PluginEnv

ALL = ("tinydir", "broken", "badsig", "oldapi", "extrahook")
HEAVY = ("flwr", "googleapiclient", "gcsfs", "syft_rpc", "syft_event", "syft_crypto")

LIST_ONLY = """
import json, sys
import syftflwr
from syftflwr.registry import get_registry
registry = get_registry()
rows = [[e.name, e.distribution, e.version] for e in registry.entries()]
print(json.dumps({"rows": rows, "modules": sorted(sys.modules)}))
"""

DETECT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from syftflwr.registry import get_registry
rows = {r.name: r.status for r in get_registry().statuses()}
print(json.dumps({"rows": rows, "modules": sorted(sys.modules)}))
"""

CLI = """
import json, sys
from syftflwr.cli import main
try:
    main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def run_json(
    plugin_env: PluginEnv, code: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    proc = plugin_env.run("-c", code, plugins=ALL, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def plugin_modules(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return [
        m for m in modules if m.startswith("syftflwr_test_") or m == "syftflwr.transports.memory"
    ]


def test_listing_imports_no_plugin_and_no_flower(plugin_env: PluginEnv) -> None:
    out = run_json(plugin_env, LIST_ONLY)
    assert ["tinydir", "syftflwr-test-tinydir", "0.1.0"] in out["rows"]  # type: ignore[operator]
    assert ["broken", "syftflwr-test-broken", "0.2.0"] in out["rows"]  # type: ignore[operator]
    assert plugin_modules(out["modules"]) == []
    assert not [m for m in out["modules"] if m.split(".")[0] in HEAVY]  # type: ignore[union-attr]


def test_detection_imports_hook_modules_only(plugin_env: PluginEnv) -> None:
    out = run_json(plugin_env, DETECT)
    rows = {k: v for k, v in out["rows"].items() if v != "disabled"}  # type: ignore[attr-defined]
    assert rows == {
        "badsig": "broken",
        "broken": "broken",
        "extrahook": "broken",
        "memory": "ok",
        "oldapi": "incompatible",
        "tinydir": "ok",
    }
    modules = out["modules"]
    assert "syftflwr_test_tinydir.plugin" in modules  # type: ignore[operator]
    assert "syftflwr_test_tinydir.roles" not in modules  # type: ignore[operator]
    assert not [m for m in modules if m.split(".")[0] in HEAVY]  # type: ignore[union-attr]


def test_disabled_plugins_are_never_imported(plugin_env: PluginEnv) -> None:
    out = run_json(plugin_env, DETECT, env={"SYFTFLWR_DISABLE_PLUGINS": "tinydir,broken"})
    assert out["rows"]["tinydir"] == out["rows"]["broken"] == "disabled"  # type: ignore[index]
    imported = plugin_modules(out["modules"])
    assert not [
        m for m in imported if m.startswith(("syftflwr_test_tinydir", "syftflwr_test_broken"))
    ]
    assert "syftflwr_test_badsig.plugin" in imported  # enabled: imported, then refused
    assert "syftflwr_test_oldapi.plugin" in imported


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["transports", "--help"], ["transports", "--json"]]
)
def test_cli_help_version_and_listing_never_import_flower(
    plugin_env: PluginEnv, tmp_path: Path, args: list[str]
) -> None:
    dump = tmp_path / "modules.json"
    proc = plugin_env.run("-c", CLI, str(dump), *args, plugins=ALL)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(dump.read_text())
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    if args[0] == "--help":  # to list only the groups that exist: hook modules, no roles
        assert "syftflwr_test_tinydir.plugin" in modules
        assert not [m for m in plugin_modules(modules) if m.endswith(".roles")]
    elif args[0] != "transports" or "--help" in args:
        assert plugin_modules(modules) == []  # --version imports no plugin either
