"""Each distribution declares what its code imports, and bounds from above the libraries
whose internals it reaches into (a minor release may change them).

Static: every import statement of a distribution's package (lazy ones too: they run when
that code does) against its pyproject.toml, so it checks the syftbox plugin too, whose
libraries this environment does not have."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "syftflwr": ROOT / "core" / "syftflwr",
    "syftflwr-fsspec-local": ROOT / "plugins" / "fsspec-local" / "src",
    "syftflwr-gdrive": ROOT / "plugins" / "gdrive" / "src",
    "syftflwr-syftbox": ROOT / "plugins" / "syftbox" / "src",
}
PYPROJECTS = {
    "syftflwr": ROOT / "pyproject.toml",
    **{name: path.parent / "pyproject.toml" for name, path in SOURCES.items() if "-" in name},
}
DISTRIBUTION_OF = {
    "googleapiclient": "google-api-python-client",
    "google.auth": "google-auth",
    "google.oauth2": "google-auth",
    "google_auth_oauthlib": "google-auth-oauthlib",
}
"""Import names that are not their distribution's name (the rest: `_` -> `-`)."""
NOT_REQUIRED = {
    ("syftflwr", "pytest"): "the testing kit (syftflwr.testing), loaded by pytest itself",
    ("syftflwr", "matplotlib"): "plots only; without it they fail naming the install line",
    ("syftflwr-gdrive", "google.colab"): "Colab's own login: the module exists only in Colab",
}
INTERNALS = {
    ("syftflwr", "flwr"): "Grid, serde and app loading (issue 16: the tested minors)",
    ("syftflwr-syftbox", "syft-rpc"): "its protocol models, replies written by its reply_to",
    ("syftflwr-syftbox", "syft-event"): "SyftEvents.obs, server2.PERMS, its handlers",
    ("syftflwr-syftbox", "syft-core"): "Client, SyftClientConfig, SyftBoxURL (0.x)",
    ("syftflwr-syftbox", "syft-crypto"): "did_utils and the X3DH payload format (0.x)",
    ("syftflwr-gdrive", "google-api-python-client"): "discovery_cache.get_static_doc",
    ("syftflwr-gdrive", "google-auth"): "Credentials._token_uri",
}
"""Dependencies reached into beyond their documented API: each needs an upper bound."""


def imported(package_root: Path) -> set[str]:
    """Third-party modules imported anywhere under ``package_root`` (``google.x`` kept whole:
    several distributions share that namespace)."""
    names: set[str] = set()
    for path in package_root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    tops = {".".join(n.split(".")[:2]) if n.startswith("google.") else n.split(".")[0]
            for n in names}  # fmt: skip
    own = {p.name for p in package_root.iterdir() if p.is_dir()} | {package_root.name}
    return {t for t in tops if t not in sys.stdlib_module_names and t not in own | {"syftflwr"}}


def declared(distribution: str) -> dict[str, Requirement]:
    """Its requirements, extras included, by canonical name."""
    project = tomllib.loads(PYPROJECTS[distribution].read_text())["project"]
    lines = [*project["dependencies"], *(
        line for extra in project.get("optional-dependencies", {}).values() for line in extra
    )]  # fmt: skip
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


@pytest.mark.parametrize("distribution", sorted(SOURCES))
def test_every_import_is_declared(distribution: str) -> None:
    requires = declared(distribution)
    missing = sorted(
        name
        for name in imported(SOURCES[distribution])
        if (distribution, name) not in NOT_REQUIRED
        and canonicalize_name(DISTRIBUTION_OF.get(name, name)) not in requires
    )
    assert not missing, f"{distribution} imports {missing} without declaring them"


@pytest.mark.parametrize(("distribution", "dependency"), sorted(INTERNALS))
def test_internals_are_bounded(distribution: str, dependency: str) -> None:
    requirement = declared(distribution).get(canonicalize_name(dependency))
    assert requirement is not None, f"{distribution} does not declare {dependency}"
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (
        f"{distribution} uses {dependency}'s internals ({INTERNALS[distribution, dependency]}) "
        f"without an upper bound: {requirement}"
    )
