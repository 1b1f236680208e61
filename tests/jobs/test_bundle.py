"""Reading a received FAB (``syftflwr.jobs.bundle``): what review shows, every refusal of
issue 19 item 4 as one line, diffs, "same files, other build" — and never an import."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
from _bundle_apps import (
    PACKAGE,
    STORED_VERSIONS,
    markers_written,
    rezip,
    stored_fab,
    write_app,
)
from syftflwr.jobs.bundle import (
    MAX_UNCOMPRESSED,
    BundleRefused,
    diff_bundles,
    inspect_bundle,
    same_files,
)
from syftflwr.jobs.fab import build_fab


@pytest.fixture(scope="module")
def fab(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_fab(write_app(tmp_path_factory.mktemp("app") / "app")).data


def _refused(data: bytes) -> str:
    with pytest.raises(BundleRefused) as refused:
        inspect_bundle(data)
    message = str(refused.value)
    assert "\n" not in message, "a refusal is one line"
    return message


def test_inspect_shows_files_entry_points_config_and_dependencies(fab: bytes) -> None:
    info = inspect_bundle(fab)

    assert info.fab_hash == hashlib.sha256(fab).hexdigest()
    assert (info.name, info.version, info.publisher) == ("marker-app", "1.0.0", "syftflwr-tests")
    assert info.entry_points == {
        "serverapp": f"{PACKAGE}.server_app:app",
        "clientapp": f"{PACKAGE}.client_app:app",
    }
    assert info.run_config == {"num-server-rounds": 2, "lr": 0.1}
    assert info.dependencies == ("flwr>=1.26.1,<2", "numpy>=1.26")
    with zipfile.ZipFile(io.BytesIO(fab)) as archive:
        expected = {
            n: hashlib.sha256(archive.read(n)).hexdigest()
            for n in archive.namelist()
            if n != ".info/CONTENT"
        }
        inflated = sum(i.file_size for i in archive.infolist() if i.filename != ".info/CONTENT")
    assert dict(info.files) == expected and "pyproject.toml" in info.files
    assert info.compressed_size == len(fab)
    assert info.uncompressed_size >= inflated


@pytest.mark.parametrize("version", STORED_VERSIONS)
def test_fabs_of_both_flwr_versions_are_read(version: str) -> None:
    """1.26.1 writes pyproject.toml outside .info/CONTENT and ends every line with a
    newline; 1.42 lists it and joins the lines: both are accepted."""
    info = inspect_bundle(stored_fab(version))
    assert info.name == "marker-app" and f"{PACKAGE}/client_app.py" in info.files


def test_same_source_built_by_both_flwr_versions_is_same_files_other_build() -> None:
    old, new = (stored_fab(v) for v in STORED_VERSIONS)
    before, after = inspect_bundle(old), inspect_bundle(new)

    assert before.fab_hash != after.fab_hash
    assert same_files(before, after)
    assert diff_bundles(old, new) == ""
    with zipfile.ZipFile(io.BytesIO(old)) as a, zipfile.ZipFile(io.BytesIO(new)) as b:
        differing = {n for n in set(a.namelist()) | set(b.namelist()) if a.read(n) != b.read(n)}
    assert differing == {".info/CONTENT"}


def test_this_flwr_rebuilds_same_files_as_the_other_version(tmp_path: Path) -> None:
    built = inspect_bundle(build_fab(write_app(tmp_path / "app")).data)
    for version in STORED_VERSIONS:
        assert same_files(built, inspect_bundle(stored_fab(version)))


def test_a_changed_app_is_not_same_files(tmp_path: Path, fab: bytes) -> None:
    changed = build_fab(write_app(tmp_path / "app", config="num-server-rounds = 3\nlr = 0.1\n"))
    assert not same_files(inspect_bundle(fab), inspect_bundle(changed.data))


# ----------------------------------------------------------------------------- refusals


def test_a_member_missing_from_content_is_refused(fab: bytes) -> None:
    message = _refused(rezip(fab, add={f"{PACKAGE}/extra.py": b"print('hi')\n"}))
    assert message.startswith(f"{PACKAGE}/extra.py: not listed in .info/CONTENT")


def test_a_file_listed_but_absent_is_refused(fab: bytes) -> None:
    content = _content(fab) + "\nghost.py," + "0" * 64 + ",0"
    assert "ghost.py: listed in .info/CONTENT but not in the archive" in _refused(
        rezip(fab, replace={".info/CONTENT": content.encode()})
    )


def test_a_file_altered_after_build_is_refused(fab: bytes) -> None:
    member = f"{PACKAGE}/client_app.py"
    message = _refused(rezip(fab, replace={member: b"import os\n"}))
    assert message.startswith(member) and "differs" in message


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../outside.py", "'..'"),
        (f"{PACKAGE}/../../outside.py", "'..'"),
        ("/etc/cron.d/job.py", "absolute path"),
        ("C:/evil.py", "absolute path"),
        ("pkg\\..\\evil.py", "backslash"),
        ("pkg/evil\n.py", "control character"),
        ("pkg//evil.py", "empty or '.' component"),
    ],
)
def test_an_unsafe_path_is_refused_even_when_listed(fab: bytes, name: str, problem: str) -> None:
    message = _refused(rezip(fab, add={name: b"x = 1\n"}, listed=True))
    assert problem in message and repr(name) in message


def test_a_symlink_is_refused(fab: bytes) -> None:
    link = zipfile.ZipInfo(f"{PACKAGE}/data.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = _with_member(fab, link, b"/etc/passwd")
    assert "a symlink" in _refused(data)


def test_a_device_or_fifo_member_is_refused(fab: bytes) -> None:
    fifo = zipfile.ZipInfo(f"{PACKAGE}/pipe.py")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    assert "not a regular file" in _refused(_with_member(fab, fifo, b""))


def test_a_member_stored_twice_is_refused(fab: bytes) -> None:
    member = f"{PACKAGE}/task.py"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        data = rezip(fab, add={member: b"import os\n"})
    assert "stored twice" in _refused(data)


def test_more_than_100_mb_inflated_is_refused_from_the_headers(fab: bytes) -> None:
    """A zip bomb (~100 KB compressed) is refused before anything is inflated."""
    bomb = b"\0" * (MAX_UNCOMPRESSED + 1)
    data = rezip(fab, add={f"{PACKAGE}/weights.py": bomb}, listed=True)
    assert len(data) < 2 * 1024 * 1024
    assert "more than 100 MB" in _refused(data) and "headers" in _refused(data)


def test_a_header_that_understates_the_size_is_caught_while_reading(fab: bytes) -> None:
    member = f"{PACKAGE}/weights.py"
    real = b"w = 0\n" * 200_000
    data = _lie_about_size(rezip(fab, add={member: real}, listed=True), member, 100)
    message = _refused(data)
    assert message.startswith(member)


def test_a_header_that_overstates_the_size_is_refused_before_reading(fab: bytes) -> None:
    member = f"{PACKAGE}/weights.py"
    data = rezip(fab, add={member: b"w = 0\n"}, listed=True)
    assert "more than 100 MB" in _refused(_lie_about_size(data, member, MAX_UNCOMPRESSED + 1))


@pytest.mark.parametrize(
    ("name", "whose"),
    [
        ("numpy.py", "'numpy' of the installed numpy"),
        ("numpy/__init__.py", "'numpy' of the installed numpy"),
        ("sitecustomize.py", "the interpreter's start-up hook 'sitecustomize'"),
        ("usercustomize.py", "the interpreter's start-up hook 'usercustomize'"),
        ("json/__init__.py", "the standard library's 'json'"),
        ("Logging.py", "the standard library's 'Logging'"),
        ("flwr/common/__init__.py", "'flwr' of the installed flwr"),
        ("syftflwr/__init__.py", "'syftflwr' of the installed syftflwr"),  # an editable install
    ],
)
def test_a_top_level_module_shadowing_stdlib_or_installed_is_refused(
    fab: bytes, name: str, whose: str
) -> None:
    message = _refused(rezip(fab, add={name: b"x = 1\n"}, listed=True))
    assert message.startswith(f"{name}: top-level module") and whose in message


def test_folders_and_files_that_cannot_be_imported_do_not_count_as_shadowing(
    fab: bytes,
) -> None:
    data = rezip(fab, add={"json/schema.md": b"# schema\n", "numpy.md": b"#\n"}, listed=True)
    assert inspect_bundle(data).name == "marker-app"


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", b"PK\x03\x04" + b"\0" * 40],
)
def test_what_is_not_a_zip_is_refused(data: bytes) -> None:
    assert _refused(data).startswith("not a FAB")


def test_a_zip_without_content_or_pyproject_is_refused(fab: bytes) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("pyproject.toml", b"")
    assert "no .info/CONTENT" in _refused(out.getvalue())

    lines = [line for line in _content(fab).split("\n") if not line.startswith("pyproject")]
    without = _drop(
        rezip(fab, replace={".info/CONTENT": "\n".join(lines).encode()}), "pyproject.toml"
    )
    assert "no pyproject.toml" in _refused(without)


def test_a_malformed_manifest_is_refused(fab: bytes) -> None:
    bad = _content(fab) + "\nweird,line"
    assert "is not 'path,sha256,bits'" in _refused(
        rezip(fab, replace={".info/CONTENT": bad.encode()})
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('name = "marker-app"', 'name = "marker_app"', "pyproject.toml: [project].name: 'marker_"),
        (
            "lr = 0.1",
            '"lr\\n\\u001b[2J" = [0.1]',
            "pyproject.toml: [tool.flwr.app.config].lr\\n\\x1b[2J: a run-config value",
        ),
    ],
)
def test_a_pyproject_flwr_142_would_refuse_is_refused_in_one_line(
    fab: bytes, old: str, new: str, expected: str
) -> None:
    """Control characters a hostile pyproject puts in a key come out escaped."""
    text = _members(fab)["pyproject.toml"].decode()
    assert old in text
    text = text.replace(old, new)
    lines = [
        f"pyproject.toml,{hashlib.sha256(text.encode()).hexdigest()},{len(text.encode()) * 8}"
        if line.startswith("pyproject.toml,")
        else line
        for line in _content(fab).split("\n")
    ]
    data = rezip(
        fab, replace={"pyproject.toml": text.encode(), ".info/CONTENT": "\n".join(lines).encode()}
    )
    assert _refused(data).startswith(expected)


# ----------------------------------------------------------------------------- diffs


def test_diff_lists_added_removed_changed_and_shows_text_changes(tmp_path: Path) -> None:
    old = build_fab(
        write_app(tmp_path / "one", extra={"notes.md": b"\xff\xfe\x00binary", "gone.md": b"x\n"})
    ).data
    project = write_app(
        tmp_path / "two",
        version="1.1.0",
        config="num-server-rounds = 5\nlr = 0.1\n",
        extra={"notes.md": b"\xff\xfe\x00other", f"{PACKAGE}/new.py": b"VALUE = 1\n"},
    )
    (project / PACKAGE / "task.py").write_text("def steps() -> int:\n    return 4")
    new = build_fab(project).data

    diff = diff_bundles(old, new)

    head, _, body = diff.partition("\n\n")
    assert head.split("\n") == [
        "removed: gone.md",
        f"added:   {PACKAGE}/new.py",
        f"changed: {PACKAGE}/task.py",
        "changed: notes.md",
        "changed: pyproject.toml",
    ]
    assert f"--- /dev/null\n+++ b/{PACKAGE}/new.py\n" in body and "+VALUE = 1\n" in body
    assert "--- a/gone.md\n+++ /dev/null\n" in body
    assert "-    return 3\n+    return 4\n\\ No newline at end of file\n" in body
    assert '-version = "1.0.0"\n+version = "1.1.0"\n' in body
    assert "-num-server-rounds = 2\n+num-server-rounds = 5\n" in body
    binary_old = hashlib.sha256(b"\xff\xfe\x00binary").hexdigest()
    assert f"binary notes.md: sha256 {binary_old} (9 bytes) -> sha256 " in body


def test_diff_of_a_bundle_with_itself_is_empty(fab: bytes) -> None:
    assert diff_bundles(fab, fab) == ""


def test_diff_refuses_an_unsafe_bundle(fab: bytes) -> None:
    hostile = rezip(fab, add={"numpy.py": b"x = 1\n"}, listed=True)
    with pytest.raises(BundleRefused, match="numpy"):
        diff_bundles(fab, hostile)


# ----------------------------------------------------------------------------- never import


def test_build_inspect_and_diff_never_import_the_app(tmp_path: Path) -> None:
    """Markers written at import time by the package's __init__.py and every component
    module: none appears through build, inspection and diff (of a changed version)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    first = build_fab(write_app(tmp_path / "v1", markers=markers)).data
    second = build_fab(write_app(tmp_path / "v2", version="2.0.0", markers=markers)).data

    info = inspect_bundle(second)
    diff = diff_bundles(first, second)

    assert info.entry_points["clientapp"] == f"{PACKAGE}.client_app:app"
    assert '+version = "2.0.0"' in diff
    assert markers_written(markers) == []
    assert not [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]
    # the markers are real: importing the app writes them all
    sys.path.insert(0, str(tmp_path / "v1"))
    try:
        __import__(f"{PACKAGE}.client_app")
        __import__(f"{PACKAGE}.server_app")
        __import__(f"{PACKAGE}.task")
    finally:
        sys.path.remove(str(tmp_path / "v1"))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
    assert markers_written(markers) == [
        f"imported-{m}" for m in sorted(("__init__", "client_app", "server_app", "task"))
    ]


