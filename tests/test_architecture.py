"""Core's units import only from the units below them (docs/architecture.md): no import
cycle, no import upwards. The imports are read by ``tools/core_shape.py`` (the measure
issue 18 was judged by), which counts every import — at module level, inside a function,
under ``TYPE_CHECKING``, and string imports (``importlib.import_module("syftflwr.x")``):
a lazy import still ties two units together."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("what users call", frozenset({"__main__", "cli", "api", "doctor", "scaffold"})),
    ("apps with consent", frozenset({"jobs"})),
    ("Flower", frozenset({"flower"})),
    ("the built-in transport", frozenset({"transports"})),
    ("the plugin API and the mailbox kit (facades)", frozenset({"plugin", "kit"})),
    ("where config, registry, keys and roles meet", frozenset({"session"})),
    ("discovery, configuration, keys", frozenset({"registry", "config", "crypto"})),
    ("the wire profiles other than the native one", frozenset({"profiles"})),
    ("the mailbox kit for storage-backed transports", frozenset({"mailbox"})),
    (
        "the contract and plain helpers",
        frozenset(
            {
                "roles",
                "hookspecs",
                "capabilities",
                "info",
                "errors",
                "names",
                "envelope",
                "frame",
                "sqlitedb",
                "atomic",
                "processes",
                "signals",
                "deadline",
                "logs",
                "_deprecation",
            }
        ),
    ),
)
"""Top to bottom, as docs/architecture.md draws them. A unit may import its own layer
(without a cycle) and the layers below it."""


def _core_shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("core_shape", ROOT / "tools" / "core_shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layer_of(unit: str) -> int:
    for index, (_name, units) in enumerate(LAYERS):
        if unit in units:
            return index
    raise AssertionError(
        f"syftflwr.{unit} is in no layer: place it in LAYERS (tests/test_architecture.py) "
        "and in docs/architecture.md"
    )


def test_core_has_no_import_cycle() -> None:
    shape = _core_shape()
    graph = shape.import_graph(ROOT / "core" / "syftflwr")
    found = shape.cycles(graph)
    assert not found, "\n".join(shape.describe(graph, component) for component in found)


def test_every_import_goes_down_the_layers() -> None:
    graph = _core_shape().import_graph(ROOT / "core" / "syftflwr")
    upward = [
        f"{unit} ({LAYERS[_layer_of(unit)][0]}) -> {target} ({LAYERS[_layer_of(target)][0]}) "
        f"in {', '.join(sorted(files))}"
        for unit, targets in sorted(graph.items())
        for target, files in sorted(targets.items())
        if _layer_of(target) < _layer_of(unit)
    ]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)
