"""Importing one plugin, validating its hooks, and the typed facade core talks to.

Core never calls ``pm.hook`` outside this module (the tox 4 pattern): every hook call goes
through :class:`Transport`, which checks what the plugin returns.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any, cast

import pluggy

from syftflwr import hookspecs
from syftflwr._version import __version__
from syftflwr.errors import (
    PluginAPIVersionError,
    PluginError,
    PluginValidationError,
    SyftflwrError,
    TransportImportError,
)
from syftflwr.info import (
    SUPPORTED_PLUGIN_API_VERSIONS,
    Capabilities,
    Detection,
    TransportContext,
    TransportInfo,
)
from syftflwr.names import validate_identifier
from syftflwr.registry._entries import TransportEntry
from syftflwr.registry._install import reinstall_hint
from syftflwr.roles import ClientRole, EventsRole, RPCRole, protocol_members

if TYPE_CHECKING:
    import click

HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, obj in vars(hookspecs).items() if name.startswith("syftflwr_") and callable(obj)
)


# --------------------------------------------------------------------------- import
def import_plugin(entry: TransportEntry) -> object:
    """Import the plugin object an entry point names, mapping failures to clear errors."""
    try:
        obj: object = importlib.import_module(entry.module)
        for part in (entry.attr or "").split(".") if entry.attr else ():
            obj = getattr(obj, part)
    except Exception as exc:
        raise _import_error(entry, exc) from exc
    return obj


def _import_error(entry: TransportEntry, exc: BaseException) -> TransportImportError:
    error = TransportImportError(
        entry.name, entry.distribution, entry.version, entry.target, exc,
        reinstall_hint(entry.distribution, "-U"),
    )  # fmt: skip
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    disable = f"SYFTFLWR_DISABLE_PLUGINS={entry.name}"
    if missing and (entry.module == missing or entry.module.startswith(missing + ".")):
        # Metadata present, code absent: the only case where "not installed" is true.
        text = (
            f"transport {entry.name!r} is registered by {entry.distribution} {entry.version}, "
            f"but its module {entry.module!r} is not installed (a partial or stale install)\n"
            f"  fix: {reinstall_hint(entry.distribution)}, or disable it with {disable}"
        )
    elif missing:
        text = (
            f"transport {entry.name!r} from {entry.distribution} {entry.version} failed to "
            f"import ({entry.target}): it needs the module {missing!r}, which is not installed\n"
            f"  fix: install the package that provides {missing!r} "
            f"({reinstall_hint(entry.distribution)} restores its declared dependencies), "
            f"or disable it with {disable}"
        )
    else:
        return error
    error.msg = text  # ImportError's str() shows .msg
    error.args = (text,)
    return error


# --------------------------------------------------------------------------- validation
def _invalid(entry: TransportEntry, problem: str, fix: str) -> PluginValidationError:
    return PluginValidationError(
        f"transport {entry.name!r} ({entry.label}): {problem}\n  fix: {fix}"
    )


def _check_api_version(entry: TransportEntry, info: object) -> None:
    """Refuse a plugin built for another plugin-API version, naming what each side speaks."""
    wanted = getattr(info, "api_version", None)
    if not isinstance(wanted, int) or wanted in SUPPORTED_PLUGIN_API_VERSIONS:
        return
    spoken = ", ".join(str(v) for v in sorted(SUPPORTED_PLUGIN_API_VERSIONS))
    if wanted > max(SUPPORTED_PLUGIN_API_VERSIONS):
        fix = (
            f"upgrade syftflwr ({reinstall_hint('syftflwr', '-U')}) to a release that speaks "
            f"version {wanted}, or install an older {entry.distribution} built for version "
            f"{spoken}"
        )
    else:
        fix = f"upgrade the plugin ({reinstall_hint(entry.distribution, '-U')})"
    raise PluginAPIVersionError(
        f"transport {entry.name!r} ({entry.label}) was built for plugin-API version "
        f"{wanted}, but this syftflwr {__version__} speaks version {spoken}\n  fix: {fix}"
    )


def _hook_fix(pm: pluggy.PluginManager, problem: str) -> str:
    """The fix for pluggy's refusal, which names the hook but neither the spec nor a fix."""
    match = re.search(r"hook '(\w+)'", problem)
    caller = getattr(pm.hook, match.group(1), None) if match else None
    if caller is not None and caller.spec is not None:
        spec = f"{caller.name}({', '.join(caller.spec.argnames)})"
        return f"name its arguments as the hookspec does: {spec}"
    return (
        f"implement only hooks of syftflwr.hookspecs ({', '.join(HOOK_NAMES)}), or check "
        "that the plugin targets this syftflwr's plugin API"
    )


