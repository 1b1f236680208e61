"""Flower apps written at test time for the jobs tests, and zips crafted from FABs.

``write_app`` writes a small, real Flower app (a ServerApp and a ClientApp) whose source is
the same bytes every time, so the FABs of ``data_bundle/`` are what flwr 1.26.1 and 1.42.0
build from it (``python tests/jobs/_bundle_apps.py`` rebuilds the one of the installed flwr).
With ``markers``, the package's ``__init__.py`` and each component module write a file
into that folder when imported: a bundle that reaches a datasite must not, until approved.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

DATA = Path(__file__).parent / "data_bundle"
PACKAGE = "marker_app"
MARKED_MODULES = ("__init__", "client_app", "server_app", "task")


def write_app(
    root: Path,
    *,
    name: str = "marker-app",
    version: str = "1.0.0",
    markers: Path | None = None,
    config: str = "num-server-rounds = 2\nlr = 0.1\n",
    federation: str = 'app_name = "marker"\naggregator = "agg@example.org"\n'
    'datasites = ["ds1@example.org"]\n',
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """Write the app into ``root`` (created) and return it."""
    package = root / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"
description = "a Flower app the jobs tests ship"
license = "Apache-2.0"
dependencies = ["flwr>=1.26.1,<2", "numpy>=1.26"]

[tool.flwr.app]
publisher = "syftflwr-tests"

[tool.flwr.app.components]
serverapp = "{PACKAGE}.server_app:app"
clientapp = "{PACKAGE}.client_app:app"

[tool.flwr.app.config]
{config}
[tool.syftflwr]
{federation}""",
        encoding="utf-8",
    )
    (root / "README.md").write_text("# marker-app\n\nShipped by the jobs tests.\n", "utf-8")
    bodies = {
        "__init__": '"""The marker app."""\n',
        "task": "def steps() -> int:\n    return 3\n",
        "client_app": "from flwr.clientapp import ClientApp\n\napp = ClientApp()\n",
        "server_app": "from flwr.serverapp import ServerApp\n\napp = ServerApp()\n",
    }
    for module, body in bodies.items():
        marker = ""
        if markers is not None:
            marker = (
                "from pathlib import Path as _Path\n\n"
                f"_Path({str(markers)!r}, {f'imported-{module}'!r}).write_text('ran')\n"
            )
        (package / f"{module}.py").write_text(marker + body, encoding="utf-8")
    for relative, content in (extra or {}).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def markers_written(folder: Path) -> list[str]:
    """The markers an import of the app's modules wrote (none, while not approved)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def rezip(
    data: bytes,
    *,
    add: Mapping[str, bytes] | None = None,
    replace: Mapping[str, bytes] | None = None,
    listed: bool = False,
) -> bytes:
    """The FAB ``data`` rewritten: members replaced, members added (and, with ``listed``,
    added to ``.info/CONTENT`` with their true hash, so that only the member's name or
    type is wrong)."""
    import hashlib

    add, replace = dict(add or {}), dict(replace or {})
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            content = replace.get(info.filename, src.read(info))
            if info.filename == ".info/CONTENT" and listed:
                lines = content.decode().rstrip("\n").split("\n")
                lines += [
                    f"{n},{hashlib.sha256(c).hexdigest()},{len(c) * 8}" for n, c in add.items()
                ]
                content = "\n".join(lines).encode()
            dst.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED)
        for member, content in add.items():
            dst.writestr(member, content)
    return out.getvalue()


def stored_fab(flwr_version: str) -> bytes:
    """The FAB the given flwr built from ``write_app``'s default source (kept in git)."""
    return (DATA / f"marker-app-flwr-{flwr_version}.fab").read_bytes()


STORED_VERSIONS = ("1.26.1", "1.42.0")


if __name__ == "__main__":  # rebuild the stored FAB of the installed flwr
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "core"))
    from syftflwr.jobs.fab import build_fab

    with tempfile.TemporaryDirectory() as tmp:
        built = build_fab(write_app(Path(tmp) / "marker-app"))
    DATA.mkdir(exist_ok=True)
    target = DATA / f"marker-app-flwr-{built.flwr_version}.fab"
    target.write_bytes(built.data)
    print(f"{target}: {built.fab_hash}")
