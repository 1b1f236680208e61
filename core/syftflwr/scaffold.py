"""``syftflwr new NAME``: a ready-to-run Flower app, written from the template shipped in
the wheel (``syftflwr/templates/app``), so it works offline (``flwr new`` downloads its
templates).

The name follows Flower's rule for app names — a letter, then letters, digits and hyphens,
at most 32 characters — because ``flwr build`` refuses anything else, both as the
``[project].name`` and as the directory's name.
"""

from __future__ import annotations

import re
import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from syftflwr._version import supported_flwr
from syftflwr.errors import ConfigError

MAX_NAME_LENGTH = 32
"""Flower's limit (``flwr.supercore.constant.MAX_NAME_LENGTH``)."""
_FLOWER_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9-]{{0,{MAX_NAME_LENGTH - 1}}}")
PACKAGE_PLACEHOLDER = "__package__"
DEFAULT_PUBLISHER = "syftflwr-user"


def flower_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Flower app name, or None."""
    if _FLOWER_NAME.fullmatch(name):
        return None
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name)} characters (at most {MAX_NAME_LENGTH})"
    if not name[0].isalpha() or not name[0].isascii():
        return "it must start with a letter"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "-"))})
    return f"it may hold only letters, digits and hyphens, not {' '.join(map(repr, bad))}"


def suggest_name(name: str) -> str:
    """The nearest valid name: other runs of characters become one hyphen."""
    words = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    words = words if words[:1].isalpha() else f"app-{words}".rstrip("-")
    return words[:MAX_NAME_LENGTH].rstrip("-")


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
            f"then letters, digits and hyphens, at most {MAX_NAME_LENGTH} characters)",
            key="NAME",
            fix=f"syftflwr new {parent}{suggest_name(name) or 'my-app'}",
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
