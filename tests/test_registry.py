"""The registry against REAL installed distributions (tests/plugins, pip-installed into
target folders): discovery, loading by name, validation, errors, auto-detection.

In-process: entry points are read from the installed metadata and the target folder is
put on ``sys.path`` for one test only (``PluginEnv.importable``)."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from _plugin_env import PluginEnv
from syftflwr.errors import (
    DuplicateTransportError,
    PluginAPIVersionError,
    PluginValidationError,
    TransportImportError,
    TransportNotFoundError,
    TransportNotInstalledError,
    TransportUnavailableError,
)
from syftflwr.hookspecs import ENTRY_POINT_GROUP
from syftflwr.info import Detection, TransportContext
from syftflwr.registry import (
    PluginWarning,
    Registry,
    Transport,
    TransportStatus,
    detection_context,
    get_registry,
    install_hint,
    pick,
    reset_registry,
)
from syftflwr.roles import ClientRole, EventsRole, RPCRole

MEMORY = importlib.metadata.EntryPoint(
    name="memory", value="syftflwr.transports.memory", group=ENTRY_POINT_GROUP
)


def registry_of(env: PluginEnv, *plugins: str, **kw: object) -> Registry:
    """A registry over the given installed test plugins plus core's real memory entry."""
    core = [
        ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "memory"
    ]
    return Registry(entry_points=[*core, *env.entry_points(*plugins)], **kw)  # type: ignore[arg-type]


def test_memory_is_registered_through_cores_own_entry_point() -> None:
    reset_registry()
    registry = get_registry()
    assert registry is get_registry()
    memory = [e for e in registry.entries() if e.name == "memory"]
    assert [(e.distribution, e.module) for e in memory] == [
        ("syftflwr", "syftflwr.transports.memory")
    ]
    transport = registry.load("memory")
    assert transport.info.capabilities.in_process_only
    assert registry.load("memory") is transport  # cached
    reset_registry()
    assert get_registry() is not registry


def test_discovery_reads_metadata_only(plugin_env: PluginEnv) -> None:
    # The targets are not even on sys.path: listing cannot have imported anything.
    registry = registry_of(plugin_env, "tinydir", "broken", "dup")
    rows = [(e.name, e.distribution, e.version) for e in registry.entries()]
    assert rows == [
        ("broken", "syftflwr-test-broken", "0.2.0"),
        ("memory", "syftflwr", "0.1.0"),
        ("tinydir", "syftflwr-test-dup", "0.3.0"),
        ("tinydir", "syftflwr-test-tinydir", "0.1.0"),
    ]
    assert registry.names() == ["broken", "memory", "tinydir"]
    assert not [m for m in sys.modules if m.startswith("syftflwr_test_")]


def test_load_by_name_validates_and_builds_roles(plugin_env: PluginEnv, tmp_path: Path) -> None:
    with plugin_env.importable("tinydir"):
        registry = registry_of(plugin_env, "tinydir")
        transport = registry.load("tinydir")
        assert transport.name == transport.info.name == "tinydir"
        assert transport.entry.distribution == "syftflwr-test-tinydir"
        assert transport.capabilities.poll_interval == 0.05
        assert transport.default_options() == {"root": None}
        assert "syftflwr_test_tinydir.roles" not in sys.modules  # factories import it
        ctx = TransportContext(
            transport="tinydir", app_name="app", email="a@example.org", options={"root": tmp_path}
        )
        client = transport.make_client(ctx)
        assert isinstance(client, ClientRole) and client.email == "a@example.org"
        assert isinstance(transport.make_rpc(client, ctx), RPCRole)
        assert isinstance(transport.make_events(client, ctx), EventsRole)
        group = click.Group("tinydir")
        assert transport.register_commands(group) and "where" in group.commands
        assert registry.load("memory").register_commands(click.Group("memory")) is False


def test_broken_plugin_names_distribution_version_and_missing_dependency(
    plugin_env: PluginEnv,
) -> None:
    with plugin_env.importable("tinydir", "broken"):
        registry = registry_of(plugin_env, "tinydir", "broken")
        with pytest.raises(TransportImportError) as info:
            registry.load("broken")
        text = str(info.value)
        assert "syftflwr-test-broken 0.2.0" in text
        assert "syftflwr_missing_dependency_for_tests" in text
        assert "SYFTFLWR_DISABLE_PLUGINS=broken" in text
        assert "is not installed (a partial" not in text  # the plugin itself IS installed
        assert (info.value.distribution, info.value.version) == ("syftflwr-test-broken", "0.2.0")
        # ...and it does not take the others down: a warning in surveys, nothing more.
        with pytest.warns(PluginWarning, match="syftflwr-test-broken"):
            reports = {r.name: r for r in registry.detect_all(detection_context)}
        assert reports["broken"].status == "broken"
        assert "syftflwr_missing_dependency_for_tests" in (reports["broken"].error or "")
        assert reports["tinydir"].status == "ok"
        assert registry.load("tinydir").info.name == "tinydir"


