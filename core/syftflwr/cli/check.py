"""``syftflwr transports --check NAME``: a static doctor for plugin authors.

It walks the path core takes with a transport — metadata, import, hook validation, API
version, info, options, role factories, detection, commands — one step at a time and
reports each as ``ok``, ``warn``, ``fail`` or ``hint``, reusing the registry's own
validation (so the doctor and the registry can never disagree). Then it measures, in a
fresh interpreter, what listing and detecting the transport imports.

Nothing here moves a message: the conformance suite does that (docs/plugins.md).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import inspect
import re
import sys
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import click
import pluggy

from syftflwr import hookspecs
from syftflwr.config.options import coerce_option
from syftflwr.errors import PluginAPIVersionError, PluginError, SyftflwrError
from syftflwr.info import SUPPORTED_PLUGIN_API_VERSIONS, TransportInfo
from syftflwr.registry import ContextFor, Registry, Transport, TransportEntry, detection_context
from syftflwr.registry._entries import is_disabled
from syftflwr.registry._transport import (
    HOOK_NAMES,
    build_plugin_manager,
    import_plugin,
    read_info,
)

if TYPE_CHECKING:
    from syftflwr.testing.probe import ProbeResult

Status = Literal["ok", "warn", "fail", "hint"]


def _requirement_name(requirement: str) -> str | None:
    """The normalized name a requirement of the metadata names (`typing-extensions>=4` ->
    `typing_extensions`), None for an extra's."""
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    if "extra ==" in requirement or not match:
        return None
    return match.group(0).replace("-", "_").lower()


@functools.cache
def core_dependencies() -> frozenset[str]:
    """Packages core itself needs, read from its metadata (a list kept here drifted): a hook
    module importing them costs nothing extra. Each one's import name is its normalized name."""
    requires = importlib.metadata.requires("syftflwr") or []
    return frozenset({"syftflwr", *filter(None, map(_requirement_name, requires))})


SLOW_IMPORT = 0.5
"""Seconds: a hook module slower than this to import slows every listing noticeably."""
ROLE_HOOKS = ("syftflwr_make_client", "syftflwr_make_rpc", "syftflwr_make_events")


@dataclass(frozen=True)
class Finding:
    """One step of the check."""

    check: str
    status: Status
    detail: str
    fix: str | None = None
    blocks_defaults: bool = False
    """A failure that stops every run with default settings (exit code 2)."""


@dataclass
class CheckReport:
    name: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status == "fail" for f in self.findings)

    @property
    def exit_code(self) -> int:
        """2 when default settings cannot run (as ``syftflwr run`` would exit), 1 when
        another check fails, else 0."""
        if any(f.status == "fail" and f.blocks_defaults for f in self.findings):
            return 2
        return 0 if self.ok else 1

    def add(
        self,
        check: str,
        status: Status,
        detail: str,
        fix: str | None = None,
        *,
        blocks_defaults: bool = False,
    ) -> None:
        self.findings.append(Finding(check, status, detail, fix, blocks_defaults))

    def fail(self, check: str, exc: BaseException) -> None:
        """``exc``'s first line, and its ``fix:`` line as the fix."""
        lines = str(exc).splitlines()
        fixes = [line.strip().removeprefix("fix:").strip() for line in lines if "fix:" in line]
        self.add(check, "fail", lines[0], fixes[0] if fixes else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "findings": [asdict(f) for f in self.findings]}


