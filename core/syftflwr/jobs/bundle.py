"""Reading a received FAB without importing or running any of it: its files, entry points
and run config, the refusals that make it safe to show, and diffs between two of them.

A FAB is a zip archive whose ``.info/CONTENT`` lists ``path,sha256,size in bits`` for each
file. Flower's install checks only the files listed there and extracts every other member
unchecked, and its default validation imports the app's package; so review reads the
archive itself, with the standard library's ``zipfile`` and ``tomllib`` only, and refuses
(:class:`BundleRefused`, one line naming the member and the problem):

* a member not listed in ``.info/CONTENT`` (``pyproject.toml`` aside: flwr 1.26.1 writes
  it unlisted), a listed file missing, or one whose SHA-256 or size differs;
* a path with ``..``, an absolute path, a backslash or control character, a symlink or other
  non-regular file (the zip's external attributes), a member stored twice, an encrypted one;
* more than :data:`MAX_UNCOMPRESSED` bytes once inflated, read from the headers before
  inflating anything and counted again while reading (a header may lie);
* a top-level module that would shadow the standard library or an installed distribution
  (``numpy.py``, ``sitecustomize.py``): once the bundle is on ``sys.path`` it would run in
  place of the code the app and Flower import.

:func:`unpack_fab` writes an inspected bundle's files for running it, from the verified
bytes, without Flower's install.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.machinery
import io
import os
import re
import stat
import sys
import threading
import tomllib
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import distributions, packages_distributions
from pathlib import Path
from typing import Any

from syftflwr.errors import ConfigError, SyftflwrError
from syftflwr.jobs.deps import LOCK_FILE, LockedPackage, LockError, read_lock
from syftflwr.jobs.staging import staging_beside
from syftflwr.names import FLOWER_NAME_MAX, flower_name_problem, suggest_flower_name

PYPROJECT = "pyproject.toml"
CONTENT = ".info/CONTENT"
"""The FAB's manifest: one ``path,sha256,size in bits`` line per file it vouches for."""
COMPONENTS = ("serverapp", "clientapp")
MAX_UNCOMPRESSED = 100 * 1024 * 1024
"""Bytes a bundle may hold once inflated (Flower's own limit is 10 MB compressed)."""
_CHUNK = 1 << 16
_DIGEST = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_IMPORTABLE = tuple(importlib.machinery.all_suffixes())
_STARTUP_HOOKS = frozenset({"sitecustomize", "usercustomize"})
"""Modules the interpreter imports at start-up by name, installed or not."""
_STDLIB, _STARTUP = "<stdlib>", "<startup>"
"""Owners of a shadowed name that are no distribution (those are PEP 503 names)."""


class BundleRefused(SyftflwrError):  # noqa: N818 (the contract's name)
    """A received FAB review will not show or run; the message is one line naming the
    member (or the signature) and the problem (control characters a hostile bundle put in
    a name are shown escaped)."""

    def __init__(self, message: str) -> None:
        super().__init__(_CONTROL.sub(lambda c: repr(c.group())[1:-1], message))


@dataclass(frozen=True)
class BundleInfo:
    """What review shows of a FAB; everything read from the archive, nothing imported."""

    fab_hash: str
    """Hex SHA-256 of the FAB's bytes (Flower's FAB hash)."""
    name: str
    version: str
    publisher: str
    files: Mapping[str, str]
    """Path -> hex SHA-256 of every file (``.info/CONTENT`` aside), each verified against it."""
    compressed_size: int
    """Bytes of the FAB itself."""
    uncompressed_size: int
    """Bytes of its files once inflated."""
    entry_points: Mapping[str, str]
    """``[tool.flwr.app.components]``: ``"serverapp"``/``"clientapp"`` -> ``"module:attr"``."""
    run_config: Mapping[str, object]
    """``[tool.flwr.app.config]``."""
    dependencies: tuple[str, ...]
    """``[project].dependencies``, as written."""
    locked: tuple[LockedPackage, ...] | None = None
    """The packages of its ``pylock.toml`` (:mod:`.deps`), approved with it; None: the
    bundle has no lock, and its app runs with what the datasite has installed."""


@dataclass(frozen=True)
class _Opened:
    fab_hash: str
    contents: Mapping[str, bytes]
    digests: Mapping[str, str]
    uncompressed_size: int


