"""How to install a first-party transport, told truthfully.

The plugin distributions are not registered on a package index yet, and telling people to
``pip install "syftflwr[gdrive]"`` from one would invite anyone to register those names. So
the hint names the folder syftflwr itself was installed from when the installer recorded
one (PEP 610 ``direct_url.json``: ``pip install .`` or ``-e .`` from a clone), and
otherwise says how to install from a clone. Metadata only: nothing is imported.
"""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import urllib.parse
import urllib.request
from pathlib import Path

from syftflwr.registry._entries import FIRST_PARTY_EXTRAS

PLUGINS_ON_INDEX = False
"""Flip (with the release, docs/development.md) once the plugin distributions are
published: hints then name the extras of ``syftflwr`` on the index."""

OWN_ENVIRONMENT = {"syftbox": "in an environment of its own: it needs flwr 1.26.1"}


def source_folder(distribution: str = "syftflwr") -> Path | None:
    """The local directory ``distribution`` was installed from, if its installer recorded
    one (PEP 610): a ``file:`` URL with ``dir_info``. An archive or an index install: None."""
    try:
        text = importlib.metadata.distribution(distribution).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        data = json.loads(text or "null")
    except ValueError:
        return None
    if not isinstance(data, dict) or "dir_info" not in data:
        return None
    url = urllib.parse.urlparse(str(data.get("url", "")))
    if url.scheme != "file":
        return None
    folder = Path(urllib.request.url2pathname(url.path))
    return folder if folder.is_dir() else None


def install_hint(name: str) -> str:
    """What to run (or do) to install the first-party transport ``name``, for a ``fix:``
    line."""
    where = f" ({OWN_ENVIRONMENT[name]})" if name in OWN_ENVIRONMENT else ""
    if PLUGINS_ON_INDEX:
        return f'pip install "syftflwr[{FIRST_PARTY_EXTRAS[name]}]"{where}'
    folder = source_folder()
    plugin = folder / "plugins" / name if folder else None
    if plugin is not None and (plugin / "pyproject.toml").is_file():
        return f"pip install {shlex.quote(str(plugin))}{where}"
    return (
        f"syftflwr-{name} is not published on a package index yet: install it from a clone "
        f"of the syftflwr repository with `pip install ./plugins/{name}` in its root{where} "
        "(docs/development.md)"
    )


def reinstall_hint(distribution: str, flag: str = "--force-reinstall") -> str:
    """``pip install FLAG DISTRIBUTION`` for a third-party plugin; for syftflwr's own
    distributions, where they really come from (never an index they are not on)."""
    ours = {"syftflwr": "", **{f"syftflwr-{n}": n for n in FIRST_PARTY_EXTRAS}}
    if PLUGINS_ON_INDEX or distribution not in ours:
        return f"pip install {flag} {distribution}"
    folder, name = source_folder(), ours[distribution]
    target = folder / "plugins" / name if folder and name else folder
    if target is not None and (target / "pyproject.toml").is_file():
        return f"pip install {flag} {shlex.quote(str(target))} (after updating that checkout)"
    return (
        f"{distribution} is not published on a package index yet: reinstall it from an "
        "up-to-date clone of the syftflwr repository (docs/development.md)"
    )
