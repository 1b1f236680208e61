"""Every automated session of the repository: `nox -l` lists them.

Plugin distributions are not on PyPI: sessions install them from `plugins/<name>/` (editable), so
the extras of core resolve to this repository. `tests/test_install_wheels.py` checks the other
path, a user's `pip install "syftflwr[fsspec-local]"` from built wheels.

Venvs are reused between local runs (`nox -r` is the default here) and created with uv.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT / "tools"))
from flwr_range import flwr_range  # noqa: E402  (stdlib only; reads pyproject.toml)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHONS = ["3.11", "3.12", "3.13"]
FLWR = flwr_range()  # core's `flwr>=OLDEST,<CAP` is the one source of truth
FLWR_MATRIX = [FLWR.oldest, FLWR.newest]  # oldest supported, newest tested (the minor below CAP)
FLWR_NEWEST = FLWR.newest
# plugins that share an environment with the newest flwr (syftbox pins flwr<=1.26.1)
# Plugins join this list once they pass the conformance suite (a plugin in progress
# lives in plugins/ without being tested by the default sessions).
PLUGINS = ["fsspec-local", "gdrive"]
TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout",
    "pytest-xdist>=3",
    "hypothesis>=6",
    "scikit-learn>=1.3",
    "matplotlib>=3.7",  # the benchmark report's plot is tested too
    "pip",  # serve installs an approved app's locked wheels with it (tests/jobs/test_deps.py)
]
# extras a plugin's own tests need (fsspec-local: gcsfs/s3fs and their loopback servers)
PLUGIN_TEST_EXTRAS = {"fsspec-local": "[test]"}
ENV = {"FLWR_TELEMETRY_ENABLED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def _install_project(
    session: nox.Session, flwr: str | None = None, plugins: list[str] = PLUGINS
) -> None:
    args = ["-e", "."]
    for plugin in plugins:
        args += ["-e", f"plugins/{plugin}{PLUGIN_TEST_EXTRAS.get(plugin, '')}"]
    if flwr:
        args.append(f"flwr=={flwr}")
    session.install(*args, *TEST_DEPS)


WORKERS = os.environ.get("SYFTFLWR_TEST_WORKERS", "4")
"""pytest-xdist workers: most tests wait on other processes, so 4 on 2 cores halves the
suite's wall time (16.7 -> 8.4 min measured); `SYFTFLWR_TEST_WORKERS=0` runs serially."""


def _pytest(session: nox.Session, *defaults: str) -> None:
    """Run pytest on the session's default paths and options, or on the paths given after
    `--` (`nox -s tests -- tests/mailbox -x` runs only tests/mailbox, with the session's
    markers), so a targeted run is not the whole suite plus the target."""
    workers = ["-n", WORKERS] if WORKERS != "0" else []
    given = any(not arg.startswith("-") and _is_path(arg) for arg in session.posargs)
    args = [arg for arg in defaults if not _is_path(arg)] if given else list(defaults)
    session.run("pytest", *workers, *args, *session.posargs, env=ENV)


def _is_path(arg: str) -> bool:
    return (ROOT / arg.split("::", maxsplit=1)[0]).exists()


def _plugin_tests() -> list[str]:
    return [
        str(p.relative_to(ROOT))
        for name in PLUGINS
        if (p := ROOT / "plugins" / name / "tests").is_dir()
    ]


@nox.session(python=PYTHONS[0])
def tests(session: nox.Session) -> None:
    """The full suite on the newest flwr: core, Flower, plugins (not syftbox: see `syftbox`)."""
    _install_project(session, FLWR_NEWEST)
    # the root's pytest config also when only a plugin's tests are named (`-- plugins/gdrive/
    # tests/...`), as in the full run: a plugin's own config knows no `soak` marker
    _pytest(session, f"--config-file={ROOT / 'pyproject.toml'}", "tests", *_plugin_tests(),
            "-m", "not soak")  # fmt: skip