def inspect_bundle(data: bytes) -> BundleInfo:
    """Check a received FAB and read what review shows of it; never imports or runs it.

    :raises BundleRefused: the first problem found (see the module's docstring).
    """
    return _inspect(data)[0]


def inspect_own_build(data: bytes) -> BundleInfo:
    """:func:`inspect_bundle` as the aggregator checks the FAB it just built: its app's
    own installed distribution (a ``pip install -e .`` of the project) does not count as
    shadowed there. Never for a received bundle: a hostile app named ``numpy`` would
    pass as numpy's own."""
    return _inspect(data, own_build=True)[0]


def _inspect(data: bytes, *, own_build: bool = False) -> tuple[BundleInfo, _Opened]:
    opened = _open(data)
    config = _pyproject(opened.contents[PYPROJECT])
    try:
        name, version, publisher = check_app_config(config, source=PYPROJECT)
    except ConfigError as err:
        raise BundleRefused(f"{PYPROJECT}: {err.key}: {err.problem}") from None
    _refuse_shadowing(opened.digests, project=_canonical(name), own_build=own_build)
    app = config["tool"]["flwr"]["app"]
    dependencies = config["project"].get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise BundleRefused(f"{PYPROJECT}: [project].dependencies: not a list of strings")
    locked: tuple[LockedPackage, ...] | None = None
    if LOCK_FILE in opened.contents:
        try:
            locked = read_lock(opened.contents[LOCK_FILE])
        except LockError as err:
            raise BundleRefused(str(err)) from None
    info = BundleInfo(
        fab_hash=opened.fab_hash,
        name=name,
        version=version,
        publisher=publisher,
        files=opened.digests,
        compressed_size=len(data),
        uncompressed_size=opened.uncompressed_size,
        entry_points={k: v for k, v in app["components"].items() if isinstance(v, str)},
        run_config=app.get("config", {}),
        dependencies=tuple(dependencies),
        locked=locked,
    )
    return info, opened


def check_app_config(config: Mapping[str, Any], *, source: str) -> tuple[str, str, str]:
    """``(name, version, publisher)`` of a Flower app's pyproject, after the checks flwr
    1.42 makes when it builds (the module check aside: building never imports the app).

    :raises ConfigError: the first problem, naming its key and the fix.
    """
    project = _table(config, ("project",), source)
    name = project.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("missing", source=source, key="[project].name", fix='name = "my-app"')
    problem = flower_name_problem(name)
    if problem:
        raise ConfigError(
            f"{name!r} cannot be a Flower app's name: {problem} (flwr 1.42 refuses it: a "
            f"letter, then letters, digits and hyphens, at most {FLOWER_NAME_MAX} characters)",
            source=source,
            key="[project].name",
            fix=f'name = "{suggest_flower_name(name) or "my-app"}"',
        )
    app_version = project.get("version")
    if not isinstance(app_version, str) or not app_version.strip():
        raise ConfigError(
            "missing (a job's version decides what is an update and what a rollback)",
            source=source,
            key="[project].version",
            fix='version = "1.0.0"',
        )
    app = _table(config, ("tool", "flwr", "app"), source)
    publisher = app.get("publisher")
    if not isinstance(publisher, str) or not publisher.strip():
        raise ConfigError(
            "missing", source=source, key="[tool.flwr.app].publisher", fix='publisher = "you"'
        )
    for key, value, example in (
        ("[project].version", app_version, "1.0.0"),
        ("[tool.flwr.app].publisher", publisher, "you"),
    ):
        if _CONTROL.search(value) or "/" in value or "\\" in value or ".." in value:
            raise ConfigError(
                f"{value!r} holds a control character, a slash or '..' (Flower's install "
                "puts it in a folder's name; review prints it)",
                source=source,
                key=key,
                fix=f'{key.rsplit(".", 1)[1]} = "{example}"',
            )
    components = _table(config, ("tool", "flwr", "app", "components"), source)
    for component in COMPONENTS:
        ref = components.get(component)
        module, _, attribute = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not module or not attribute:
            raise ConfigError(
                f"{ref!r} is not a <module>:<attribute> reference"
                if ref is not None
                else "missing",
                source=source,
                key=f"[tool.flwr.app.components].{component}",
                fix=f'{component} = "my_app.{component.replace("app", "_app")}:app"',
            )
    run_config = app.get("config", {})
    if not isinstance(run_config, Mapping):
        raise ConfigError(
            "must be a table", source=source, key="[tool.flwr.app.config]", fix="num-rounds = 3"
        )
    _check_run_config(run_config, "tool.flwr.app.config", source)
    return name, app_version, publisher