# ----------------------------------------------------------------------------- helpers


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _content(data: bytes) -> str:
    return _members(data)[".info/CONTENT"].decode().rstrip("\n")


def _with_member(data: bytes, info: zipfile.ZipInfo, content: bytes) -> bytes:
    """``data`` plus a member of the given type, listed in .info/CONTENT."""
    listed = rezip(data, add={info.filename: content}, listed=True)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(listed)) as src, zipfile.ZipFile(out, "w") as dst:
        for member in src.infolist():
            dst.writestr(info if member.filename == info.filename else member, src.read(member))
    return out.getvalue()


def _drop(data: bytes, name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for member in src.infolist():
            if member.filename != name:
                dst.writestr(member, src.read(member))
    return out.getvalue()


def _lie_about_size(data: bytes, member: str, size: int) -> bytes:
    """``data`` with ``member``'s uncompressed size rewritten in its local header and its
    central-directory entry (what a hostile zip writer does)."""
    raw = bytearray(data)
    encoded = member.encode()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    struct.pack_into("<I", raw, info.header_offset + 22, size)  # local header
    central = raw.find(b"PK\x01\x02" + raw[4:4], 0)
    while central != -1:
        name_length = struct.unpack_from("<H", raw, central + 28)[0]
        if bytes(raw[central + 46 : central + 46 + name_length]) == encoded:
            struct.pack_into("<I", raw, central + 24, size)
            return bytes(raw)
        central = raw.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"{member} not in the central directory")