# --------------------------------------------------------------------------- the steps
def _entry(report: CheckReport, registry: Registry) -> TransportEntry | None:
    name = report.name
    claimants = [e for e in registry.all_entries() if e.name == name]
    if not claimants:
        try:
            registry.load(name)  # raises the registry's own not-found error (with hints)
        except PluginError as exc:
            problem = str(exc).splitlines()[0]
        else:  # pragma: no cover - load cannot succeed without an entry
            problem = f"no entry point named {name!r}"
        report.add(
            "entry point",
            "fail",
            problem,
            "declare it in the plugin's pyproject.toml and reinstall it (pip install -e .):\n"
            f'[project.entry-points."syftflwr.transports"]\n{name} = "your_package.plugin"',
        )
        return None
    if len(claimants) > 1:
        who = ", ".join(f"{e.distribution} {e.version} ({e.target})" for e in claimants)
        report.add(
            "entry point",
            "fail",
            f"{len(claimants)} distributions claim {name!r}: {who}",
            "uninstall all but one, or rename the entry point of yours",
        )
        return None
    entry = claimants[0]
    report.add(
        "entry point", "ok", f"{name} = {entry.target!r} in {entry.distribution} {entry.version}"
    )
    if is_disabled(entry, registry.disabled):
        report.add(
            "entry point",
            "warn",
            "disabled by SYFTFLWR_DISABLE_PLUGINS: users of this environment cannot select it",
            f"remove {name!r} from SYFTFLWR_DISABLE_PLUGINS (checking it anyway)",
        )
    return entry


def _validate(report: CheckReport, entry: TransportEntry) -> Transport | None:
    started = time.perf_counter()
    try:
        plugin = import_plugin(entry)
    except PluginError as exc:
        report.fail("import", exc)
        return None
    took = time.perf_counter() - started
    status: Status = "warn" if took > SLOW_IMPORT else "ok"
    report.add(
        "import",
        status,
        f"{entry.target} imported in {took * 1000:.0f} ms",
        "keep the hook module light: move heavy imports into the role factories"
        if status == "warn"
        else None,
    )
    pm = None
    try:
        pm = build_plugin_manager(entry, plugin)
        _report_hooks(report, pm)
        info = read_info(entry, pm)
    except PluginError as exc:
        version = isinstance(exc, PluginAPIVersionError)
        report.fail("API version" if version else "hooks" if pm is None else "info", exc)
        return None
    spoken = ", ".join(map(str, sorted(SUPPORTED_PLUGIN_API_VERSIONS)))
    report.add(
        "API version",
        "ok",
        f"built for plugin-API version {info.api_version} (core speaks {spoken})",
    )
    report.add("name", "ok", f"TransportInfo.name {info.name!r} matches the entry point")
    return Transport(entry, pm, info)


def _report_hooks(report: CheckReport, pm: pluggy.PluginManager) -> None:
    implemented = [h for h in HOOK_NAMES if getattr(pm.hook, h).get_hookimpls()]
    optional = [h for h in HOOK_NAMES if h not in hookspecs.REQUIRED_HOOKS]
    missing_optional = [h for h in optional if h not in implemented]
    report.add(
        "hooks",
        "ok",
        f"signatures match syftflwr.hookspecs; implemented: {', '.join(implemented)}",
    )
    for hook in ROLE_HOOKS:
        [impl] = getattr(pm.hook, hook).get_hookimpls()
        where = f"{impl.function.__module__}.{impl.function.__qualname__}"
        report.add("role factory", "ok", f"{hook} -> {where}")
    if "syftflwr_detect" in missing_optional:
        report.add(
            "detection",
            "warn",
            "syftflwr_detect is not implemented: auto-detection never picks this transport",
            "implement syftflwr_detect (cheap checks: config files, tokens, env variables)",
        )


