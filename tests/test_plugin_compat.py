"""Plugins written before ``syftflwr.plugin`` existed keep working for one minor release:
every import path they used at 3566330 still resolves, and warns — only when a module
outside core uses it — naming the replacement in the plugin API. Core's own imports
never warn: a healthy run emits no warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _plugin_env import PLUGINS_DIR, PluginEnv
from syftflwr import plugin
from syftflwr._deprecation import message
from syftflwr.testing.plugin_imports import check_imports

OLD_IMPORTS = {
    "syftflwr.crypto.directory": ["StorageKeyDirectory"],
    "syftflwr.envelope": ["Buffer", "Request", "Response", "decode", "encode"],
    "syftflwr.errors": [
        "ConfigError", "EncryptionError", "IdentityMismatchError", "MalformedMessageError",
        "MessageRejectedError", "StorageError", "TransportError", "UnsafeNameError",
    ],
    "syftflwr.hookspecs": ["hookimpl"],
    "syftflwr.info": [
        "Capabilities", "Detection", "OptionSpec", "TransportContext", "TransportInfo",
    ],
    "syftflwr.mailbox": [
        "LocalDirStorage", "MailboxEvents", "MailboxRPC", "Poller", "ensure_layout",
    ],
    "syftflwr.mailbox.arrivals": [
        "ArrivalCallback", "ArrivalSource", "FolderSubscription", "Poller", "PollingSource",
        "Subscription",
    ],
    "syftflwr.mailbox.chunking": ["Manifest", "is_manifest"],
    "syftflwr.mailbox.events": ["MailboxEvents"],
    "syftflwr.mailbox.layout": ["OUTBOX_PREFIX", "ObjectKind", "ensure_layout", "parse_name"],
    "syftflwr.mailbox.localdir": ["LocalDirStorage"],
    "syftflwr.mailbox.rpc": ["MailboxRPC"],
    "syftflwr.mailbox.storage": [
        "BaseStorage", "Storage", "StorageWrapper", "check_max_size", "split_path",
        "total_size", "views",
    ],
    "syftflwr.mailbox.watcher": [
        "BackendFactory", "EventSink", "LIMIT_ERRNOS", "LocalArrivals", "WatchBackend",
        "WatchHub", "default_backend_factory", "hub", "reset_hub", "set_backend_factory",
    ],
    "syftflwr.names": ["is_valid_email", "validate_email", "validate_identifier"],
    "syftflwr.processes": ["pid_alive"],
    "syftflwr.profiles": ["PROFILE_NAMES", "mailbox_profile"],
    "syftflwr.profiles.base": ["refuse_oversized"],
    "syftflwr.profiles.syftflwr05": ["ENDPOINT", "NAME", "wire_app"],
    "syftflwr.roles": ["BaseEvents", "BaseRPC", "RequestHandle"],
}  # fmt: skip
"""What the plugins, the template and the test plugins imported from core at 3566330
(an AST inventory of ``git show 3566330``): 21 modules, besides ``syftflwr.hookimpl``
(public) and ``syftflwr.transports.memory`` (the test doubles' borrowed roles). Less
the syft-rpc codec (``SYFT_RPC``, ``syft_url`` of ``syftflwr.profiles.syftflwr05``),
which only the syftbox plugin used: it moved there (issue 18)."""

RENAMED = {
    ("syftflwr.mailbox.watcher", "hub"): "watch_hub",
    ("syftflwr.profiles.syftflwr05", "ENDPOINT"): "SYFTFLWR05_ENDPOINT",
    ("syftflwr.profiles.syftflwr05", "NAME"): "SYFTFLWR05_PROFILE",
    ("syftflwr.profiles.syftflwr05", "wire_app"): "syftflwr05_wire_app",
}
"""Old names that the plugin API spells differently (a bare ``NAME`` says nothing)."""


def _replacement(module: str, name: str) -> str:
    return RENAMED.get((module, name), name)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", "-c", code],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONWARNINGS": ""},  # not the suite's quiet filter (conftest)
    )  # fmt: skip


def test_every_old_import_works_and_warns_naming_the_replacement(tmp_path: Path) -> None:
    lines = [f"from {m} import {', '.join(names)}" for m, names in OLD_IMPORTS.items()]
    lines += ["import syftflwr.names", "email = syftflwr.names.validate_email"]
    (tmp_path / "old_plugin.py").write_text("\n".join(lines) + "\n")
    done = _python("import old_plugin", tmp_path)
    assert done.returncode == 0, done.stderr
    for module, names in OLD_IMPORTS.items():
        for name in names:
            text = message(module, name, _replacement(module, name))
            assert text in done.stderr, f"no warning for {module}.{name}"
    expected = sum(map(len, OLD_IMPORTS.values())) + 1  # + the attribute access
    assert done.stderr.count("PrivateImportWarning") == expected, done.stderr


def test_old_and_new_paths_give_the_same_objects() -> None:
    import importlib

    for module, names in OLD_IMPORTS.items():
        for name in names:
            new = getattr(plugin, _replacement(module, name))
            assert getattr(importlib.import_module(module), name) is new, f"{module}.{name}"


def test_lookups_that_are_not_imports_stay_silent(tmp_path: Path) -> None:
    """pickle, mock and introspection reach modules through getattr: no warning."""
    (tmp_path / "introspects.py").write_text(
        textwrap.dedent(
            """\
            import pickle, syftflwr.errors, syftflwr.mailbox.storage
            from syftflwr.plugin import ConfigError, Storage
            pickle.loads(pickle.dumps(ConfigError("x")))
            assert getattr(syftflwr.mailbox.storage, "Storage") is Storage
            assert hasattr(syftflwr.errors, "StorageError")
            """
        )
    )
    done = _python("import introspects", tmp_path)
    assert (done.returncode, done.stderr) == (0, "")


def test_core_never_uses_an_old_path(tmp_path: Path) -> None:
    """Every module of core imported, every plugin-API name resolved, warnings as errors."""
    code = textwrap.dedent(
        """\
        import importlib, pkgutil, warnings
        import syftflwr, syftflwr.plugin as plugin
        from syftflwr._deprecation import PrivateImportWarning
        warnings.simplefilter("error", PrivateImportWarning)
        for info in pkgutil.walk_packages(syftflwr.__path__, "syftflwr."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
        for name in plugin.__all__:
            getattr(plugin, name)
        print("ok")
        """
    )
    done = _python(code, tmp_path)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


@pytest.mark.slow
def test_unchanged_old_style_plugin_passes_the_conformance_suite(
    plugin_env: PluginEnv, tmp_path: Path
) -> None:
    """``tests/plugins/oldstyle``: a SQLite storage transport written against 3566330,
    installed as users install plugins, runs the shipped conformance suite: it passes,
    and each of its old imports is reported with the name to use instead."""
    source = PLUGINS_DIR / "oldstyle"
    old = check_imports([source / "src"])
    modules = {f.imported.rsplit(".", 1)[0] for f in old}
    assert {
        "syftflwr.mailbox", "syftflwr.mailbox.storage", "syftflwr.mailbox.layout",
        "syftflwr.crypto.directory", "syftflwr.names",
    } <= modules  # fmt: skip
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(source / "tests" / "test_conformance.py", suite)
    (suite / "pytest.ini").write_text("[pytest]\nsyftflwr_isolate_home = true\n")
    done = plugin_env.run(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly",
        "-W", "always::DeprecationWarning", str(suite),
        plugins=["oldstyle"], env={"PYTHONWARNINGS": ""}, timeout=900,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    for finding in old:
        assert finding.replacement is not None, finding
        module, _, name = finding.imported.rpartition(".")
        public = finding.replacement.removeprefix("syftflwr.plugin.")
        assert message(module, name, public) in output, f"no warning for {finding.imported}"