def _check_run_config(table: Mapping[str, Any], prefix: str, source: str) -> None:
    for key, value in table.items():
        if isinstance(value, Mapping):
            _check_run_config(value, f"{prefix}.{key}", source)
        elif not isinstance(value, (bool, int, float, str)):
            raise ConfigError(
                f"a run-config value is an int, float, bool or string, not "
                f"{type(value).__name__} (flwr 1.42 refuses it)",
                source=source,
                key=f"[{prefix}].{key}",
                fix="give it one of those types, or a table of them",
            )


def _table(config: Mapping[str, Any], path: tuple[str, ...], source: str) -> Mapping[str, Any]:
    node: Any = config
    for depth, part in enumerate(path):
        node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            name = ".".join(path[: depth + 1])
            raise ConfigError(
                "missing: a Flower app's pyproject.toml needs it",
                source=source,
                key=f"[{name}]",
                fix="start from `syftflwr new NAME` or `flwr new`, or add the table",
            )
    return node  # type: ignore[no-any-return]


def same_files(old: BundleInfo, new: BundleInfo) -> bool:
    """True when two bundles hold the same files with the same contents: "same files,
    other build" when their hashes differ (another flwr wrote another ``.info/CONTENT``)."""
    return dict(old.files) == dict(new.files)


def diff_bundles(old: bytes, new: bytes) -> str:
    """A unified diff from ``old``'s files to ``new``'s, or ``""`` when they hold the same
    files: first the added/removed/changed paths, then one ``--- a/``/``+++ b/`` section per
    changed text file; binary files by their SHA-256.

    :raises BundleRefused: either bundle fails :func:`inspect_bundle`'s checks.
    """
    before, after = _inspect(old)[1], _inspect(new)[1]
    paths = sorted(set(before.digests) | set(after.digests))
    changes: list[tuple[str, str]] = []
    body: list[str] = []
    for path in paths:
        a, b = before.contents.get(path), after.contents.get(path)
        if a == b:
            continue
        changes.append(("added" if a is None else "removed" if b is None else "changed", path))
        body += _file_diff(path, a, b)
    if not changes:
        return ""
    width = max(len(kind) for kind, _ in changes) + 1
    summary = [f"{kind + ':':<{width}} {path}\n" for kind, path in changes]
    return "".join([*summary, "\n", *body])


UNPACKED_HASH = ".info/fab-hash"
"""The file :func:`unpack_fab` leaves in an unpacked bundle: the hash it holds."""
_INFO = ".info/"


def unpack_fab(data: bytes, dest: Path) -> Path:
    """Write the files of a received FAB into the folder ``dest`` and return it: after
    :func:`inspect_bundle`'s checks, from the bytes they verified, laid out as Flower's
    install lays them out (``.info/`` left out). Nothing is imported; Flower's install is
    not used (it extracts members ``.info/CONTENT`` does not list, unchecked).

    ``dest`` appears whole or not at all (written beside it, then renamed), so concurrent
    calls for one bundle, and calls after a crash, find it complete; a ``dest`` that
    already holds this bundle is returned as it is.

    :raises BundleRefused: the bundle fails the checks (nothing is written).
    :raises FileExistsError: ``dest`` exists and holds something else.
    """
    info, opened = _inspect(data)
    if _holds(dest, info.fab_hash):
        return dest
    with staging_beside(dest, "unpacking") as staging:
        files = {n: c for n, c in opened.contents.items() if not n.startswith(_INFO)}
        files[UNPACKED_HASH] = info.fab_hash.encode()
        for name, content in files.items():
            path = staging.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as out:
                out.write(content)
                os.fsync(out.fileno())
        staging.chmod(0o755)  # mkdtemp's 0700, as any installed app's folder
        try:
            staging.rename(dest)
        except OSError:
            if _holds(dest, info.fab_hash):  # another process unpacked it first
                return dest
            raise
        _fsync_dir(dest.parent)
    return dest


def _holds(dest: Path, fab_hash: str) -> bool:
    try:
        held = (dest / UNPACKED_HASH).read_text(encoding="ascii")
    except FileNotFoundError:
        if dest.exists():
            raise FileExistsError(f"{dest} exists and is no unpacked bundle") from None
        return False
    if held != fab_hash:
        raise FileExistsError(f"{dest} holds bundle {held}, not {fab_hash}")
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_diff(path: str, old: bytes | None, new: bytes | None) -> list[str]:
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        return [f"binary {path}: {_describe(old)} -> {_describe(new)}\n"]
    lines = difflib.unified_diff(
        old_text,
        new_text,
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}",
    )
    return [
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    ]


