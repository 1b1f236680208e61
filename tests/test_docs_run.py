"""Docs that run as written: what the pages show is run, what they state is checked.

* every TOML block of the README, docs/ and the examples' and plugins' READMEs parses with
  tomllib and loads with syftflwr's own config loaders (the project's ``[tool.syftflwr]``
  or a participant's settings file), options validated by each installed transport;
* every command of the README's "What next" runs as written, in order, in a fresh HOME
  (real processes: the datasite in the background, the aggregator killed once so that
  the ``--resume`` line has a run to continue);
* the supported Flower range is declared once (core's ``flwr>=OLDEST,<CAP``), and every page
  stating it, the noxfile's matrix and the installed Flower agree with it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from syftflwr.config import load_participant, load_project, resolve_options
from syftflwr.registry import get_registry

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


# --------------------------------------------------------------------------- TOML blocks
FENCE = re.compile(r"^(?P<indent>[ \t]*)```toml[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


SNIPPET = re.compile(r'--8<-- "(?P<path>[^"]+)"')


def toml_blocks() -> list[tuple[str, str]]:
    """``(page:line, text)`` of every fenced TOML block (indented ones dedented)."""
    readmes = sorted([*ROOT.glob("examples/*/README.md"), *ROOT.glob("plugins/*/README.md")])
    blocks = []
    for page in [*pages(), *readmes]:
        text = page.read_text()
        for m in FENCE.finditer(text):
            indent = len(m.group("indent"))
            body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
            snippet = SNIPPET.fullmatch(body.strip())
            if snippet:  # the docs build includes that file (pymdownx.snippets)
                body = (ROOT / snippet["path"]).read_text()
            line = text[: m.start()].count("\n") + 1
            blocks.append((f"{page.relative_to(ROOT)}:{line}", body))
    return blocks


BLOCKS = toml_blocks()


def test_the_pages_have_toml_blocks_to_check() -> None:
    assert len(BLOCKS) >= 15
    assert any(name.startswith("docs/transports/syftbox.md") for name, _ in BLOCKS)


NOT_HERE = {"foo", "syftbox", "template", "sqlite"}
"""Transports the pages name that this environment lacks: the plugin-author pages'
fictional ``foo``, ``syftbox`` (its own environment) and the example transports."""


def validate_transport_tables(tables: dict[str, Any], load: Any) -> None:
    """Validate each table of an installed transport with its declared options."""
    registry = get_registry()
    for name in tables:
        if name in registry.names():
            load(registry.load(name).info)
        else:
            assert name in NOT_HERE, f"[...transport.{name}]: no such transport"


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_toml_block_parses_and_loads(where: str, text: str, tmp_path: Path) -> None:
    document = tomllib.loads(text)  # "Cannot overwrite a value" and friends fail here
    if "tool" in document or "project" in document or "tool.syftflwr" in text:
        # a pyproject.toml, or a part of one: completed with a [project] name if it has none
        pyproject = tmp_path / "pyproject.toml"
        prefix = "" if "project" in document else '[project]\nname = "doc-example"\n\n'
        pyproject.write_text(prefix + text)
        project = load_project(tmp_path)
        validate_transport_tables(
            project.transport_options,
            lambda info: resolve_options(info, project, None, env={}),
        )
        if "syftflwr" in document.get("tool", {}):
            assert project.configured, where
    else:  # a participant's settings file
        settings = tmp_path / "settings.toml"
        settings.write_text(text)
        participant = load_participant({"SYFTFLWR_SETTINGS": str(settings)})
        assert participant.exists
        validate_transport_tables(
            participant.transport_options,
            lambda info: resolve_options(info, None, participant, env={}),
        )


def test_reference_states_the_effective_encryption_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.syftflwr]\n')
    effective = load_project(tmp_path).encryption_enabled
    reference = (DOCS / "reference" / "configuration.md").read_text()
    stated = re.search(r"^\| `encryption` \| ([^|]+) \|", reference, re.M)
    assert stated is not None and stated.group(1).strip() == f"`{str(effective).lower()}`"
    for page in pages():
        assert "currently off" not in page.read_text(), page


# --------------------------------------------------------------------------- README commands
def what_next() -> list[tuple[str, str]]:
    """``(command, comment)`` of every line in the bash block of the README's What next."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What next", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the README's What next has no bash block"
    lines = []
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("  #")
        if command.strip():
            lines.append((command.strip(), comment.strip()))
    return lines


@pytest.mark.slow
def test_readme_what_next_runs_as_written_in_a_fresh_home(tmp_path: Path) -> None:
    pytest.importorskip("syftflwr_fsspec_local", reason="the README installs fsspec-local")
    from faults.syftflwr_faults import Fault, fault_env

    lines = what_next()
    assert [c.split()[:2] for c, _ in lines][:2] == [
        ["syftflwr", "new"],
        ["syftflwr", "transports"],
    ]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYFTFLWR_", "XDG_"))}
    env.update(
        HOME=str(home),
        FLWR_TELEMETRY_ENABLED="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )

    def run(command: str, run_env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=run_env, capture_output=True,
            text=True, timeout=600, check=False,
        )  # fmt: skip

    def background(command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    datasite_line = next(c for c, why in lines if "on each datasite" in why)
    aggregator_line = next(c for c, why in lines if "on the aggregator" in why)
    datasites: list[subprocess.Popen[str]] = []
    try:
        for command, _why in lines:
            if command == datasite_line:
                datasites.append(background(command))
                continue
            if "--resume" in shlex.split(command):
                # a run to resume: the aggregator line, killed (-9) after round 1's checkpoint
                datasites.append(background(datasite_line))
                kill = Fault("syftflwr.flower.checkpoint:RoundCheckpoints._write", "kill",
                             when="after")  # fmt: skip
                killed = run(aggregator_line, fault_env(kill, base=env))
                assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
            done = run(command)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            if command == aggregator_line or "--resume" in command:
                output, _ = datasites[-1].communicate(timeout=120)  # the run's end stops it
                assert datasites[-1].returncode == 0, output
            if command.startswith("python"):
                assert float(done.stdout.strip()) >= 0.85
    finally:
        for proc in datasites:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


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
    from syftflwr._version import supported_flwr

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
