"""Install the test plugin distributions of ``tests/plugins/`` for real, without letting
them disturb the rest of the suite.

Each plugin is built and pip-installed (``uv pip install --target``, else ``pip``) into a
target folder of its own, once per session. Tests use them from subprocesses whose
``PYTHONPATH`` names just the targets they want, or in-process through
:meth:`PluginEnv.entry_points` (real metadata read from a target) plus
:meth:`PluginEnv.importable` (the target on ``sys.path`` for one test only).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from syftflwr.hookspecs import ENTRY_POINT_GROUP

PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"
PLUGINS = tuple(sorted(p.name for p in PLUGINS_DIR.iterdir() if (p / "pyproject.toml").is_file()))
HOST_TRANSPORTS = tuple(
    sorted(
        {
            ep.dist.metadata["Name"]
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            if ep.dist is not None and ep.dist.metadata["Name"] != "syftflwr"
        }
    )
)
"""Plugin distributions installed in the test environment itself (e.g. the first-party
plugins under nox). Subprocesses disable them, so what a test sees is exactly core's
``memory`` plus the test plugins it asked for."""


def installer() -> list[str]:
    """How to install: uv if we can find it (fast, reaches the index), else pip."""
    uv = shutil.which("uv") or ("/usr/local/bin/uv" if Path("/usr/local/bin/uv").exists() else None)
    if uv:
        return [uv, "pip", "install", "--python", sys.executable]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv", "pip", "install", "--python", sys.executable]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def install(plugin: str, target: Path) -> Path:
    """Build and install ``tests/plugins/<plugin>`` into ``target`` (no dependencies:
    syftflwr itself comes from the test environment)."""
    cmd = [*installer(), "--no-deps", "--target", str(target), str(PLUGINS_DIR / plugin)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"installing {plugin} failed: {cmd}\n{proc.stdout}\n{proc.stderr}")
    return target


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment, minus anything that would change plugin discovery
    or configuration (every ``SYFTFLWR_*`` variable)."""
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SYFTFLWR_")
    }
    env.update(FLWR_TELEMETRY_ENABLED="0", PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    env.update(extra)
    return env


@dataclass
class PluginEnv:
    """Target folders of the installed test plugins, by plugin folder name, and a
    ``SYFTFLWR_HOME`` for subprocesses (so no user's real settings are read)."""

    targets: Mapping[str, Path]
    home: Path

    @classmethod
    def install_all(cls, root: Path, plugins: Sequence[str] = PLUGINS) -> PluginEnv:
        (root / "home").mkdir()
        return cls({p: install(p, root / p) for p in plugins}, root / "home")

    def pythonpath(self, *plugins: str) -> str:
        return os.pathsep.join(str(self.targets[p]) for p in plugins)

    def env(self, *plugins: str, **extra: str) -> dict[str, str]:
        disabled = [*HOST_TRANSPORTS, *extra.pop("SYFTFLWR_DISABLE_PLUGINS", "").split(",")]
        return base_env(
            PYTHONPATH=self.pythonpath(*plugins),
            SYFTFLWR_HOME=str(self.home),
            SYFTFLWR_DISABLE_PLUGINS=",".join(d for d in disabled if d),
            **extra,
        )

    def run(
        self,
        *args: str,
        plugins: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` in a subprocess that sees ``plugins`` (and only those)."""
        return subprocess.run(
            [sys.executable, *args],
            env=self.env(*plugins, **dict(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli(
        self, *args: str, plugins: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m syftflwr ARGS``, the console script, in a subprocess."""
        return self.run("-m", "syftflwr", *args, plugins=plugins, env=env)

    def entry_points(self, *plugins: str) -> list[importlib.metadata.EntryPoint]:
        """The real entry points of the installed distributions (metadata, no import)."""
        found: list[importlib.metadata.EntryPoint] = []
        for plugin in plugins:
            for dist in importlib.metadata.distributions(path=[str(self.targets[plugin])]):
                found += dist.entry_points.select(group=ENTRY_POINT_GROUP)
        return found

    @contextmanager
    def importable(self, *plugins: str) -> Iterator[None]:
        """Put ``plugins``' targets on ``sys.path`` and forget what they imported after."""
        before = set(sys.modules)
        paths = [str(self.targets[p]) for p in plugins]
        sys.path[:0] = paths
        importlib.invalidate_caches()
        try:
            yield
        finally:
            for path in paths:
                sys.path.remove(path)
            for name in set(sys.modules) - before:
                if name.startswith("syftflwr_test_"):
                    del sys.modules[name]
            importlib.invalidate_caches()
