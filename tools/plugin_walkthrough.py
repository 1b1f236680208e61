"""Run the walkthrough of docs/plugins.md as written: from an empty folder to a passing
conformance suite and a training run.

Between ``<!-- walkthrough: start -->`` and ``<!-- walkthrough: end -->`` the page holds
bash blocks (run in order, in one shell: ``cd`` carries over) and files (fences with
``title="path"``, whose content is the page's text or the ``--8<-- "file"`` snippet the
docs build includes). This writes each file where the page says, runs each command, and
stops at the first that fails. ``path/to/syftflwr`` is this checkout; HOME is a fresh
folder, so nothing touches the user's own.

    python tools/plugin_walkthrough.py WORKDIR     # WORKDIR: empty or missing
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "plugins.md"
FENCE = re.compile(
    r'^(?P<indent>[ ]*)```(?P<lang>\w+)(?: title="(?P<title>[^"]+)")?\n'
    r"(?P<body>.*?)^(?P=indent)```",
    re.M | re.S,
)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$')


def script(page: str) -> str:
    """The walkthrough as one bash script: commands as written, files as here-documents."""
    start, end = "<!-- walkthrough: start -->", "<!-- walkthrough: end -->"
    if start not in page or end not in page:
        raise SystemExit(f"error: {PAGE} has no walkthrough markers\n  fix: restore {start}")
    section = page.split(start, 1)[1].split(end, 1)[0]
    lines = ["set -euxo pipefail"]
    for fence in FENCE.finditer(section):
        body = textwrap.dedent(fence["body"])
        if fence["title"]:
            snippet = SNIPPET.match(body.strip())
            text = (ROOT / snippet["path"]).read_text() if snippet else body
            lines.append(f"mkdir -p {shlex.quote(str(Path(fence['title']).parent))}")
            lines.append(f"cat > {shlex.quote(fence['title'])} <<'WALKTHROUGH_EOF'")
            lines.append(text.rstrip("\n"))
            lines.append("WALKTHROUGH_EOF")
        elif fence["lang"] == "bash":
            here = shlex.quote(str(ROOT))
            lines.extend(line.replace("path/to/syftflwr", here) for line in body.splitlines())
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    workdir = Path(argv[0]).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "home").mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYFTFLWR_", "XDG_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(FLWR_TELEMETRY_ENABLED="0", HOME=str(workdir / "home"))
    proc = subprocess.run(
        ["bash", "-c", script(PAGE.read_text())], cwd=workdir, env=env, check=False
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
