"""Plugins import core only through the plugin API (``syftflwr.plugin``; ``syftflwr``'s
own public names; ``syftflwr.testing`` in tests): an AST check of every first-party
plugin, the template and the third-party-style test plugins. Core's old import paths
keep working for third parties (tests/test_plugin_compat.py), but no plugin of ours
may depend on them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from syftflwr.testing.plugin_imports import check_imports, check_source

ROOT = Path(__file__).resolve().parents[1]

NOT_YET_PORTED: dict[str, str] = {}
"""Temporary: sources still on core's private paths; each entry must still fail (strict),
so the one who ports a plugin removes it here. Empty once issue 17 is done."""


def _plugin_sources() -> list[str]:
    roots = [p.relative_to(ROOT).as_posix() for p in sorted(ROOT.glob("plugins/*/src"))]
    # examples that are transports (entry point in the group) are checked whole: their
    # tests are what authors copy
    roots += [
        p.parent.relative_to(ROOT).as_posix()
        for p in sorted(ROOT.glob("examples/*/pyproject.toml"))
        if "syftflwr.transports" in p.read_text()
    ]
    # the third-party-style test plugins (the others borrow the built-in memory
    # transport's roles to test the registry, and `oldstyle` is old on purpose)
    roots += ["tests/plugins/tinydir/src", "tests/plugins/sloppy/src"]
    # the built-in transport is written like a third-party one
    roots += ["core/syftflwr/transports"]
    return roots


def test_every_plugin_and_the_template_are_checked() -> None:
    roots = _plugin_sources()
    assert {"plugins/syftbox/src", "examples/transport-template"} <= set(roots)
    assert set(NOT_YET_PORTED) <= set(roots)


@pytest.mark.parametrize(
    "root",
    [
        pytest.param(
            root,
            marks=pytest.mark.xfail(reason=NOT_YET_PORTED[root], strict=True)
            if root in NOT_YET_PORTED
            else (),
        )
        for root in _plugin_sources()
    ],
)
def test_plugin_imports_only_the_plugin_api(root: str) -> None:
    findings = check_imports([ROOT / root])
    assert not findings, "\n".join(str(f) for f in findings)


def test_findings_name_file_line_and_replacement(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """\
        import importlib
        from syftflwr import hookimpl, errors
        from syftflwr.plugin import Storage, MailboxRCP
        from syftflwr.mailbox.storage import BaseStorage
        from syftflwr.crypto import directory
        import syftflwr.names
        from syftflwr.testing.conformance import TransportConformance
        from syftflwr.profiles.syftflwr05 import ENDPOINT
        from syftflwr.flower.grid import TransportGrid

        def later():
            from syftflwr.mailbox import MailboxRPC
            importlib.import_module("syftflwr.mailbox.layout")
            __import__("syftflwr.plugin")
        """
    )
    path = tmp_path / "plugin.py"
    found = {(f.line, f.imported): f for f in check_source(path, source)}
    assert {k: f.replacement for k, f in found.items()} == {
        (2, "syftflwr.errors"): None,
        (3, "syftflwr.plugin.MailboxRCP"): None,
        (4, "syftflwr.mailbox.storage.BaseStorage"): "syftflwr.plugin.BaseStorage",
        (5, "syftflwr.crypto.directory"): None,
        (6, "syftflwr.names"): None,
        (8, "syftflwr.profiles.syftflwr05.ENDPOINT"): "syftflwr.plugin.SYFTFLWR05_ENDPOINT",
        (9, "syftflwr.flower.grid.TransportGrid"): None,
        (12, "syftflwr.mailbox.MailboxRPC"): "syftflwr.plugin.MailboxRPC",
        (13, "syftflwr.mailbox.layout"): None,
    }
    assert str(found[(4, "syftflwr.mailbox.storage.BaseStorage")]) == (
        f"{path}:4: syftflwr.mailbox.storage.BaseStorage is private to syftflwr; "
        "use syftflwr.plugin.BaseStorage"
    )


def test_command_line_exits_1_and_prints_each_finding(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("from syftflwr.names import validate_email\n")
    (tmp_path / "good.py").write_text("from syftflwr.plugin import validate_email\n")
    run = [sys.executable, "-m", "syftflwr.testing.plugin_imports"]
    bad = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout == (
        f"{tmp_path / 'bad.py'}:1: syftflwr.names.validate_email is private to syftflwr; "
        "use syftflwr.plugin.validate_email\n"
    )
    good = subprocess.run(
        [*run, str(tmp_path / "good.py")], capture_output=True, text=True, check=False
    )
    assert (good.returncode, good.stdout) == (0, "")
