"""Two measures of core's shape that issue 18 (core clean-up) is judged by.

* **Code lines** of ``core/syftflwr``: counted from the token stream, so docstrings,
  comments and blank lines do not count; ``testing/`` (the kit shipped to plugin
  authors) is left out.
* **Import cycles** between core's units (each subpackage, or top-level module, of
  ``syftflwr``): every ``import``/``from`` anywhere in a file (module level, inside a
  function, under ``TYPE_CHECKING``) and every string import
  (``importlib.import_module("syftflwr.x")``, ``find_spec``), because a lazy import
  still ties two units together. ``syftflwr/__init__.py`` (the lazy public façade) and
  ``testing/`` are not units.

    python tools/core_shape.py            # code lines per file, total, and every cycle
    python tools/core_shape.py --cycles   # exit 1 if core has an import cycle

``tests/test_architecture.py`` runs the cycle check.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "syftflwr"
_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
_STRING_IMPORTERS = {"import_module", "find_spec", "__import__"}


def core_files(core: Path = CORE) -> Iterator[Path]:
    for path in sorted(core.rglob("*.py")):
        if path.relative_to(core).parts[0] != "testing":
            yield path


def code_lines(source: str) -> int:
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def _unit(relative: Path) -> str:
    return relative.parts[0].removesuffix(".py")


def _imported(path: Path, core: Path) -> Iterator[str]:
    """Every ``syftflwr.*`` module name *path* imports, absolute."""
    relative = path.relative_to(core)
    package = ["syftflwr", *relative.parts[:-1]]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in _STRING_IMPORTERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                yield first.value


def import_graph(core: Path = CORE) -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files (relative to core) that import it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in core_files(core):
        relative = path.relative_to(core)
        if relative == Path("__init__.py"):
            continue
        source = _unit(relative)
        for module in _imported(path, core):
            parts = module.split(".")
            if parts[0] != "syftflwr" or len(parts) < 2:
                continue
            target = parts[1]
            if target not in (source, "testing", "_version"):
                graph.setdefault(source, {}).setdefault(target, set()).add(str(relative))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(graph: dict[str, dict[str, set[str]]], component: list[str]) -> str:
    members = set(component)
    edges = [
        f"  {a} -> {b}  ({', '.join(sorted(graph[a][b]))})"
        for a in component
        for b in sorted(graph.get(a, {}))
        if b in members
    ]
    return f"cycle among {', '.join(component)}:\n" + "\n".join(edges)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", action="store_true", help="only check for import cycles")
    parser.add_argument("--core", type=Path, default=CORE)
    args = parser.parse_args(argv)
    graph = import_graph(args.core)
    found = cycles(graph)
    if not args.cycles:
        files = core_files(args.core)
        counts = {p.relative_to(args.core): code_lines(p.read_text()) for p in files}
        for path, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"{n:6d}  {path}")
        print(f"{sum(counts.values()):6d}  code lines in {args.core} (testing/ excluded)")
    for component in found:
        print(describe(graph, component))
    print(f"{len(found)} import cycle(s)")
    return 1 if found and args.cycles else 0


if __name__ == "__main__":
    sys.exit(main())