def test_an_app_named_like_an_installed_distribution_gets_no_exemption_on_review(
    tmp_path: Path,
) -> None:
    """The aggregator's own build lets its app's installed copy (``pip install -e .``)
    pass; a datasite never does, or an app called numpy would pass as numpy's own."""
    project = write_app(tmp_path / "numpy", name="numpy", extra={"numpy/__init__.py": b""})

    built = build_fab(project)

    assert "numpy/__init__.py" in _members(built.data)
    assert _refused(built.data) == (
        "numpy/__init__.py: top-level module 'numpy' would shadow 'numpy' of the installed numpy"
    )


def _install_fake(site: Path, name: str) -> None:
    """A distribution ``name`` providing the top-level package ``name`` in ``site``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    later = site.stat().st_mtime + 1  # a clock tick of its own, whatever the file system
    os.utime(site, (later, later))


def test_a_distribution_installed_after_start_is_shadowed_too(
    fab: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long ``serve`` keeps inspecting bundles: one that shadows a distribution
    installed since it started is refused all the same. The names were read once per
    process, so such a bundle passed."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    late = rezip(fab, add={"latepkg/__init__.py": b"x = 1\n"}, listed=True)
    assert inspect_bundle(late).name == "marker-app"  # nothing named latepkg yet
    _install_fake(site, "latepkg")  # pip install, into a folder already on the path
    assert "'latepkg' of the installed latepkg" in _refused(late)
