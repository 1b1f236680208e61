"""Shared fixtures of the core test suite (keep it small; put helpers in modules)."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _plugin_env import PluginEnv

# matplotlib (plots of results and benchmarks) makes ~/.config/matplotlib on first import:
# give it a folder of its own, so the session's HOME guard (syftflwr_isolate_home) stays
# about syftflwr's own writes.
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="syftflwr-tests-mpl-"))

# Core's tests reach into its private modules on purpose, also from helper scripts they
# run as __main__ (where Python shows a DeprecationWarning by default): the old-path
# warnings are for third-party plugins (tests/test_plugin_compat.py turns them back on).
_QUIET = "ignore:syftflwr.:DeprecationWarning"  # their messages start "syftflwr.X.Y is private"
os.environ["PYTHONWARNINGS"] = (
    ",".join(
        w for w in (os.environ.get("PYTHONWARNINGS"), _QUIET) if w and _QUIET not in w.split(",")
    )
    or _QUIET
)

# tests/plugins/* are distributions installed by the tests, not test modules of this
# suite (oldstyle ships its own conformance test, run in its own environment)
collect_ignore = ["plugins"]


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> PluginEnv:
    """The test plugin distributions of ``tests/plugins/``, each pip-installed into a
    target folder of its own (built once per session; nothing lands on ``sys.path``)."""
    return PluginEnv.install_all(tmp_path_factory.mktemp("test-plugins"))


@pytest.fixture(autouse=True)
def no_grid_left_open() -> Iterator[None]:
    """A test that leaves a ``TransportGrid`` open leaves its liveness timer running: its
    "no sign of …" hint then fires 30 s later inside whichever test this worker runs next
    (it broke ``transports --check --json`` output in CI). Close grids (``grid.close()``)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t.name == "syftflwr-liveness" and t not in before]
    if left:
        pytest.fail(
            f"{len(left)} TransportGrid(s) left open: their liveness timers outlive the test;"
            " close each grid (grid.close(), or MemoryFederation.keep in tests/flower)",
            pytrace=False,
        )


# Whole runs in real processes (aggregator + datasites, kills, signals, misbehaving plugins):
# Python-version neutral and long, so `slow` — they run in `nox -s tests` (3.11, every one),
# and `tests_python` (3.12, 3.13) keeps to the in-process suite.
MULTI_PROCESS = ("e2e", "reliability")
MULTI_PROCESS_MODULES = ("test_sloppy_plugin.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        try:
            relative = item.path.relative_to(tests)
        except ValueError:
            continue
        if relative.parts[0] in MULTI_PROCESS or relative.name in MULTI_PROCESS_MODULES:
            item.add_marker(pytest.mark.slow)
