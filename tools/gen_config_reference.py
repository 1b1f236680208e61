"""Generate docs/reference/configuration.md from the code that validates configuration.

Sources, so the page cannot drift from what syftflwr accepts:

* ``[tool.syftflwr]`` keys: :data:`syftflwr.config.project.KEYS` (meaning, environment
  variable, flag, accepted values) and :class:`~syftflwr.config.project.ProjectConfig` (defaults);
* the participant's ``settings.toml``: :data:`syftflwr.config.participant.KEYS`;
* each transport's ``[tool.syftflwr.transport.<name>]`` table: the ``OptionSpec``s its
  ``syftflwr_transport_info`` hook declares — core's ``memory`` and every first-party
  plugin under ``plugins/``, loaded from source through the registry (installed or not,
  so the page is the same in every environment).

    python tools/gen_config_reference.py            # rewrite the page
    python tools/gen_config_reference.py --check    # exit 1 if the page is stale

``tests/test_kit.py`` runs the check, and so does ``nox -s docs``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "reference" / "configuration.md"
PLUGINS = ROOT / "plugins"

DATASITES_HELP = (
    "The participants that run the ClientApp: an array of emails, no duplicates, not the "
    "aggregator. Only they may send requests to the aggregator and only its requests reach "
    "them."
)
"""``datasites`` is an array, validated apart from the scalar keys' ``OptionSpec``s."""

TRANSPORT_TABLES_HELP = (
    "Per-participant option tables, `[transport.<name>]`, over the project's (tokens, local roots)."
)
"""The settings file's ``transport`` tables (its scalar keys describe themselves)."""

ENVIRONMENT = {
    "SYFTFLWR_EMAIL": "the participant's email",
    "SYFTFLWR_STATE_DIR": "the participant's state directory",
    "SYFTFLWR_SETTINGS": "the participant's settings file (must exist when set)",
    "SYFTFLWR_HOME": "the directory holding `settings.toml`, `state/` (and default roots)",
    "SYFTFLWR_DISABLE_PLUGINS": "comma-separated transport or distribution names never "
    "imported (not configuration: a safety valve for broken plugins)",
}


# --------------------------------------------------------------------------- helpers
def cell(value: object) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def code(value: object) -> str:
    return f"`{value}`"


def show_default(value: object) -> str:
    if value is None or value == ():
        return "—"
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, int) and value >= 10_000:
        return code(f"{value}") + f" ({value:,} bytes)"
    if isinstance(value, str):
        return code(f'"{value}"')
    return code(value)


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


# --------------------------------------------------------------------------- sections
def project_section() -> list[str]:
    from syftflwr.config.project import DEFAULT_ENCRYPTION, KEYS, TABLE, ProjectConfig

    defaults = {f.name: f.default for f in dataclasses.fields(ProjectConfig)}
    defaults["encryption"] = DEFAULT_ENCRYPTION  # the field is None: "not set, use the default"
    rows = [
        [
            code(spec.name),
            show_default(defaults.get(spec.name)),
            code(spec.env) if spec.env else "—",
            code(spec.flag) if spec.flag else "—",
            f"{spec.help} Accepted: {spec.fix}.",
        ]
        for spec in KEYS.values()
    ]
    rows.insert(2, [code("datasites"), "—", "—", "—", DATASITES_HELP])
    return [
        f"## `[{TABLE}]`",
        "",
        "Shared by every participant (the project's `pyproject.toml`). Precedence: command "
        "line > environment > file > default.",
        "",
        *table(["key", "default", "environment", "flag", "meaning"], rows),
        "",
    ]


def participant_section() -> list[str]:
    from syftflwr.config.participant import KEYS

    rows = [[code(spec.name), spec.help] for spec in KEYS.values()]
    rows.append([code("transport"), TRANSPORT_TABLES_HELP])
    return [
        "## The participant's `settings.toml`",
        "",
        "One person's settings (`$SYFTFLWR_HOME/settings.toml`, else the per-user config "
        "directory, or `SYFTFLWR_SETTINGS`).",
        "",
        *table(["key", "meaning"], rows),
        "",
    ]


