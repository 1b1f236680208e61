"""A real SyftBox network on loopback: PyPI's ``syftbox`` 0.4.0 server and one client
per participant, each with its OWN data dir, in a venv of their own (syftbox 0.4.0
cannot share an environment with flwr; it needs ``click<8.2``).

The venv is ``$SYFTFLWR_SYFTBOX_VENV`` if set, else built once with ``uv`` into
``$XDG_CACHE_HOME/syftflwr/syftbox-0.4.0`` (``~/.cache`` by default); when it cannot be
built (no ``uv``, no package index) the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

SYFTBOX_VERSION = "0.4.0"
VENV_ENV = "SYFTFLWR_SYFTBOX_VENV"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def syftbox_venv() -> Path:
    """The venv holding ``syftbox`` 0.4.0 (built on first use), or skip."""
    given = os.environ.get(VENV_ENV)
    if given:
        if not (Path(given) / "bin" / "syftbox").exists():
            pytest.skip(f"${VENV_ENV} = {given} holds no syftbox=={SYFTBOX_VERSION}")
        return Path(given)
    # a cache, so under XDG_CACHE_HOME (the HOME guard keeps that one, not HOME itself)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "syftflwr" / f"syftbox-{SYFTBOX_VERSION}"
    complete = venv / ".syftflwr-complete"  # written last: a half-built venv is rebuilt
    if complete.exists():
        return venv
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip(
            f"PyPI's syftbox {SYFTBOX_VERSION} server is not installable here: uv is not on "
            f"PATH (or point ${VENV_ENV} at a venv with syftbox=={SYFTBOX_VERSION})"
        )
    shutil.rmtree(venv, ignore_errors=True)  # built in place: its scripts name their python
    for command in (
        [uv, "venv", "-q", "-p", "3.11", str(venv)],
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
         f"syftbox=={SYFTBOX_VERSION}", "click<8.2"],
    ):  # fmt: skip
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(
                f"PyPI's syftbox {SYFTBOX_VERSION} server is not installable here: "
                f"{' '.join(command[:3])} failed: {done.stderr.strip()[-500:]}"
            )
    complete.write_text(SYFTBOX_VERSION)
    return venv


def _wait(condition: object, what: str, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            raise AssertionError(f"{what} within {timeout:g}s\n{tails}")
        time.sleep(0.1)


class SyftBoxNetwork:
    """One server and one client per participant; every process is stopped by
    :meth:`close` (only the processes started here)."""

    def __init__(self, venv: Path, base: Path) -> None:
        self.venv = venv
        self.base = base
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.configs: dict[str, Path] = {}
        self.env = {
            **os.environ,
            "SYFTBOX_ENV": "DEV",
            "SYFTBOX_AUTH_ENABLED": "false",
            "SYFTBOX_DATA_FOLDER": str(base / "server"),
        }
        self.env.pop("SYFTBOX_CLIENT_CONFIG_PATH", None)
        log = base / "server.log"
        subprocess.run([str(venv / "bin" / "syftbox"), "server", "migrate"], env=self.env,
                       cwd=base, check=True, capture_output=True, timeout=120)  # fmt: skip
        self._start(
            [str(venv / "bin" / "python"), "-m", "uvicorn", "syftbox.server.server:app",
             "--host", "127.0.0.1", "--port", str(self.port)], log, self.env)  # fmt: skip
        _wait(self._up, "the SyftBox server did not answer", 60, [log])

    def _start(self, command: list[str], log: Path, env: dict[str, str]) -> None:
        with log.open("wb") as out:
            self.procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                               env=env, cwd=self.base))  # fmt: skip

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:  # loopback only
                return bool(response.status == 200)
        except OSError:
            return False

    def add_client(self, email: str) -> Path:
        """Start ``email``'s SyftBox client on its own data dir; its config path."""
        config = self.base / "configs" / email / "config.json"
        data_dir = self.base / "datadirs" / email
        home = self.base / "homes" / email
        home.mkdir(parents=True)
        log = self.base / f"syftbox-client-{email}.log"
        self._start(
            [str(self.venv / "bin" / "syftbox"), "client", "-e", email, "-d", str(data_dir),
             "-s", self.url, "-c", str(config), "-p", str(_free_port()), "--no-open-dir"],
            log, {**self.env, "HOME": str(home)})  # fmt: skip

        def ready() -> bool:
            try:
                return (
                    json.loads(config.read_text()).get("email") == email
                    and (data_dir / "datasites" / email).is_dir()
                )
            except (OSError, ValueError):
                return False

        _wait(ready, f"{email}'s SyftBox client did not start", 60, [log])
        self.configs[email] = config
        return config

    def data_dir(self, email: str) -> Path:
        return self.base / "datadirs" / email

    def logs(self) -> list[Path]:
        return sorted(self.base.glob("*.log"))

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