def _text(data: bytes | None) -> list[str] | None:
    if data is None:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text.splitlines(keepends=True)


def _describe(data: bytes | None) -> str:
    if data is None:
        return "(none)"
    return f"sha256 {hashlib.sha256(data).hexdigest()} ({len(data)} bytes)"


def _open(data: bytes) -> _Opened:
    """The FAB's verified files; every check but the pyproject's and the shadowing one."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise BundleRefused(f"not a FAB: not a readable zip archive ({err})") from None
    with archive:
        infos = _check_members(archive.infolist())
        if CONTENT not in infos:
            raise BundleRefused(f"not a FAB: no {CONTENT} in the archive")
        total = _Budget()
        listed = _manifest(_read(archive, infos[CONTENT], total))
        for name in infos:
            if name not in listed and name not in (CONTENT, PYPROJECT):
                raise BundleRefused(
                    f"{name}: not listed in {CONTENT} (Flower's install would extract it unchecked)"
                )
        for name in listed:
            if name not in infos:
                raise BundleRefused(f"{name}: listed in {CONTENT} but not in the archive")
        if PYPROJECT not in infos:
            raise BundleRefused(f"not a FAB: no {PYPROJECT} in the archive")
        contents: dict[str, bytes] = {}
        digests: dict[str, str] = {}
        for name in sorted(infos):
            if name == CONTENT:
                continue
            content = _read(archive, infos[name], total)
            digest = hashlib.sha256(content).hexdigest()
            if name in listed and listed[name] != (digest, len(content) * 8):
                raise BundleRefused(
                    f"{name}: its SHA-256 or size differs from {CONTENT}'s (altered)"
                )
            contents[name] = content
            digests[name] = digest
    return _Opened(
        fab_hash=hashlib.sha256(data).hexdigest(),
        contents=contents,
        digests=digests,
        uncompressed_size=total.used,
    )


def _check_members(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The members by name, after the checks that need only the central directory."""
    by_name: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        name = info.orig_filename
        problem = _path_problem(name)
        if problem:
            raise BundleRefused(f"{name!r}: {problem}")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise BundleRefused(f"{name}: a symlink (review and install take regular files only)")
        if name.endswith("/") or stat.S_ISDIR(mode):
            raise BundleRefused(f"{name}: a directory entry (Flower's builder writes none)")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise BundleRefused(f"{name}: not a regular file (mode {mode:o})")
        if info.flag_bits & 0x1:
            raise BundleRefused(f"{name}: encrypted (a FAB's members are plain)")
        if name in by_name:
            raise BundleRefused(f"{name}: stored twice (which copy is installed is unclear)")
        declared += info.file_size
        if declared > MAX_UNCOMPRESSED:
            raise BundleRefused(
                f"{name}: the bundle inflates to more than {_mb(MAX_UNCOMPRESSED)} "
                "(its zip headers say so)"
            )
        by_name[name] = info
    return by_name


def _path_problem(name: str) -> str | None:
    if not name:
        return "an empty path"
    if "\\" in name:
        return "a path with a backslash"
    if _CONTROL.search(name):
        return "a path with a control character"
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "a path with '..'"
    if any(part in ("", ".") for part in parts):
        return "a path with an empty or '.' component"
    return None


@dataclass
class _Budget:
    """Bytes inflated so far: the limit holds however the headers lie."""

    used: int = 0


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                budget.used += len(chunk)
                if size > info.file_size or budget.used > MAX_UNCOMPRESSED:
                    raise BundleRefused(
                        f"{info.orig_filename}: inflates beyond what its zip header says or "
                        f"beyond {_mb(MAX_UNCOMPRESSED)}"
                    )
                chunks.append(chunk)
    except BundleRefused:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
        raise BundleRefused(f"{info.orig_filename}: cannot be read ({err})") from None
    except RuntimeError as err:  # zipfile: encrypted, or a compression it lacks
        raise BundleRefused(f"{info.orig_filename}: cannot be read ({err})") from None
    return b"".join(chunks)