def environment_section() -> list[str]:
    from syftflwr.config.project import KEYS

    rows = [[code(k.env), f"`{k.name}`"] for k in KEYS.values() if k.env]
    rows += [[code(var), text] for var, text in ENVIRONMENT.items()]
    rows.append(
        [
            "`SYFTFLWR_<TRANSPORT>_<OPTION>`",
            "a transport option (upper case, `-` → `_`) unless it declares another name",
        ]
    )
    return ["## Environment variables", "", *table(["variable", "sets"], rows), ""]


def transport_section(name: str, info: Any, origin: str) -> list[str]:
    from syftflwr.config.options import option_env_name

    lines = [f"### `{name}`", "", f"{info.description} *({origin})*", ""]
    if not info.options:
        return [*lines, "No options.", ""]
    rows = []
    for spec in info.options:
        notes = []
        if spec.required:
            notes.append("required")
        if spec.choices:
            notes.append("one of " + ", ".join(code(c) for c in spec.choices))
        if spec.range:
            notes.append(code(spec.range))
        where = "participant" if spec.participant else "project"
        rows.append(
            [
                code(spec.name),
                spec.type,
                "—" if spec.required else show_default(spec.default),
                code(option_env_name(name, spec)),
                where,
                spec.help + (f" ({'; '.join(notes)})" if notes else ""),
            ]
        )
    header = ["option", "type", "default", "environment", "usually set by", "meaning"]
    return [*lines, *table(header, rows), ""]


def first_party_plugins() -> list[tuple[str, str, Path]]:
    """``(transport name, hook module, src folder)`` of every plugin under plugins/."""
    found = []
    for pyproject in sorted(PLUGINS.glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        group = data.get("project", {}).get("entry-points", {}).get("syftflwr.transports", {})
        for name, target in sorted(group.items()):
            found.append((name, target, pyproject.parent / "src"))
    return found


def transports_section() -> list[str]:
    from syftflwr.hookspecs import ENTRY_POINT_GROUP
    from syftflwr.registry import Registry

    core = Registry(
        entry_points=[
            ep
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            if ep.dist is not None and ep.dist.metadata["Name"] == "syftflwr"
        ],
        disabled=(),
    )
    plugins = first_party_plugins()
    for _, _, src in plugins:
        if str(src) not in sys.path:
            sys.path.insert(0, str(src))
    from_source = Registry(
        entry_points=[
            importlib.metadata.EntryPoint(name=n, value=t, group=ENTRY_POINT_GROUP)
            for n, t, _ in plugins
        ],
        disabled=(),
    )
    lines = [
        "## Transport options",
        "",
        "Each transport validates its own table, `[tool.syftflwr.transport.<name>]` in the "
        "project and `[transport.<name>]` in a participant's `settings.toml` (which wins). "
        "*Usually set by*: `project` options are shared; `participant` options (tokens, "
        "local roots) belong in each person's settings or environment.",
        "",
    ]
    for name in core.names():
        lines += transport_section(name, core.load(name).info, "built into core")
    for name, _, src in plugins:
        origin = f"plugin `{src.parent.relative_to(ROOT).as_posix()}`"
        lines += transport_section(name, from_source.load(name).info, origin)
    return lines


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by tools/gen_config_reference.py from the code; do not edit. -->",
        "",
        "Every key syftflwr reads, with its default, environment variable and flag. The "
        "[configuration guide](../configuration.md) explains the layers and precedence.",
        "",
        *project_section(),
        *participant_section(),
        *environment_section(),
        *transports_section(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args(argv)
    text = render()
    current = OUTPUT.read_text() if OUTPUT.exists() else ""
    if args.check:
        if current != text:
            print(
                f"{OUTPUT.relative_to(ROOT)} is out of date with the code;\n"
                "  fix: python tools/gen_config_reference.py (and commit the page)",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != text:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
