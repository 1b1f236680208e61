"""Docs that run as written: what the pages state is checked against the code.

* the supported Flower range is declared once (core's ``flwr>=OLDEST,<CAP``), and every page
  stating it, the noxfile's matrix and the installed Flower agree with it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


# --------------------------------------------------------------------------- Flower range
RANGE_STATED = re.compile(
    r"(?:Flower|flwr)\W{0,3}(\d+\.\d+\.\d+)\W{0,3}\s(?:\u2013|-|through|to)\s\W{0,3}(\d+\.\d+\.x)"
)


def test_flwr_range_is_stated_as_declared() -> None:
    declared = load_tool("flwr_range").flwr_range()
    stated = [
        (page.relative_to(ROOT), m.group(1), m.group(2))
        for page in pages()
        for m in RANGE_STATED.finditer(" ".join(page.read_text().split()))
    ]
    assert len({p for p, _, _ in stated}) >= 2, stated  # index.md and flower.md state it
    wrong = [s for s in stated if s[1:] != (declared.oldest, declared.newest_minor)]
    assert not wrong, f"pages state another range than {declared.spec}: {wrong}"
    assert declared.spec in (DOCS / "index.md").read_text()


def test_flwr_range_matches_core_metadata_and_installed_flower() -> None:
    declared = load_tool("flwr_range").flwr_range()
    from syftflwr.flower.compat import supported_flwr

    requirement = Requirement(supported_flwr())
    assert requirement.specifier == Requirement(declared.spec).specifier
    assert Version(declared.oldest) in requirement.specifier
    assert Version(declared.newest) in requirement.specifier
    assert Version(importlib.metadata.version("flwr")) in requirement.specifier


def test_flwr_range_helper_refuses_an_unbounded_range(tmp_path: Path) -> None:
    tool = load_tool("flwr_range")
    for spec in ("flwr>=1.26.1,<2", "flwr>=1.26.1", "flwr>=1.26.1,<1.0"):
        pyproject = tmp_path / "pyproject.toml"
        pyproject.write_text(f'[project]\ndependencies = ["{spec}"]\n')
        with pytest.raises(ValueError, match="flwr"):
            tool.flwr_range(pyproject)
