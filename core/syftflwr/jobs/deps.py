"""The dependencies a data owner approves with an app: its ``pylock.toml`` (PEP 751).

A FAB carries the app's own files; what the app imports beyond them and what the
datasite already has comes from its dependencies. An app that ships a ``pylock.toml``
(written by ``pip lock`` or ``uv export --format pylock.toml``) has them approved with it:
the lock is one of the bundle's files, so it is in the FAB's hash, which the offer signs,
and review lists it and diffs it like any other file. ``syftflwr serve`` installs exactly
the locked wheels, before the app's process starts:

* wheels only (``--only-binary :all:``): an sdist's build backend would run code nobody
  approved, so review refuses a lock naming one;
* each wheel checked against the lock's SHA-256 (``--require-hashes``), nothing else
  pulled in (``--no-deps``);
* from the participant's wheelhouse or index (``[dependencies]`` in the settings file),
  else pip's own configuration;
* into a folder of that bundle's (``apps/<FAB hash>.deps``), first on the app process's
  path. The app itself runs from the FAB's files, never pip-installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.errors import SyftflwrError
from syftflwr.jobs.staging import staging_beside

LOCK_FILE = "pylock.toml"
INSTALLED_MARK = ".installed"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LockError(SyftflwrError, ValueError):
    """A ``pylock.toml`` that cannot be approved as it is; one line says why."""


class DependencyError(SyftflwrError):
    """The locked dependencies of an approved app could not be installed."""


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    sha256: tuple[str, ...]
    """The SHA-256 of every wheel the lock allows for it (one per platform/tag)."""

    def requirement(self) -> str:
        """The line of pip's hash-checking mode for it."""
        hashes = " ".join(f"--hash=sha256:{h}" for h in self.sha256)
        return f"{self.name}=={self.version} {hashes}"


def read_lock(data: bytes) -> tuple[LockedPackage, ...]:
    """The packages of a ``pylock.toml``; :class:`LockError` for anything but exact
    versions of wheels with SHA-256 hashes."""
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"{LOCK_FILE}: not valid TOML ({exc})") from None
    packages = document.get("packages", [])
    if not isinstance(packages, list):
        raise LockError(f"{LOCK_FILE}: [[packages]] is not an array of tables")
    return tuple(_package(p, i) for i, p in enumerate(packages))


def _package(entry: object, index: int) -> LockedPackage:
    where = f"{LOCK_FILE}: packages[{index}]"
    if not isinstance(entry, Mapping):
        raise LockError(f"{where}: not a table")
    name, version = entry.get("name"), entry.get("version")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise LockError(f"{where}: no valid name")
    where = f"{LOCK_FILE}: {name}"
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise LockError(f"{where}: no exact version (a lock pins one)")
    if "sdist" in entry or "vcs" in entry or "directory" in entry or "archive" in entry:
        raise LockError(
            f"{where}: not a wheel (sdist, VCS, directory or archive): building it would "
            "run code nobody approved; lock wheels only"
        )
    wheels = entry.get("wheels")
    if not isinstance(wheels, list) or not wheels:
        raise LockError(f"{where}: no wheels (serve installs wheels only)")
    hashes = tuple(_wheel_hash(w, where) for w in wheels)
    return LockedPackage(name, version, tuple(dict.fromkeys(hashes)))


def _wheel_hash(wheel: Any, where: str) -> str:
    hashes = wheel.get("hashes") if isinstance(wheel, Mapping) else None
    digest = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise LockError(f"{where}: a wheel without a SHA-256 hash (every wheel needs one)")
    return digest


def install(
    packages: Sequence[LockedPackage],
    target: Path,
    *,
    wheelhouse: Path | None = None,
    index_url: str | None = None,
    python: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Path:
    """Install exactly ``packages`` into ``target`` (once: a folder holding them already
    is reused; written beside it, then renamed, so it is whole or absent).

    :raises DependencyError: pip refused (a hash mismatch, a wheel not found, no wheel
        for this platform); the message ends with pip's own last lines.
    """
    if (target / INSTALLED_MARK).exists():
        return target
    requirements = "".join(p.requirement() + "\n" for p in packages)
    with staging_beside(target, "installing") as staging:
        if packages:
            _pip_install(requirements, staging, wheelhouse, index_url, python, env)
        (staging / INSTALLED_MARK).write_text(requirements)  # what it holds
        try:
            staging.rename(target)
        except OSError:  # another process installed it meanwhile
            if not (target / INSTALLED_MARK).exists():
                raise
    return target


def _pip_install(
    lines: str,
    staging: Path,
    wheelhouse: Path | None,
    index_url: str | None,
    python: str | None,
    env: Mapping[str, str],
) -> None:
    """pip's hash-checking install of the requirement ``lines`` into ``staging``."""
    requirements = staging.parent / f"{staging.name}.txt"
    requirements.write_text(lines)
    command = [python or sys.executable, "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check", "--no-input", "--only-binary", ":all:",
               "--require-hashes", "--no-deps", "--target", str(staging),
               "-r", str(requirements)]  # fmt: skip
    if wheelhouse is not None:
        command += ["--no-index", "--find-links", str(wheelhouse)]
    elif index_url is not None:
        command += ["--index-url", index_url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=dict(env), check=False)
    finally:
        requirements.unlink(missing_ok=True)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        source = (f"wheelhouse {wheelhouse}" if wheelhouse else
                  f"index {index_url}" if index_url else "pip's configured index")  # fmt: skip
        raise DependencyError(
            f"the approved app's locked dependencies could not be installed from {source}: "
            f"{tail}\n  fix: put the locked wheels in the wheelhouse (or index) of your "
            "settings' [dependencies]; a hash mismatch means the wheel is not the one locked"
        )