def _manifest(raw: bytes) -> dict[str, tuple[str, int]]:
    """``.info/CONTENT``: path -> (sha256, size in bits). Either flwr's layout (1.26.1 ends
    every line with a newline, 1.42 joins them); lines as Flower's install splits them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleRefused(f"{CONTENT}: not UTF-8 text") from None
    listed: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3 or not _DIGEST.fullmatch(fields[1]) or not fields[2].isdigit():
            raise BundleRefused(
                f"{CONTENT}: line {number} is not 'path,sha256,bits' (Flower's install "
                "could not read it)"
            )
        path, digest, bits = fields
        problem = _path_problem(path)
        if problem:
            raise BundleRefused(f"{CONTENT}: line {number} lists {path!r}: {problem}")
        if path in listed:
            raise BundleRefused(f"{CONTENT}: {path} is listed twice")
        if path == CONTENT:
            raise BundleRefused(f"{CONTENT}: lists itself")
        listed[path] = (digest, int(bits))
    return listed


def _pyproject(raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise BundleRefused(f"{PYPROJECT}: not valid TOML ({err})") from None


def _refuse_shadowing(files: Mapping[str, str], *, project: str, own_build: bool) -> None:
    """Refuse a top-level module or package named like one of the standard library or of
    an installed distribution (but, in the aggregator's ``own_build``, the app's own; on a
    datasite no exemption, lest an app named ``numpy`` pass as numpy's own). A folder
    counts if anything importable lies below it: a namespace portion is enough to put
    modules into an installed package's namespace."""
    shadowed = _installed_names()
    for path in files:
        top, _, rest = path.partition("/")
        if rest:
            if not rest.endswith(_IMPORTABLE):
                continue
            module = top
        elif top.endswith(_IMPORTABLE):
            module = top.split(".", 1)[0]
        else:
            continue
        owners = shadowed.get(module.lower())
        if not owners or (own_build and owners == {project}):
            continue
        raise BundleRefused(
            f"{path}: top-level module {module!r} would shadow {_whose(owners, module)}"
        )


def _whose(owners: frozenset[str], module: str) -> str:
    if _STDLIB in owners:
        return f"the standard library's {module!r}"
    if _STARTUP in owners:
        return f"the interpreter's start-up hook {module!r}"
    return f"{module!r} of the installed " + ", ".join(sorted(owners))


def _installed_names() -> dict[str, frozenset[str]]:
    """Lower-cased top-level import names -> who provides them (:data:`_STDLIB`,
    :data:`_STARTUP`, or canonical distribution names), read again once the import path
    changed: a long ``serve`` sees a distribution installed after it started (reading
    them all takes ~100 ms)."""
    state = _import_path_state()
    with _NAMES_LOCK:
        cached = _NAMES_CACHE.get(state)
    if cached is None:
        cached = _read_installed_names()
        with _NAMES_LOCK:
            _NAMES_CACHE.clear()
            _NAMES_CACHE[state] = cached
    return cached


_NAMES_LOCK = threading.Lock()
_NAMES_CACHE: dict[tuple[tuple[str, int], ...], dict[str, frozenset[str]]] = {}
"""The last :func:`_read_installed_names`, by the import path state it was read in."""


def _import_path_state() -> tuple[tuple[str, int], ...]:
    """Each ``sys.path`` entry and its modification time: installing or removing a
    distribution changes its folder's (or the path itself changes)."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, Path(entry or ".").stat().st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def _read_installed_names() -> dict[str, frozenset[str]]:
    """Editable installs often declare no top-level names: a distribution's own name, as
    an import name, counts too."""
    owners: dict[str, set[str]] = {}
    for name in (*sys.stdlib_module_names, *sys.builtin_module_names):
        owners.setdefault(name.lower(), set()).add(_STDLIB)
    for name in _STARTUP_HOOKS:
        owners.setdefault(name, set()).add(_STARTUP)
    for name, dists in packages_distributions().items():
        owners.setdefault(name.lower(), set()).update(_canonical(d) for d in dists)
    for dist in distributions():
        dist_name = dist.metadata["Name"]
        if isinstance(dist_name, str) and dist_name:
            as_module = re.sub(r"[-.]+", "_", dist_name).lower()
            owners.setdefault(as_module, set()).add(_canonical(dist_name))
    return {name: frozenset(who) for name, who in owners.items()}


def _canonical(name: str) -> str:
    """PEP 503's normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _mb(size: int) -> str:
    return f"{size // (1024 * 1024)} MB"
