"""Hold a plugin's source to the plugin API: it imports ``syftflwr.plugin`` (plus
``syftflwr``'s own public names and, in tests, ``syftflwr.testing``) and nothing else of
core. Everything else in core is private and may change in any release.

Run it over a plugin's sources (``python -m syftflwr.testing.plugin_imports src tests``,
or :func:`check_imports` in a test); each finding names the file, the line, what was
imported and the name to import instead. It reads ``import x``, ``from x import y``
and the string arguments of ``importlib.import_module``/``__import__``.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PUBLIC_MODULES = ("syftflwr.plugin", "syftflwr.testing")
"""Modules (with their submodules, for ``syftflwr.testing``) a plugin may import."""


@dataclass(frozen=True)
class ImportFinding:
    """One import of a private part of core."""

    path: Path
    line: int
    imported: str
    """What the source names: ``syftflwr.mailbox.storage.BaseStorage``, ``syftflwr.names``."""
    replacement: str | None
    """The same object in the plugin API (``syftflwr.plugin.BaseStorage``), or None."""

    def __str__(self) -> str:
        if self.replacement is not None:
            fix = f"use {self.replacement}"
        else:
            fix = "not part of the plugin API: import what you need from syftflwr.plugin"
        return f"{self.path}:{self.line}: {self.imported} is private to syftflwr; {fix}"


def _is_public_module(module: str) -> bool:
    return module == "syftflwr" or any(
        module == public or module.startswith(public + ".") for public in PUBLIC_MODULES
    )


def _replacement(module: str, name: str | None) -> str | None:
    """``syftflwr.plugin.X`` for ``module.name`` (or for the module itself)."""
    from syftflwr import _deprecation, plugin

    if name is None:
        parent, _, name = module.rpartition(".")
        module = parent
    homes = {"syftflwr.errors", "syftflwr.info"}
    for target in plugin._LAZY.values():
        parts = target.partition(":")[0].split(".")
        homes.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    if module not in homes:  # never imported: a module like syftflwr.flower costs seconds
        return None
    try:
        value = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    public = _deprecation.replacement(module, name, value)
    return None if public is None else f"syftflwr.plugin.{public}"


def _module_findings(path: Path, line: int, module: str) -> Iterator[ImportFinding]:
    if module.startswith("syftflwr.") and not _is_public_module(module):
        yield ImportFinding(path, line, module, _replacement(module, None))


def _imported_module(call: ast.Call) -> str | None:
    """The constant module name of ``importlib.import_module("x")``/``__import__("x")``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def check_source(path: Path, source: str | None = None) -> list[ImportFinding]:
    """Every private import in one file."""
    from syftflwr import plugin

    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    found: list[ImportFinding] = []
    top_level = set(getattr(importlib.import_module("syftflwr"), "__all__", ()))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.extend(_module_findings(path, node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module == "syftflwr":
                for alias in node.names:
                    if alias.name not in top_level and not _is_public_module(
                        f"syftflwr.{alias.name}"
                    ):
                        found.append(
                            ImportFinding(
                                path,
                                node.lineno,
                                f"syftflwr.{alias.name}",
                                _replacement(f"syftflwr.{alias.name}", None),
                            )
                        )
            elif module == "syftflwr.plugin":
                for alias in node.names:
                    if alias.name != "*" and alias.name not in plugin.__all__:
                        found.append(
                            ImportFinding(path, node.lineno, f"{module}.{alias.name}", None)
                        )
            elif module.startswith("syftflwr.") and not _is_public_module(module):
                for alias in node.names:
                    name = None if alias.name == "*" else alias.name
                    imported = f"{module}.{alias.name}"
                    replacement = _replacement(module, name) if name else None
                    found.append(ImportFinding(path, node.lineno, imported, replacement))
        elif isinstance(node, ast.Call):
            module_name = _imported_module(node)
            if module_name is not None:
                found.extend(_module_findings(path, node.lineno, module_name))
    return found


def check_imports(paths: Iterable[Path]) -> list[ImportFinding]:
    """Every private import in the ``.py`` files under ``paths`` (files or folders)."""
    found: list[ImportFinding] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for file in files:
            found.extend(check_source(file))
    return found


def main(argv: list[str] | None = None) -> int:
    findings = check_imports(Path(p) for p in (argv if argv is not None else sys.argv[1:]))
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
