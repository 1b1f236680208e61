"""mkdocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

Every page under ``docs/transports/`` joins the "Transports" section of the navigation
by itself, after "Choosing a transport", so a plugin's page needs no edit of mkdocs.yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SECTION = "Transports"


def transport_pages(docs_dir: Path) -> list[str]:
    """``transports/<name>.md`` for every transport page, sorted by name."""
    folder = docs_dir / "transports"
    return sorted(p.relative_to(docs_dir).as_posix() for p in folder.glob("*.md"))


def on_config(config: Any) -> Any:
    pages = transport_pages(Path(config["docs_dir"]))
    for item in config["nav"] or []:
        if isinstance(item, dict) and SECTION in item:
            listed = item[SECTION]
            known = {next(iter(e.values())) if isinstance(e, dict) else e for e in listed}
            item[SECTION] = [*listed, *(p for p in pages if p not in known)]
    return config