def _check_info(report: CheckReport, info: TransportInfo) -> None:
    caps = info.capabilities
    how = "notifies arrivals" if caps.notifies_arrivals else f"polled every {caps.poll_interval}s"
    limits = (
        f", objects <= {caps.max_object_size:,} bytes (core chunks larger messages)"
        if caps.max_object_size
        else ""
    )
    report.add("capabilities", "ok", f"{how}{limits}; profiles: {', '.join(caps.profiles)}")
    if not info.description.strip():
        report.add(
            "info", "warn", "empty description", "describe the transport in one line (listings)"
        )
    for spec in info.options:
        problem = None
        if not spec.help.strip():
            problem = "has no help text"
        elif spec.default is not None:
            try:
                coerce_option(spec, spec.default)
            except (ValueError, TypeError, SyftflwrError) as exc:
                problem = f"default {spec.default!r} is not a valid {spec.type}: {exc}"
        if problem:
            report.add(
                "options",
                "fail",
                f"option {spec.name!r} {problem}",
                "fix its OptionSpec (help text and default are shown in the configuration "
                "reference and validated for every user)",
            )
    if info.options and not any(f.check == "options" for f in report.findings):
        names = ", ".join(spec.name for spec in info.options)
        report.add("options", "ok", f"{len(info.options)} options: {names}")


def _check_detection(report: CheckReport, transport: Transport, context_for: ContextFor) -> None:
    if not transport._implements("syftflwr_detect"):
        return  # reported with the hooks
    try:
        context = context_for(transport)
        verdict = transport.detect(context)
    except SyftflwrError as exc:  # what the registry reports as "cannot detect": no defect
        problem = str(exc).splitlines()[0]
        report.add("detection", "ok", f"not usable here (cannot detect: {problem})")
        return
    except Exception as exc:
        report.add(
            "detection",
            "fail",
            f"syftflwr_detect raised {type(exc).__name__}: {exc}",
            "detection must answer Detection(False, reason) instead of raising",
        )
        return
    state = "usable" if verdict.usable else "not usable"
    report.add(
        "detection", "ok", f"{state} here (preference {verdict.preference}): {verdict.reason}"
    )


def _check_capabilities(report: CheckReport, transport: Transport) -> None:
    """Each optional capability of the plugin API (:data:`syftflwr.roles.CAPABILITIES`),
    read from the role factories' return annotations: offered, or missing and what that
    costs. Missing one that a default setting needs (``PublishesKeys`` while core
    encryption is on by default; ``SharesBlobs``/``ReadsBlobs`` of a transport declaring
    ``shares_objects``, which broadcasts then use) fails the check with exit 2, as a run
    would."""
    from syftflwr.capabilities import CAPABILITIES, declares
    from syftflwr.roles import PublishesKeys, ReadsBlobs, SharesBlobs

    hooks = {
        "client": "syftflwr_make_client",
        "rpc": "syftflwr_make_rpc",
        "events": "syftflwr_make_events",
    }
    shares = transport.capabilities.shares_objects
    classes: dict[str, type | None] = {}
    for role, hook in hooks.items():
        [impl] = getattr(transport._pm.hook, hook).get_hookimpls()
        classes[role] = returned_class(impl.function)
    for capability in CAPABILITIES:
        protocol, label = capability.protocol.__name__, capability.label
        what = f"syftflwr.plugin.{protocol} ({capability.role} role: {capability.member})"
        if capability.protocol is PublishesKeys and transport.capabilities.native_encryption:
            report.add(label, "ok", f"{what}: not needed, the transport encrypts itself")
            continue
        if capability.role not in classes:  # the storage: known only once roles are built
            report.add(label, "hint", f"{what}: without it, {capability.absent}")
            continue
        cls = classes[capability.role]
        hook = hooks[capability.role]
        needed_by = capability.needed_by
        if shares and capability.protocol in (SharesBlobs, ReadsBlobs):
            needed_by = "its declared Capabilities.shares_objects"
        if cls is None:
            report.add(
                label,
                "hint",
                f"{what}: cannot tell, {hook} has no class as return annotation"
                + (f"; {needed_by} needs it" if needed_by else ""),
                f"annotate {hook} with the role's class (an import under TYPE_CHECKING "
                "is enough; docs/reference/hooks.md)",
            )
        elif declares(cls, capability.protocol):
            report.add(label, "ok", f"{what}: {cls.__name__} offers it")
        elif needed_by:
            report.add(
                label,
                "fail",
                f"the {transport.name!r} transport cannot run with default settings: its "
                f"{capability.role} role {cls.__name__} does not implement {what}; "
                f"{needed_by} needs it ({capability.absent})",
                _HOW_TO_ADD.get(protocol, f"add {capability.member} to {cls.__name__}"),
                blocks_defaults=True,
            )
        else:  # optional: what it costs, no warning
            report.add(
                label,
                "hint",
                f"{what}: {cls.__name__} does not declare it; without it, {capability.absent}",
                f"offer {capability.member} on {cls.__name__} if the transport can "
                "(attributes: annotate them on the class; docs/reference/hooks.md)",
            )