def build_plugin_manager(entry: TransportEntry, plugin: object) -> pluggy.PluginManager:
    """A plugin manager holding exactly this plugin; pluggy checks every hook's name and
    arguments against syftflwr.hookspecs. When they do not match, a plugin built for
    another plugin-API version is told so first: the mismatch is only its symptom."""
    validate_identifier(entry.name, "transport name")
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    problem = fix = ""
    try:
        pm.register(plugin, name=entry.name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        problem, fix = "; ".join(str(exc).splitlines()), _hook_fix(pm, str(exc))
    missing = [h for h in hookspecs.REQUIRED_HOOKS if not getattr(pm.hook, h).get_hookimpls()]
    if not problem and missing:
        problem = f"does not implement the required hook(s) {', '.join(missing)}"
        fix = (
            "implement them and decorate each with @syftflwr.hookimpl "
            "(an undecorated function is ignored)"
        )
    if problem:
        try:
            info = cast(Any, plugin).syftflwr_transport_info()
        except Exception:
            info = None  # a plugin that failed validation: its info may fail too
        _check_api_version(entry, info)
        raise _invalid(entry, problem, fix)
    return pm


def read_info(entry: TransportEntry, pm: pluggy.PluginManager) -> TransportInfo:
    """The plugin's ``syftflwr_transport_info``, asked once and checked."""
    try:
        info = pm.hook.syftflwr_transport_info()
    except Exception as exc:
        raise _invalid(
            entry,
            f"syftflwr_transport_info raised {type(exc).__name__}: {exc}",
            "the hook must return a TransportInfo without side effects",
        ) from exc
    _check_api_version(entry, info)
    if not isinstance(info, TransportInfo):
        raise _invalid(
            entry,
            f"syftflwr_transport_info returned {type(info).__name__}, not TransportInfo",
            "return syftflwr.info.TransportInfo(...)",
        )
    if info.name != entry.name:
        raise _invalid(
            entry,
            f"its TransportInfo.name is {info.name!r} but its entry point is named {entry.name!r}",
            "make the entry-point name in the plugin's pyproject.toml equal TransportInfo.name",
        )
    return info


# --------------------------------------------------------------------------- facade
class Transport:
    """One loaded, validated transport: the only way core calls a plugin's hooks."""

    def __init__(self, entry: TransportEntry, pm: pluggy.PluginManager, info: TransportInfo):
        self.name = entry.name
        self.entry = entry
        self.info = info
        self._pm = pm

    def __repr__(self) -> str:
        return f"<Transport {self.name} ({self.entry.label})>"

    @classmethod
    def load(cls, entry: TransportEntry) -> Transport:
        """Import and validate ``entry``'s plugin (raises :class:`PluginError` subclasses)."""
        plugin = import_plugin(entry)
        pm = build_plugin_manager(entry, plugin)
        return cls(entry, pm, read_info(entry, pm))

    @property
    def capabilities(self) -> Capabilities:
        """The declared defaults (``TransportInfo.capabilities``). What a participant's
        roles really do with its settings is :attr:`syftflwr.session.Participant.capabilities`
        (:func:`syftflwr.roles.effective_capabilities`); only what cannot differ between
        participants (``in_process_only``, ``profiles``) is read from here."""
        return self.info.capabilities

    def _implements(self, hook: str) -> bool:
        return bool(getattr(self._pm.hook, hook).get_hookimpls())

    @property
    def has_commands(self) -> bool:
        """Whether ``syftflwr <name> ...`` exists (``syftflwr_register_commands``)."""
        return self._implements("syftflwr_register_commands")

    def default_options(self) -> dict[str, Any]:
        """Every option the transport declares, at its default (None when it has none)."""
        return {spec.name: spec.default for spec in self.info.options}

    def _call(self, hook: str, **kwargs: Any) -> Any:
        """Call the plugin's ``hook``. An exception that is not one of syftflwr's (those
        carry their own fix) is the plugin's bug: it becomes a :class:`PluginError`
        naming the plugin and the hook, instead of a raw traceback from a stranger's code
        (the traceback stays attached for ``-v``)."""
        try:
            return getattr(self._pm.hook, hook)(**kwargs)
        except SyftflwrError:
            raise
        except Exception as exc:
            raise PluginError(
                f"transport {self.name!r} ({self.entry.label}) failed in {hook}: "
                f"{type(exc).__name__}: {exc}\n"
                f"  fix: this is a bug of {self.entry.distribution}: upgrade it (pip install "
                f"-U {self.entry.distribution}) or report it with the traceback (-v); "
                "meanwhile use another transport (--transport, or transport = in "
                "[tool.syftflwr])"
            ) from exc

    def detect(self, context: TransportContext) -> Detection:
        if not self._implements("syftflwr_detect"):
            return Detection(False, "does not implement detection")
        result = self._pm.hook.syftflwr_detect(context=context)
        if not isinstance(result, Detection):
            raise _invalid(
                self.entry,
                f"syftflwr_detect returned {type(result).__name__}, not Detection",
                "return syftflwr.info.Detection(usable, reason, preference)",
            )
        return result

    def make_client(self, context: TransportContext) -> ClientRole:
        client = self._call("syftflwr_make_client", context=context)
        self._check_role("syftflwr_make_client", client, ClientRole)
        return cast(ClientRole, client)

    def make_rpc(self, client: ClientRole, context: TransportContext) -> RPCRole:
        rpc = self._call("syftflwr_make_rpc", client=client, context=context)
        self._check_role("syftflwr_make_rpc", rpc, RPCRole)
        return cast(RPCRole, rpc)

    def make_events(self, client: ClientRole, context: TransportContext) -> EventsRole:
        events = self._call("syftflwr_make_events", client=client, context=context)
        self._check_role("syftflwr_make_events", events, EventsRole)
        return cast(EventsRole, events)

    def register_commands(self, group: click.Group) -> bool:
        """Let the plugin add commands to ``group``; False if it implements no such hook."""
        if not self._implements("syftflwr_register_commands"):
            return False
        try:
            self._pm.hook.syftflwr_register_commands(group=group)
        except Exception as exc:
            raise PluginError(
                f"transport {self.name!r} ({self.entry.label}) failed to register its "
                f"commands: {type(exc).__name__}: {exc}\n"
                f"  fix: upgrade the plugin ({reinstall_hint(self.entry.distribution, '-U')}), "
                f"or disable it with SYFTFLWR_DISABLE_PLUGINS={self.name}"
            ) from exc
        return True

    def _check_role(self, hook: str, role: object, protocol: type) -> None:
        if role is None or not isinstance(role, protocol):
            missing = sorted(m for m in protocol_members(protocol) if not hasattr(role, m))
            detail = "is None" if role is None else f"lacks {', '.join(missing) or 'members'}"
            raise _invalid(
                self.entry,
                f"{hook} returned {type(role).__name__}, which {detail} "
                f"(expected a {protocol.__name__})",
                f"return an object implementing syftflwr.roles.{protocol.__name__}",
            )
