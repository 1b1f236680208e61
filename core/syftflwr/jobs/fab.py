"""Building a Flower App Bundle (FAB) from a project folder, through one shim over Flower's
CLI internals (``flwr.cli.build``, whose return type moved between flwr 1.26 and 1.42).

What this adds to Flower's builder, under every supported flwr:

* the refusals of flwr 1.42 (a ``[project].name`` with ``_`` or over 32 characters, a
  missing version/publisher/component, a run-config value of another type), as our own
  :class:`~syftflwr.errors.ConfigError` with a fix — flwr 1.26.1 builds such an app, and a
  datasite on 1.42 could then not install it;
* ``[tool.syftflwr]`` is kept out of the bundle: the datasite list and key pins are the
  federation's, not the app's, and must not change the FAB's hash;
* the project's files the builder left out, for ``submit`` to list as "not shipped"
  (1.26.1 packs only ``*.py``, ``*.toml``, ``*.md``; 1.42 also yaml/json/LICENSE);
* what review would refuse (:func:`~syftflwr.jobs.bundle.inspect_bundle`: a top-level
  module named like the standard library's, ...) is refused before anything is sent.

Nothing here imports the app. The ``flwr build`` command does (it checks the components
with ``find_spec``, which runs the package's ``__init__.py``, in flwr 1.26.1 and 1.42);
the builder beneath it that this shim calls, ``build_fab_from_files``, reads files and
TOML only, as does this module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomlkit
import tomlkit.exceptions

from syftflwr.errors import ConfigError
from syftflwr.jobs.bundle import PYPROJECT, BundleRefused, check_app_config, inspect_own_build

_NOT_PROJECT_FILES = frozenset({"__pycache__", "node_modules"})
"""Folders nobody expects in a bundle, left out of "not shipped" (so are hidden folders,
``*.pyc`` and virtual environments: any folder holding a ``pyvenv.cfg``)."""


@dataclass(frozen=True)
class BuiltFab:
    """A FAB built from a project folder, and what the builder left out."""

    data: bytes
    """The .fab (zip) bytes."""
    fab_hash: str
    """Hex SHA-256 of :attr:`data`, as Flower computes it."""
    name: str
    version: str
    publisher: str
    not_shipped: tuple[str, ...]
    """Project files the builder left out (relative posix paths, sorted)."""
    flwr_version: str
    """The flwr that built it (two flwr versions give two hashes for the same source)."""


def flwr_version() -> str:
    try:
        return version("flwr")
    except PackageNotFoundError:  # pragma: no cover - vendored Flower
        return "unknown"


def build_fab(project_dir: Path) -> BuiltFab:
    """Build the FAB of the Flower app in ``project_dir`` with the installed flwr.

    :raises ConfigError: no readable ``pyproject.toml``, an app flwr 1.42+ refuses (under
        any flwr), one the installed flwr refuses to build (its reason, e.g. too large), or
        one whose bundle review would refuse.
    """
    root = project_dir.expanduser().resolve()
    source = str(root / PYPROJECT)
    document = _read_pyproject(root)
    config = document.unwrap()
    name, app_version, publisher = check_app_config(config, source=source)
    files: dict[str, bytes | Path] = _flwr_files(root)
    files[PYPROJECT] = _without_syftflwr(document)
    data = _build(files, source=source)
    try:
        shipped = inspect_own_build(data).files
    except BundleRefused as refused:
        raise ConfigError(
            f"datasites would refuse its bundle: {refused}",
            source=source,
            fix="rename that module or package"
            if "would shadow" in str(refused)
            else "change the app so that this no longer holds, then submit again",
        ) from None
    return BuiltFab(
        data=data,
        fab_hash=hashlib.sha256(data).hexdigest(),
        name=name,
        version=app_version,
        publisher=publisher,
        not_shipped=tuple(p for p in _project_files(root) if p not in shipped),
        flwr_version=flwr_version(),
    )


def _read_pyproject(root: Path) -> tomlkit.TOMLDocument:
    path = root / PYPROJECT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no {PYPROJECT} in {root}: not a Flower app's folder",
            fix="name the folder of a Flower app (the one holding its pyproject.toml)",
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read it: {err}", source=str(path), fix="make it a readable UTF-8 file"
        ) from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as err:
        raise ConfigError(
            f"not valid TOML: {err}", source=str(path), fix="correct the TOML syntax"
        ) from None


def _without_syftflwr(document: tomlkit.TOMLDocument) -> bytes:
    """The pyproject without ``[tool.syftflwr]``: the federation's table stays out of the
    app's bundle (Flower rewrites the file from its parsed form, so formatting is moot)."""
    tool = document.get("tool")
    if isinstance(tool, Mapping) and "syftflwr" in tool:
        del tool["syftflwr"]  # type: ignore[attr-defined]
    return tomlkit.dumps(document).encode("utf-8")


def _flwr_files(root: Path) -> dict[str, bytes | Path]:
    """The project's files as the installed flwr's ``build_fab_from_disk`` collects them:
    1.42's ``collect_files`` (symlinks skipped), or 1.26.1's recursive glob of files."""
    try:
        from flwr.cli.utils import collect_files
    except ImportError:  # flwr 1.26.1: build_fab_from_disk's own collection
        return {
            path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()
        }
    return dict(collect_files(root))


def _build(files: dict[str, bytes | Path], *, source: str) -> bytes:
    """``flwr.cli.build.build_fab_from_files``: the builder ``build_fab_from_disk`` runs on
    the collected files in every supported flwr (bytes in 1.26.1, ``(bytes, metadata)``
    from 1.42)."""
    from flwr.cli.build import build_fab_from_files

    try:
        built: object = build_fab_from_files(files)
    except ValueError as err:  # also flwr 1.42's AppPathDepthError
        raise ConfigError(
            f"flwr {flwr_version()} refuses to build it: {err}",
            source=source,
            fix="change the app as flwr says, then submit again",
        ) from None
    data = built[0] if isinstance(built, tuple) else built
    if not isinstance(data, bytes):  # pragma: no cover - a flwr this shim does not know
        raise TypeError(f"flwr {flwr_version()}'s build_fab_from_files returned {type(built)}")
    return data


def _project_files(root: Path) -> list[str]:
    """Every file of the project a user may expect in the bundle, sorted: hidden folders,
    caches and virtual environments left out; symlinks kept (flwr 1.42 skips them)."""
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _NOT_PROJECT_FILES
            and not (here / d / "pyvenv.cfg").exists()
        ]
        found += ((here / n).relative_to(root).as_posix() for n in names if not n.endswith(".pyc"))
    return sorted(found)