_HOW_TO_ADD = {
    "PublishesKeys": "add key_directory() to the client role, returning a "
    "syftflwr.plugin.KeyDirectory (on a mailbox storage: StorageKeyDirectory(storage, "
    "email)); see docs/reference/hooks.md#optional-capabilities. Until then, "
    "encryption = false in [tool.syftflwr] runs it unencrypted",
    "SharesBlobs": "add put_blob() and drop_blob() to the RPC role (a mailbox-kit transport "
    "has them), or declare Capabilities(shares_objects=False) until it can share one object "
    "with several recipients; see docs/reference/hooks.md#shared-blobs",
    "ReadsBlobs": "add get_blob() to the events role (a mailbox-kit transport has it), or "
    "declare Capabilities(shares_objects=False); see docs/reference/hooks.md#shared-blobs",
}
"""How to add a capability a default setting needs (the fix comes before the setting)."""


def returned_class(function: Callable[..., Any]) -> type | None:
    """The class a function is annotated to return, also when it is imported only under
    ``TYPE_CHECKING`` (as light hook modules do): then its import is found in the source."""
    try:
        annotation = typing.get_type_hints(function).get("return")
    except NameError:
        annotation = _type_checking_import(function)
    except Exception:  # an annotation that cannot be evaluated: nothing to tell
        return None
    return annotation if isinstance(annotation, type) else None


def _type_checking_import(function: Callable[..., Any]) -> object:
    name = inspect.signature(function).return_annotation
    module = sys.modules.get(function.__module__)
    if not isinstance(name, str) or module is None:
        return None
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    try:
                        return getattr(importlib.import_module(node.module), alias.name, None)
                    except ImportError:
                        return None
    return None


def _check_commands(report: CheckReport, transport: Transport) -> None:
    if not transport._implements("syftflwr_register_commands"):
        return
    group = click.Group(transport.name)
    try:
        transport.register_commands(group)
    except PluginError as exc:
        report.fail("commands", exc)
        return
    if not group.commands:
        report.add(
            "commands",
            "warn",
            "syftflwr_register_commands adds no command",
            "add commands with @group.command(), or drop the hook",
        )
        return
    names = ", ".join(sorted(group.commands))
    report.add("commands", "ok", f"`syftflwr {transport.name} ...` offers: {names}")


def _check_imports(
    report: CheckReport,
    entry: TransportEntry,
    heavy: Sequence[str],
    run_probe: Callable[[str, str], ProbeResult],
) -> None:
    from syftflwr.testing.probe import CORE_HEAVY_MODULES, is_under

    result = run_probe(entry.name, entry.target)
    if result.error is not None:
        report.add(
            "light imports", "fail", f"listing it in a fresh interpreter failed: {result.error}"
        )
        return
    packages = (*CORE_HEAVY_MODULES, *heavy)
    found = result.heavy(packages)
    if found:
        report.add(
            "light imports",
            "fail",
            f"listing or detecting it imports {', '.join(sorted(found))}",
            "import those inside syftflwr_make_client/rpc/events, not in the hook module",
        )
    else:
        report.add(
            "light imports", "ok", f"listing and detection import none of {', '.join(packages)}"
        )
    extra = [
        p
        for p in result.third_party()
        if p not in core_dependencies() and is_under(p, packages) is None
    ]
    if extra:
        report.add(
            "light imports",
            "warn",
            f"the hook module pulls in {', '.join(extra)} for every `syftflwr transports`",
            "import them lazily (inside the role factories or commands) unless they are tiny; "
            "declare them with --heavy to make this a failure",
        )


