"""Find and load a Flower app from its project directory, as ``flwr run`` does.

The project's ``pyproject.toml`` names the apps in ``[tool.flwr.app.components]``
(``serverapp = "pkg.server_app:app"``, ``clientapp = "pkg.client_app:app"``) and the run
config in ``[tool.flwr.app.config]`` (nested tables flattened with dots, as Flower does).
Apps are imported from the project directory itself (it is put on ``sys.path``), so a
project runs without being pip-installed; an installed copy elsewhere never shadows it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.config.project import find_pyproject
from syftflwr.errors import ConfigError

UserConfigValue = bool | int | float | str
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class FlowerApp:
    """What a project's ``pyproject.toml`` says about its Flower app."""

    project_dir: Path
    name: str
    server_app_ref: str
    client_app_ref: str
    run_config: dict[str, UserConfigValue]

    @property
    def pyproject(self) -> Path:
        return self.project_dir / "pyproject.toml"


def _flatten(table: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, UserConfigValue]:
    flat: dict[str, UserConfigValue] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, source, name))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            raise ConfigError(
                f"value of type {type(value).__name__} is not allowed in a Flower run config",
                source=source,
                key=f"tool.flwr.app.config.{name}",
                fix="use a bool, int, float or string (or a table of those)",
            )
    return flat


def read_app(project_dir: str | Path) -> FlowerApp:
    """Read a Flower project's ``pyproject.toml``; errors name the file, key and fix."""
    root = Path(project_dir).expanduser().resolve()
    path = find_pyproject(root)  # a missing directory, or one without pyproject.toml
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    flwr_app = data.get("tool", {}).get("flwr", {}).get("app", {})
    components = flwr_app.get("components", {})
    refs: dict[str, str] = {}
    for role in ("serverapp", "clientapp"):
        ref = components.get(role)
        if not isinstance(ref, str) or ":" not in ref:
            raise ConfigError(
                f"missing or invalid {role} reference {ref!r}",
                source=str(path),
                key=f"tool.flwr.app.components.{role}",
                fix=f'set it to "<module>:<attribute>", e.g. "mypkg.{role[:6]}_app:app"',
            )
        refs[role] = ref
    config = flwr_app.get("config", {})
    if not isinstance(config, Mapping):
        raise ConfigError("must be a table", source=str(path), key="tool.flwr.app.config")
    return FlowerApp(
        project_dir=root,
        name=str(data.get("project", {}).get("name", root.name)),
        server_app_ref=refs["serverapp"],
        client_app_ref=refs["clientapp"],
        run_config=_flatten(config, str(path)),
    )


def fused_run_config(
    app: FlowerApp, overrides: Mapping[str, UserConfigValue] | None = None
) -> dict[str, UserConfigValue]:
    """The app's run config with ``overrides`` applied (keys must exist, as in Flower)."""
    config = dict(app.run_config)
    for key, value in (overrides or {}).items():
        if key not in config:
            known = ", ".join(sorted(config)) or "(none)"
            raise ConfigError(
                f"run config has no key {key!r} to override (keys: {known})",
                source=str(app.pyproject),
                key="tool.flwr.app.config",
                fix=f"add {key} to [tool.flwr.app.config] or fix the override's name",
            )
        config[key] = value
    return config


def node_config_for(index: int, total: int) -> dict[str, UserConfigValue]:
    """Flower's node config for the ``index``-th of ``total`` datasites."""
    return {"partition-id": index, "num-partitions": total}


def _purge_foreign(module_name: str, root: Path) -> None:
    """Forget an already-imported top-level package that lives outside ``root``."""
    top = module_name.split(".", maxsplit=1)[0]
    loaded = sys.modules.get(top)
    if loaded is None:
        return
    locations = [Path(p).resolve() for p in getattr(loaded, "__path__", [])]
    file = getattr(loaded, "__file__", None)
    if file:
        locations.append(Path(file).resolve().parent)
    if any(loc == root or root in loc.parents for loc in locations):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def load_object(ref: str, project_dir: str | Path) -> Any:
    """Import ``"module:attr.path"`` with ``project_dir`` first on ``sys.path``."""
    root = Path(project_dir).resolve()
    module_name, _, attr_path = ref.partition(":")
    with _IMPORT_LOCK:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        _purge_foreign(module_name, root)
        importlib.invalidate_caches()
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import {module_name!r} for {ref!r}: {exc}",
                source=str(root / "pyproject.toml"),
                fix="check [tool.flwr.app.components] and that the app's dependencies "
                "are installed",
            ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{module_name} has no attribute {attr_path!r} (from {ref!r})",
                source=str(root / "pyproject.toml"),
                fix="check [tool.flwr.app.components]",
            ) from None
    return obj


def _load_app(app: FlowerApp, role: str, expected: type) -> Any:
    ref = app.server_app_ref if role == "serverapp" else app.client_app_ref
    obj = load_object(ref, app.project_dir)
    if not isinstance(obj, expected):
        raise ConfigError(
            f"{ref} is a {type(obj).__name__}, not a flwr {expected.__name__}",
            source=str(app.pyproject),
            key=f"tool.flwr.app.components.{role}",
        )
    return obj


def load_server_app(app: FlowerApp) -> Any:
    """The app's ``flwr.serverapp.ServerApp``."""
    from flwr.serverapp import ServerApp

    return _load_app(app, "serverapp", ServerApp)


def load_client_app(app: FlowerApp) -> Any:
    """The app's ``flwr.clientapp.ClientApp``."""
    from flwr.clientapp import ClientApp

    return _load_app(app, "clientapp", ClientApp)
