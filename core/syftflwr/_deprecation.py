"""Old import paths of the plugin API: they keep working for one minor release, and warn
only when a module outside core uses them.

Before :mod:`syftflwr.plugin` existed, plugins imported from wherever a name lived
(``syftflwr.mailbox.storage``, ``syftflwr.crypto.directory``, ``syftflwr.names``...).
Those modules are private now, but they stay where they are: core itself imports them,
and must not warn. :func:`mark_private` gives such a module a class whose attribute
lookup checks who asks: when the name is part of the plugin API and the lookup is an
``import``/``from ... import``/attribute access written in a module outside
``syftflwr``, a :class:`PrivateImportWarning` names the replacement in
``syftflwr.plugin``. Lookups made through ``getattr``/``hasattr`` (pickle, mock,
introspection) and all of core's own stay silent, so a healthy run emits no warning.

Kept free of imports from syftflwr: every private module imports it.
"""

from __future__ import annotations

import functools
import sys
import warnings
from types import ModuleType
from typing import Any

REMOVED_IN = "0.3"
"""The minor release that drops the old paths (they are deprecated from 0.2 on). Dropping
them changes the plugin contract incompatibly, so that release bumps PLUGIN_API_VERSION."""


class PrivateImportWarning(DeprecationWarning):
    """A plugin imported a plugin-API name from a private module of core."""


@functools.cache
def _syntactic_access_ops() -> frozenset[int]:
    """Opcodes of ``from m import x`` and ``m.x`` (LOAD_METHOD only up to 3.11)."""
    import dis

    names = ("IMPORT_FROM", "LOAD_ATTR", "LOAD_METHOD")
    return frozenset(dis.opmap[n] for n in names if n in dis.opmap)


@functools.cache
def _lazy_exports() -> dict[tuple[str, str], str]:
    """``(module, attribute) -> syftflwr.plugin name`` of the lazily loaded names."""
    from syftflwr import plugin

    pairs = ((name, target.partition(":")) for name, target in plugin._LAZY.items())
    return {(module, attribute): name for name, (module, _, attribute) in pairs}


def _is_core(module: object) -> bool:
    return isinstance(module, str) and (module == "syftflwr" or module.startswith("syftflwr."))


def replacement(module: str, name: str, value: object) -> str | None:
    """The ``syftflwr.plugin`` name that is ``module.name`` (the very same object), or
    None when that name is not part of the plugin API."""
    from syftflwr import plugin

    public = _lazy_exports().get((module, name))
    if public is None and name in plugin.__all__:
        public = name
    if public is None:
        return None
    try:
        same = getattr(plugin, public) is value
    except Exception:  # pragma: no cover - a broken plugin-API entry is a test failure
        return None
    return public if same else None


def message(module: str, name: str, public: str) -> str:
    use = public if public == name else f"{public} as {name}"
    return (
        f"{module}.{name} is private to syftflwr: import it from the plugin API "
        f"(`from syftflwr.plugin import {use}`); the old path stops working in "
        f"syftflwr {REMOVED_IN}"
    )


class _PrivateModule(ModuleType):
    """A private module of core that still serves its old plugin-API names."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name[:1] == "_":
            return value
        caller = sys._getframe(1)
        if _is_core(caller.f_globals.get("__name__")):
            return value
        code = caller.f_code.co_code
        lasti = caller.f_lasti
        if not (0 <= lasti < len(code)) or code[lasti] not in _syntactic_access_ops():
            return value  # getattr()/hasattr(): pickle, mock, introspection
        module = super().__getattribute__("__name__")
        public = replacement(module, name, value)
        if public is not None:
            warnings.warn(message(module, name, public), PrivateImportWarning, stacklevel=2)
        return value


def mark_private(module_name: str) -> None:
    """Make ``module_name`` warn plugins that import plugin-API names from it."""
    sys.modules[module_name].__class__ = _PrivateModule