def _hints(report: CheckReport, transport: Transport) -> None:
    caps = transport.capabilities
    snippet = [
        "run the conformance suite in your tests (docs/plugins.md):",
        "    from syftflwr.testing.conformance import TransportConformance",
        "    class TestTransport(TransportConformance):",
        f'        transport_name = "{transport.name}"',
    ]
    requires = (
        []
        if transport.entry.distribution == "syftflwr"
        else _requirements(transport.entry.distribution)
    )
    if requires:
        snippet.append(f"        heavy_modules = {tuple(requires)!r}  # their import names")
    report.add("conformance", "hint", "\n".join(snippet))
    if caps.max_object_size:
        report.add(
            "conformance",
            "hint",
            f"objects are limited to {caps.max_object_size:,} bytes: the suite sends messages "
            "several times larger, which must pass through core's chunking "
            "(syftflwr.mailbox.chunking) intact",
        )
    if not caps.notifies_arrivals:
        report.add(
            "conformance",
            "hint",
            f"no arrival notification: waits are polled from {caps.poll_interval}s with idle "
            "back-off; the suite's timeouts stretch to 10x your max_poll_interval",
        )
    if caps.in_process_only:
        report.add("conformance", "hint", "in_process_only: the suite skips its multi-process test")


def _requirements(distribution: str) -> list[str]:
    """Distribution names this plugin requires besides syftflwr (hint material)."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = [_requirement_name(req) for req in requires]
    return [name for name in names if name and name not in core_dependencies()]


# --------------------------------------------------------------------------- entry point
def check_transport(
    name: str,
    *,
    registry: Registry,
    context_for: ContextFor | None = None,
    heavy: Iterable[str] = (),
    run_probe: Callable[[str, str], ProbeResult] | None = None,
) -> CheckReport:
    """Check the installed transport ``name`` (see the module docstring)."""
    from syftflwr.testing.probe import probe

    report = CheckReport(name)
    entry = _entry(report, registry)
    if entry is None:
        return report
    transport = _validate(report, entry)
    if transport is None:
        return report
    _check_info(report, transport.info)
    _check_detection(report, transport, context_for or detection_context)
    _check_capabilities(report, transport)
    _check_commands(report, transport)
    _check_imports(report, entry, tuple(heavy), run_probe or probe)
    _hints(report, transport)
    return report


MARKS = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red"),
         "hint": ("hint", "cyan")}  # fmt: skip


def render(report: CheckReport) -> None:
    width = max((len(f.check) for f in report.findings), default=0)
    for finding in report.findings:
        label, color = MARKS[finding.status]
        click.secho(f"[{label:>4}] ", fg=color, bold=finding.status == "fail", nl=False)
        lines = finding.detail.splitlines() or [""]
        click.echo(f"{finding.check:<{width}}  {lines[0]}")
        for line in lines[1:]:
            click.echo(f"{'':7}{'':<{width}}  {line}")
        if finding.fix:
            fix_lines = finding.fix.splitlines()
            click.echo(f"{'':7}{'':<{width}}  fix: {fix_lines[0]}")
            for line in fix_lines[1:]:
                click.echo(f"{'':7}{'':<{width}}       {line}")
    fails = sum(f.status == "fail" for f in report.findings)
    warns = sum(f.status == "warn" for f in report.findings)
    if report.ok:
        click.secho(
            f"transport {report.name!r} passes the static checks ({warns} warnings); "
            "now run the conformance suite",
            fg="green",
        )
    else:
        click.secho(f"transport {report.name!r}: {fails} check(s) failed", fg="red", bold=True)