def test_missing_plugin_module_is_the_only_not_installed_case() -> None:
    ghost = importlib.metadata.EntryPoint(
        name="ghost", value="syftflwr_no_such_plugin_module.hooks", group=ENTRY_POINT_GROUP
    )
    with pytest.raises(TransportImportError, match=r"is not installed \(a partial or stale"):
        Registry(entry_points=[ghost]).load("ghost")


def test_wrong_hook_signature_names_plugin_hook_and_argument(plugin_env: PluginEnv) -> None:
    with plugin_env.importable("badsig"), pytest.raises(PluginValidationError) as info:
        registry_of(plugin_env, "badsig").load("badsig")
    text = str(info.value)
    for part in ("syftflwr-test-badsig", "syftflwr_test_badsig.plugin", "syftflwr_detect", "'ctx'"):
        assert part in text
    assert "fix:" in text and "context" in text


def test_unknown_hook_is_an_error(plugin_env: PluginEnv) -> None:
    with (
        plugin_env.importable("extrahook"),
        pytest.raises(PluginValidationError, match="unknown hook 'syftflwr_frobnicate'"),
    ):
        registry_of(plugin_env, "extrahook").load("extrahook")


def test_other_plugin_api_version_says_which_versions(plugin_env: PluginEnv) -> None:
    with plugin_env.importable("oldapi"):
        registry = registry_of(plugin_env, "oldapi")
        with pytest.raises(PluginAPIVersionError, match=r"plugin-API version 99.*speaks version 1"):
            registry.load("oldapi")
        with pytest.warns(PluginWarning):
            statuses = {r.name: r.status for r in registry.statuses()}
    assert statuses == {"memory": "ok", "oldapi": "incompatible"}


def test_duplicate_name_names_both_distributions(plugin_env: PluginEnv) -> None:
    with plugin_env.importable("tinydir", "dup"):
        registry = registry_of(plugin_env, "tinydir", "dup")
        with pytest.raises(DuplicateTransportError) as info:
            registry.load("tinydir")
        assert "syftflwr-test-tinydir 0.1.0" in str(info.value)
        assert "syftflwr-test-dup 0.3.0" in str(info.value)
        with pytest.warns(PluginWarning):
            rows = [(r.distribution, r.status) for r in registry.statuses() if r.name == "tinydir"]
        assert rows == [("syftflwr-test-dup", "duplicate"), ("syftflwr-test-tinydir", "duplicate")]
        assert registry.load("memory").name == "memory"  # only the contested name is affected
    assert "syftflwr_test_dup.plugin" not in sys.modules


def test_unknown_name_suggests_the_nearest_and_lists_installed(plugin_env: PluginEnv) -> None:
    registry = registry_of(plugin_env, "tinydir")
    with pytest.raises(TransportNotFoundError) as info:
        registry.load("tinydri")
    assert info.value.suggestion == "tinydir"
    assert "did you mean 'tinydir'?" in str(info.value)
    assert "memory, tinydir" in str(info.value)
    with pytest.raises(TransportNotFoundError, match="did you mean 'gdrive'"):
        registry.load("gdirve")  # a typo of a first-party name not installed here


@pytest.mark.parametrize("name", ["gdrive", "syftbox", "fsspec-local"])
def test_missing_first_party_transport_gives_the_install_hint(name: str) -> None:
    registry = Registry(entry_points=[MEMORY])
    with pytest.raises(TransportNotInstalledError) as info:
        registry.load(name)
    assert f"fix: {install_hint(name)}" in str(info.value)  # tests/test_cli_first_hour.py


