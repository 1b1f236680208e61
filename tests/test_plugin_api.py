"""``syftflwr.plugin``: the one module a transport plugin imports — every name it offers
resolves, type checkers see every lazy one, and importing it stays cheap."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import syftflwr.plugin as plugin

SOURCE = Path(plugin.__file__).read_text()

HEAVY = ("pluggy", "sqlite3", "syftflwr.mailbox", "syftflwr.roles", "watchdog", "flwr", "numpy")
"""Loaded only when a plugin asks for a name that needs it, never by the import itself."""


@pytest.mark.parametrize("name", plugin.__all__)
def test_every_name_resolves(name: str) -> None:
    assert getattr(plugin, name) is not None


def test_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'MailboxRCP'"):
        plugin.MailboxRCP  # noqa: B018


def test_type_checkers_see_every_lazy_name() -> None:
    """Each lazily loaded name is imported under TYPE_CHECKING, from the module the
    runtime table names, so mypy and IDEs resolve it to the same object."""
    tree = ast.parse(SOURCE)
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    seen: dict[str, str] = {}
    for node in ast.walk(block):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                seen[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    assert seen == plugin._LAZY


def test_importing_it_is_cheap() -> None:
    """Listing and detection import every hook module, which imports this one."""
    code = (
        "import sys, json; before = set(sys.modules); import syftflwr.plugin; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy, f"import syftflwr.plugin loaded {heavy}"


def test_all_lists_the_eager_and_the_lazy_names_once() -> None:
    tree = ast.parse(SOURCE)
    eager = {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
    } - {"TYPE_CHECKING", "Any"}
    assert len(plugin.__all__) == len(set(plugin.__all__))
    assert set(plugin.__all__) == eager | set(plugin._LAZY)
