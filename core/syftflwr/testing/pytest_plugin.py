"""pytest plugin (entry point ``pytest11``): fixtures for testing Flower apps and transports.

Loaded in every pytest run of an environment where syftflwr is installed, so it imports
nothing heavy at module level.

Fixtures:

* ``memory_namespace`` — a fresh, isolated namespace of the built-in ``memory`` transport.
* ``register_transport`` — register a module as a transport for one test, without
  installing a distribution: ``register_transport("foo", "my_pkg.plugin")`` (or a module
  object); the process-wide registry (CLI, ``session.connect``, simulators) sees it.

Warning filters: typer's deprecations (typer comes with flwr's CLI) are ignored in every
session (:data:`THIRD_PARTY_WARNINGS`).

Opt-in guard (``syftflwr_isolate_home = true`` in the pytest ini options): the session
runs with ``HOME`` and ``XDG_CONFIG_HOME``/``XDG_DATA_HOME``/``XDG_STATE_HOME`` pointing
at an empty session folder (caches and tool installs stay where they were) and every ``SYFTFLWR_*``
variable removed, so no test reads or writes the user's real settings, keys, tokens or
mailboxes; the session fails at exit if anything appeared in that folder, and lists it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from syftflwr.registry import Registry

# The conformance suites' asserts get pytest's detailed failure messages.
pytest.register_assert_rewrite("syftflwr.testing.conformance")

RegisterTransport = Callable[..., "Registry"]

ISOLATE_INI = "syftflwr_isolate_home"
USER_DIRS = {"XDG_CONFIG_HOME": ".config", "XDG_DATA_HOME": ".local/share",
             "XDG_STATE_HOME": ".local/state"}  # fmt: skip
_SESSION_HOME = pytest.StashKey[Path]()
_WRITTEN = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ISOLATE_INI,
        type="bool",
        default=False,
        help="syftflwr: run the session with HOME and XDG config/data/state dirs in an "
        "empty folder and fail if any test writes there",
    )


THIRD_PARTY_WARNINGS = (
    # typer (imported by flwr's CLI) calls click APIs that click 8.2 deprecated: not the
    # test author's to fix, never shown in a user's run (a DeprecationWarning outside
    # __main__), and it buried a plugin's own warnings in every test run
    "ignore:'click.utils.get_:DeprecationWarning:typer",
    # and flwr 1.42's CLI passes typer options it deprecated
    "ignore:The 'is_flag' and 'flag_value' parameters:DeprecationWarning:typer",
)
"""Warning filters added to every session: third-party noise a syftflwr test sees."""


def pytest_configure(config: pytest.Config) -> None:
    for line in THIRD_PARTY_WARNINGS:
        config.addinivalue_line("filterwarnings", line)
    if not config.getini(ISOLATE_INI):
        return
    folder = Path(tempfile.mkdtemp(prefix="syftflwr-test-home-"))
    real_home = Path(os.environ.get("HOME") or Path.home())
    # caches and tool installs stay where they are (pip, uv, a Rust toolchain a build needs)
    for var, where in (("XDG_CACHE_HOME", ".cache"), ("RUSTUP_HOME", ".rustup"),
                       ("CARGO_HOME", ".cargo")):  # fmt: skip
        os.environ.setdefault(var, str(real_home / where))
    os.environ["HOME"] = str(folder)
    if os.name == "nt":
        os.environ["USERPROFILE"] = str(folder)
        os.environ["LOCALAPPDATA"] = str(folder / "AppData" / "Local")
    for var, sub in USER_DIRS.items():
        os.environ[var] = str(folder / sub)
    for var in [v for v in os.environ if v.startswith("SYFTFLWR_")]:
        del os.environ[var]
    config.stash[_SESSION_HOME] = folder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = session.config.stash.get(_SESSION_HOME, None)
    if folder is None:
        return
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    if written:
        session.config.stash[_WRITTEN] = written
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    written = config.stash.get(_WRITTEN, None)
    if not written:
        return
    folder = config.stash[_SESSION_HOME]
    terminalreporter.section("tests wrote into the user's folders", sep="=", red=True)
    terminalreporter.write_line(
        f"error: {len(written)} paths appeared under the session's HOME / XDG folder "
        f"{folder} (a user's real ~ and ~/.local/share, ~/.config in a normal run):"
    )
    for path in written[:30]:
        terminalreporter.write_line(f"  {path}")
    terminalreporter.write_line(
        "fix: give the code under test an environment or paths of its own (SYFTFLWR_HOME, "
        "a state_dir, a context's env) instead of the defaults"
    )


@pytest.fixture
def memory_namespace() -> Iterator[str]:
    """A fresh, isolated namespace of the built-in ``memory`` transport."""
    from syftflwr.transports import memory

    namespace = f"test-{uuid.uuid4().hex}"
    yield namespace
    memory.reset(namespace)


@pytest.fixture
def register_transport() -> Iterator[RegisterTransport]:
    """``register(name, plugin, *, installed=True, distribution=..., version=...)``:
    make ``plugin`` (``"pkg.module"``, ``"pkg.module:obj"`` or a module object) the
    transport ``name`` until the test ends; returns the registry in use. Each call
    replaces the previous temporary registry and keeps the earlier registrations."""
    from syftflwr.testing.registration import registry_with, use_registry

    stack = ExitStack()
    registered: dict[str, str | ModuleType] = {}

    def register(
        name: str,
        plugin: str | ModuleType,
        *,
        installed: bool = True,
        distribution: str = "syftflwr-temporary",
        version: str = "0.0.0",
    ) -> Registry:
        registered[name] = plugin
        registry = registry_with(
            registered, installed=installed, distribution=distribution, version=version
        )
        stack.enter_context(use_registry(registry))
        return registry

    with stack:
        yield register