@nox.session(python=PYTHONS[0])
def soak(session: nox.Session) -> None:
    """The repeated fault runs (`soak` marker: each moment of a kill three times...), too
    long for CI, which runs each once; run before a release or after touching recovery."""
    _install_project(session, FLWR_NEWEST)
    _pytest(session, "tests", "-m", "soak")


@nox.session(python=PYTHONS[0])
def syftbox(session: nox.Session) -> None:
    """The syftbox plugin in an environment of its own: syft-crypto pins cryptography<45,
    which caps flwr at 1.26.1."""
    _install_project(session, FLWR_MATRIX[0], plugins=["syftbox"])
    session.install("mypy>=1.11")
    session.run("mypy", "-p", "syftflwr_syftbox")  # typecheck cannot: flwr 1.26.1 only
    _pytest(session, "plugins/syftbox/tests")


SYFT_FLWR_05 = "syft-flwr==0.5.3"
"""The upstream release `interop` runs against (PyPI; Python >= 3.12, pins flwr 1.25.0)."""


def _python312() -> str | None:
    """A Python 3.12 interpreter: pyenv's (its shims on PATH are not one uv can run), else
    python3.12 on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(pyenv.glob("versions/3.12*/bin/python3"))
    return str(found[-1]) if found else shutil.which("python3.12")


@nox.session(python=PYTHONS[0], default=False)
def interop(session: nox.Session) -> None:
    """Our aggregator with real syft-flwr 0.5.3 datasites and the reverse, encrypted and
    not (tools/interop_syftflwr05.py). Opt-in (not in CI): syft-flwr 0.5 needs Python 3.12
    and flwr 1.25.0, so it gets a venv of its own next to this one (the syftbox env)."""
    _install_project(session, FLWR_MATRIX[0], plugins=["syftbox"])
    python312 = _python312()
    if python312 is None:
        session.error(f"{SYFT_FLWR_05} needs Python 3.12\nfix: install it (pyenv install 3.12)")
    upstream = Path(session.create_tmp()).absolute() / "syft-flwr-0.5"
    python = str(upstream / "bin" / "python")
    if not Path(python).exists():
        session.run("uv", "venv", "-q", "--python", python312, str(upstream), external=True)
    session.run(
        "uv", "pip", "install", "-q", "--python", python, SYFT_FLWR_05, "scikit-learn",
        external=True,
    )  # fmt: skip
    session.run("python", "tools/interop_syftflwr05.py", python, *session.posargs, env=ENV)


@nox.session(python=PYTHONS[1:])
def tests_python(session: nox.Session) -> None:
    """Core's suite on the other supported Pythons (3.12, 3.13), without the slow
    multi-process tests; the plugins' suites (Python-version neutral, and long: loopback
    Drive and cloud servers) run once, in `tests`."""
    _install_project(session, FLWR_NEWEST)
    _pytest(session, "tests", "-m", "not slow")


@nox.session(python=PYTHONS[0])
@nox.parametrize("flwr", FLWR_MATRIX[:1])
def flower(session: nox.Session, flwr: str) -> None:
    """Flower integration tests on the oldest supported flwr (`tests` runs everything,
    these included, on the newest); tests/jobs too, whose FAB shim wraps Flower CLI
    internals that moved between flwr versions."""
    _install_project(session, flwr)
    _pytest(session, "tests/flower", "tests/jobs")


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """mypy --strict on core (and the plugins' own packages)."""
    _install_project(session, FLWR_NEWEST)
    session.install("mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHONS[0])
def template(session: nox.Session) -> None:
    """The example transports can never rot. The plugin template, installed like any
    third-party plugin, passes its tests (the conformance suite, which trains with default
    settings, and `syftflwr transports --check`) and the quickstart trains over it with
    `syftflwr simulate` and default settings (encryption on, a process per participant);
    then docs/plugins.md's walkthrough runs as written: the SQLite transport from an empty
    folder, in a fresh venv, to its passing suite and a simulated training run."""
    session.install(
        "-e", ".", "-e", "./examples/transport-template", "./examples/quickstart",
        f"flwr=={FLWR_NEWEST}", "pytest>=8", "pytest-timeout", "pytest-xdist>=3",
    )  # fmt: skip
    tmp = Path(session.create_tmp()) / "example-transports"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "shared").mkdir(parents=True)
    session.chdir(ROOT / "examples" / "transport-template")
    session.run("pytest", "-n", "2", *session.posargs, env=ENV)
    env = {**ENV, "HOME": str(tmp / "home"), "SYFTFLWR_TEMPLATE_ROOT": str(tmp / "shared")}
    quickstart = str(ROOT / "examples" / "quickstart")
    session.run("syftflwr", "simulate", quickstart, "--transport", "template", env=env)
    session.chdir(ROOT)
    session.run("python", "tools/plugin_walkthrough.py", str(tmp / "walkthrough"), env=ENV)


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material), built strictly: a broken link, anchor or
    nav entry fails it, and so does a configuration reference older than the code."""
    session.install("-e", ".", "mkdocs-material>=9.5")
    session.run("python", "tools/gen_config_reference.py", "--check", env=ENV)
    site = Path(session.create_tmp()) / "site"
    env = {**ENV, "NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env=env)


BUILD_EXTRAS = ["fsspec-local", "gcs", "gdrive", "all", "syftbox"]
"""Each is installed into a venv of its own (syftbox needs flwr 1.26.1; `all` leaves it out)."""


@nox.session(python=PYTHONS[0])
def build(session: nox.Session) -> None:
    """Build every distribution (wheel + sdist) into dist/, check them (twine check --strict,
    a LICENSE that exists, py.typed in every package), then install each extra of core
    from that folder into a fresh venv, as a user would: `pip install --find-links dist
    "syftflwr[EXTRA]"` (uv, its one shared cache) and list the transports it gives."""
    import shutil

    session.install("twine>=5")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    sources = [ROOT, *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]
    for source in sources:
        session.run("uv", "build", "-q", "--out-dir", str(dist), str(source), external=True)
    built = sorted([*dist.glob("*.whl"), *dist.glob("*.tar.gz")])
    session.run("twine", "check", "--strict", *map(str, built))
    session.run("python", "tools/check_dists.py", "files", str(dist))
    venvs = Path(session.create_tmp()) / "extras"
    shutil.rmtree(venvs, ignore_errors=True)
    home = venvs / "home"  # `syftflwr transports` detects: never in the user's real dirs
    home.mkdir(parents=True)
    user = {**ENV, "HOME": str(home), "SYFTFLWR_HOME": str(home / "syftflwr")}
    for extra in session.posargs or BUILD_EXTRAS:
        venv = venvs / extra
        session.run("uv", "venv", "-q", "--python", str(session.python), str(venv), external=True)
        python = str(venv / "bin" / "python")
        session.run(
            "uv", "pip", "install", "-q", "--python", python, "--find-links", str(dist),
            f"syftflwr[{extra}]", external=True,
        )  # fmt: skip
        session.run(python, "tools/check_dists.py", "installed", extra, env=user, external=True)


@nox.session(python=PYTHONS[0])
def bench(session: nox.Session) -> None:
    """The benchmark suite (not in CI: too slow). Full by default (< 15 min on 2 cores):
    records benchmarks/results/, docs/benchmarks.md and its plot; `-- --quick` (< 3 min)
    writes benchmarks/results/quick/ only."""
    session.install(
        "-e", ".", "-e", "plugins/fsspec-local", f"flwr=={FLWR_NEWEST}", "matplotlib>=3.7",
        "scikit-learn>=1.3",
    )  # fmt: skip
    session.run("python", "benchmarks/suite.py", *session.posargs, env=ENV)
