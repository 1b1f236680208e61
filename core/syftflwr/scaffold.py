"""``syftflwr new NAME``: a ready-to-run Flower app, written from the template shipped in
the wheel (``syftflwr/templates/app``), so it works offline (``flwr new`` downloads its
templates).

The name follows Flower's rule for app names — a letter, then letters, digits and hyphens,
at most 32 characters — because ``flwr build`` refuses anything else, both as the
``[project].name`` and as the directory's name.
"""

from __future__ import annotations

import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from syftflwr._version import supported_flwr
from syftflwr.errors import ConfigError
from syftflwr.names import FLOWER_NAME_MAX, flower_name_problem, suggest_flower_name

PACKAGE_PLACEHOLDER = "__package__"
DEFAULT_PUBLISHER = "syftflwr-user"


def _template() -> Traversable:
    return files("syftflwr") / "templates" / "app"


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_dir():
            found += _walk(item, (*prefix, item.name))
        elif item.name.endswith(".tmpl"):
            found.append(((*prefix, item.name.removesuffix(".tmpl")), item.read_text("utf-8")))
    return found


def new_app(target: str | Path, *, publisher: str = DEFAULT_PUBLISHER) -> list[Path]:
    """Write the template into the new directory ``target`` (its name is the app's name);
    return the files written.

    :raises ConfigError: an invalid name (with a valid one in the fix), or a ``target``
        that exists and is not an empty directory.
    """
    target = Path(target)
    name = target.name
    problem = flower_name_problem(name)
    if problem:
        parent = "" if str(target.parent) == "." else f"{target.parent}/"
        raise ConfigError(
            f"{name!r} cannot be a Flower app's name: {problem} (Flower's rule: a letter, "
            f"then letters, digits and hyphens, at most {FLOWER_NAME_MAX} characters)",
            key="NAME",
            fix=f"syftflwr new {parent}{suggest_flower_name(name) or 'my-app'}",
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target} already exists and is not an empty directory",
            key="NAME",
            fix="choose another name, or move it away first (nothing was written)",
        )
    package = name.lower().replace("-", "_")
    values = {
        "project_name": name,
        "package": package,
        "app_name": name.lower(),
        "publisher": publisher,
        "flwr_requirement": supported_flwr(),
    }
    written = []
    for parts, text in _walk(_template()):
        path = target.joinpath(*(package if p == PACKAGE_PLACEHOLDER else p for p in parts))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(text).substitute(values), encoding="utf-8")
        written.append(path)
    return written