def test_disabled_plugins_are_blocked_before_import(
    plugin_env: PluginEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYFTFLWR_DISABLE_PLUGINS", " broken , syftflwr-test-tinydir")
    with plugin_env.importable("tinydir", "broken"):
        registry = registry_of(plugin_env, "tinydir", "broken")
        assert registry.names() == ["memory"]
        with pytest.raises(TransportUnavailableError, match="SYFTFLWR_DISABLE_PLUGINS"):
            registry.load("tinydir")  # disabled by distribution name
        statuses = {r.name: r.status for r in registry.statuses()}  # no warning either
        assert statuses == {"broken": "disabled", "memory": "ok", "tinydir": "disabled"}
        assert not [m for m in sys.modules if m.startswith("syftflwr_test_")]
    assert Registry(disabled=[]).disabled == frozenset()


def test_auto_detection_picks_the_usable_transport(plugin_env: PluginEnv, tmp_path: Path) -> None:
    def with_root(transport: Transport) -> TransportContext:
        ctx = detection_context(transport)
        return TransportContext(
            transport=ctx.transport,
            app_name=ctx.app_name,
            options={**ctx.options, "root": tmp_path},
        )

    with plugin_env.importable("tinydir"):
        registry = registry_of(plugin_env, "tinydir")
        chosen, reports = registry.auto_select(with_root)
        assert chosen.name == "tinydir"
        assert [r.name for r in reports if r.selected] == ["tinydir"]
        # Without a root tinydir is not usable, and memory is in-process only:
        with pytest.raises(TransportUnavailableError) as info:
            registry.auto_select()
        assert "tinydir: no root configured" in str(info.value)
        assert "memory: in-process only" in str(info.value)
        chosen, _ = registry.auto_select(allow_in_process=True)
        assert chosen.name == "memory"


def test_select_by_name_or_by_detection(plugin_env: PluginEnv) -> None:
    registry = registry_of(plugin_env)
    assert registry.select("memory", allow_in_process=True).name == "memory"
    assert registry.select(None, allow_in_process=True).name == "memory"
    with pytest.raises(TransportUnavailableError, match="only connects participants inside one"):
        registry.select("memory")  # e.g. `run`: separate processes
    with pytest.raises(TransportNotFoundError):
        registry.select("nope")


def test_pick_is_deterministic_by_preference_then_name() -> None:
    def row(name: str, preference: int, eligible: bool = True) -> TransportStatus:
        return TransportStatus(name, "d", "1", "ok", preference=preference, eligible=eligible)

    rows = [row("b", 5), row("a", 5), row("c", 1), row("z", 99, eligible=False)]
    assert pick(rows) == row("a", 5)
    assert pick(list(reversed(rows))) == row("a", 5)
    assert pick([row("x", 1, eligible=False)]) is None


HANDWRITTEN = '''
from syftflwr import hookimpl
from syftflwr.info import Capabilities, TransportInfo


class Plugin:
    """Hooks as methods of an object: entry point ``module:plugin``."""

    @hookimpl
    def syftflwr_transport_info(self):
        return TransportInfo("{name}", "handwritten", Capabilities(notifies_arrivals=True))

    @hookimpl
    def syftflwr_make_client(self, context):
        return "not a client"

    @hookimpl
    def syftflwr_make_rpc(self, client, context):
        return None
{extra}

plugin = Plugin()
'''


@pytest.fixture
def handwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plugin module written to disk and importable for this test only."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("handwritten_")]:
        del sys.modules[name]


def _write(folder: Path, module: str, name: str, extra: str = "") -> importlib.metadata.EntryPoint:
    (folder / f"{module}.py").write_text(
        textwrap.dedent(HANDWRITTEN).format(name=name, extra=textwrap.indent(extra, "    "))
    )
    return importlib.metadata.EntryPoint(
        name="hand", value=f"{module}:plugin", group=ENTRY_POINT_GROUP
    )


def test_missing_required_hook_is_named(handwritten: Path) -> None:
    ep = _write(handwritten, "handwritten_a", "hand")
    with pytest.raises(PluginValidationError, match=r"required hook.*syftflwr_make_events"):
        Registry(entry_points=[ep]).load("hand")


EVENTS = """
@hookimpl
def syftflwr_make_events(self, client, context):
    return None
"""


def test_facade_checks_what_hooks_return(handwritten: Path) -> None:
    ep = _write(handwritten, "handwritten_b", "hand", EVENTS)
    transport = Registry(entry_points=[ep]).load("hand")
    assert transport.entry.attr == "plugin"
    ctx = TransportContext(transport="hand", app_name="app", email="a@example.org")
    assert transport.detect(ctx) == Detection(False, "does not implement detection")
    with pytest.raises(PluginValidationError, match="syftflwr_make_client returned str"):
        transport.make_client(ctx)


def test_info_name_must_equal_entry_point_name(handwritten: Path) -> None:
    ep = _write(handwritten, "handwritten_c", "other", EVENTS)
    with pytest.raises(PluginValidationError, match="'other' but its entry point is named 'hand'"):
        Registry(entry_points=[ep]).load("hand")


def test_load_asks_for_the_transport_info_once(handwritten: Path) -> None:
    """Loading used to call ``syftflwr_transport_info`` three times (two API-version
    checks and the read); a plugin's info is asked once per load."""
    ep = _write(handwritten, "handwritten_d", "hand", EVENTS)
    module = importlib.import_module("handwritten_d")
    calls: list[object] = []
    real = module.TransportInfo

    def counting(*args: object) -> object:
        calls.append(args)
        return real(*args)

    module.TransportInfo = counting
    assert Registry(entry_points=[ep]).load("hand").info.name == "hand"
    assert len(calls) == 1
