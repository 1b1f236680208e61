"""The registry: discover transports lazily, load one by name, survey all of them."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from syftflwr.errors import (
    DuplicateTransportError,
    PluginAPIVersionError,
    PluginError,
    SyftflwrError,
    TransportNotFoundError,
    TransportNotInstalledError,
    TransportUnavailableError,
)
from syftflwr.hookspecs import ENTRY_POINT_GROUP
from syftflwr.info import TransportContext
from syftflwr.names import suggest
from syftflwr.registry._entries import (
    DISABLE_ENV,
    FIRST_PARTY_EXTRAS,
    TransportEntry,
    disabled_from_env,
    discover,
    is_disabled,
)
from syftflwr.registry._install import install_hint
from syftflwr.registry._reports import DetectionReport, Status, TransportStatus, mark_selected
from syftflwr.registry._transport import Transport

log = logging.getLogger("syftflwr.registry")

ContextFor = Callable[[Transport], TransportContext]
"""Builds the context a transport is asked to detect with (config integration seam)."""


class PluginWarning(UserWarning):
    """A plugin that was not selected is broken; everything else keeps working."""


def detection_context(transport: Transport) -> TransportContext:
    """The context detection uses when no project config is at hand: the transport's
    option defaults, no identity."""
    return TransportContext(
        transport=transport.name, app_name="syftflwr", options=transport.default_options()
    )


class Registry:
    """Installed transports, discovered from entry points without importing them.

    Only :meth:`load` (and the surveys built on it) imports a plugin, and only the one
    asked for; a plugin disabled through ``SYFTFLWR_DISABLE_PLUGINS`` is never imported.
    """

    def __init__(
        self,
        *,
        group: str = ENTRY_POINT_GROUP,
        disabled: Iterable[str] | None = None,
        entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    ) -> None:
        self.group = group
        self.disabled = disabled_from_env() if disabled is None else frozenset(disabled)
        self._entry_points = None if entry_points is None else list(entry_points)
        self._all: list[TransportEntry] | None = None
        self._loaded: dict[str, Transport] = {}
        self._failed: dict[str, PluginError] = {}
        self._warned: set[str] = set()
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ metadata only
    def all_entries(self) -> list[TransportEntry]:
        """Every entry point of the group, disabled ones included."""
        with self._lock:
            if self._all is None:
                self._all = discover(self.group, self._entry_points)
            return list(self._all)

    def entries(self) -> list[TransportEntry]:
        """Every enabled entry point, duplicates included (sorted by name)."""
        return [e for e in self.all_entries() if not is_disabled(e, self.disabled)]

    def names(self) -> list[str]:
        return sorted({e.name for e in self.entries()})

    def claimants(self, name: str) -> list[TransportEntry]:
        """The enabled entries registering ``name`` (more than one: a duplicate)."""
        return [e for e in self.entries() if e.name == name]

    # ------------------------------------------------------------------ loading
    def load(self, name: str) -> Transport:
        """Import, validate and return the transport ``name`` (cached).

        :raises TransportNotFoundError: unknown name (with the nearest suggestion).
        :raises TransportNotInstalledError: a first-party transport that is not installed.
        :raises TransportUnavailableError: disabled through ``SYFTFLWR_DISABLE_PLUGINS``.
        :raises DuplicateTransportError: several distributions claim ``name``.
        :raises TransportImportError, PluginValidationError, PluginAPIVersionError.
        """
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            if name in self._failed:
                raise self._failed[name]
            claimants = self.claimants(name)
            if not claimants:
                raise self._not_found(name)
            if len(claimants) > 1:
                raise DuplicateTransportError(
                    name, [f"{e.distribution} {e.version} ({e.target})" for e in claimants]
                )
            try:
                transport = Transport.load(claimants[0])
            except PluginError as exc:
                self._failed[name] = exc
                raise
            self._loaded[name] = transport
            return transport

    def _not_found(self, name: str) -> PluginError:
        installed = self.names()
        if any(e.name == name for e in self.all_entries()):
            return TransportUnavailableError(
                f"transport {name!r} is installed but disabled by {DISABLE_ENV}="
                f"{','.join(sorted(self.disabled))}\n"
                f"  fix: remove {name!r} from {DISABLE_ENV} to use it"
            )
        if name in FIRST_PARTY_EXTRAS:
            return TransportNotInstalledError(name, installed, install_hint(name))
        near = suggest(name, [*installed, *FIRST_PARTY_EXTRAS])
        missing = near is not None and near not in installed
        return TransportNotFoundError(
            name, installed, near, install_hint(near) if near and missing else None
        )

    # ------------------------------------------------------------------ surveys
    def detect_all(
        self, context_for: ContextFor | None = None, *, allow_in_process: bool = False
    ) -> list[DetectionReport]:
        """Ask every enabled transport whether it is usable here; broken ones only warn.

        The report auto-detection would pick carries ``selected=True``.
        """
        context_for = context_for or detection_context
        reports: list[TransportStatus] = []
        for name in self.names():
            claimants = self.claimants(name)
            if len(claimants) > 1:
                error = DuplicateTransportError(
                    name, [f"{e.distribution} {e.version} ({e.target})" for e in claimants]
                )
                self._warn(name, error)
                reports += [self._failure(e, "duplicate", error) for e in claimants]
                continue
            try:
                transport = self.load(name)
            except PluginError as exc:
                self._warn(name, exc)
                status: Status = (
                    "incompatible" if isinstance(exc, PluginAPIVersionError) else "broken"
                )
                reports.append(self._failure(claimants[0], status, exc))
                continue
            reports.append(self._report(transport, context_for, allow_in_process))
        return mark_selected(reports)

    def auto_select(
        self, context_for: ContextFor | None = None, *, allow_in_process: bool = False
    ) -> tuple[Transport, list[DetectionReport]]:
        """The usable transport with the highest preference (ties: by name).

        :raises TransportUnavailableError: nothing is usable; lists every verdict.
        """
        reports = self.detect_all(context_for, allow_in_process=allow_in_process)
        for report in reports:
            if report.selected:
                return self.load(report.name), reports
        raise TransportUnavailableError(_nothing_usable(reports, allow_in_process))

    def select(
        self,
        name: str | None,
        context_for: ContextFor | None = None,
        *,
        allow_in_process: bool = False,
    ) -> Transport:
        """The transport to use: ``name`` when one is configured, else auto-detection.

        :raises TransportUnavailableError: ``name`` is in-process only (``memory``) and the
            caller runs participants in separate processes.
        """
        if name is None:
            return self.auto_select(context_for, allow_in_process=allow_in_process)[0]
        transport = self.load(name)
        if transport.capabilities.in_process_only and not allow_in_process:
            raise TransportUnavailableError(
                f"the {name!r} transport only connects participants inside one Python "
                "process, and this run uses separate processes\n"
                "  fix: use `syftflwr simulate --threads` for a single-process federation, "
                "or choose another transport (`syftflwr transports` lists them)"
            )
        return transport

    def statuses(
        self, context_for: ContextFor | None = None, *, allow_in_process: bool = False
    ) -> list[TransportStatus]:
        """Every installed transport with status, capabilities and detection verdict
        (what ``syftflwr transports`` shows), disabled ones included, never imported."""
        reports = self.detect_all(context_for, allow_in_process=allow_in_process)
        disabled = [
            TransportStatus(
                name=e.name,
                distribution=e.distribution,
                version=e.version,
                status="disabled",
                module=e.target,
                reason=f"disabled by {DISABLE_ENV}",
            )
            for e in self.all_entries()
            if is_disabled(e, self.disabled)
        ]
        return sorted([*reports, *disabled], key=lambda r: (r.name, r.distribution))

    # ------------------------------------------------------------------ helpers
    def _report(
        self, transport: Transport, context_for: ContextFor, allow_in_process: bool
    ) -> TransportStatus:
        entry, caps = transport.entry, transport.capabilities
        base: dict[str, Any] = {
            "name": entry.name,
            "distribution": entry.distribution,
            "version": entry.version,
            "status": "ok",
            "module": entry.target,
            "description": transport.info.description,
            "capabilities": dataclasses.asdict(caps),
        }
        try:
            detection = transport.detect(context_for(transport))
        except SyftflwrError as exc:
            return TransportStatus(**base, usable=False, reason=f"cannot detect: {exc}")
        except Exception as exc:  # a plugin bug must not break the listing
            log.debug("detection of %s failed", entry.name, exc_info=True)
            reason = f"detection failed: {type(exc).__name__}: {exc}"
            return TransportStatus(**base, usable=False, reason=reason)
        eligible = detection.usable and (allow_in_process or not caps.in_process_only)
        return TransportStatus(
            **base,
            usable=detection.usable,
            reason=detection.reason,
            preference=detection.preference,
            eligible=eligible,
        )

    @staticmethod
    def _failure(entry: TransportEntry, status: Status, exc: PluginError) -> TransportStatus:
        return TransportStatus(
            name=entry.name,
            distribution=entry.distribution,
            version=entry.version,
            status=status,
            module=entry.target,
            error=str(exc),
        )

    def _warn(self, name: str, exc: PluginError) -> None:
        with self._lock:
            if name in self._warned:
                return
            self._warned.add(name)
        warnings.warn(str(exc), PluginWarning, stacklevel=4)


def _nothing_usable(reports: list[TransportStatus], allow_in_process: bool) -> str:
    lines = ["no installed transport is usable here:"]
    for r in reports:
        if r.status != "ok":
            lines.append(f"  - {r.name}: {r.status}")
        elif r.usable and r.in_process_only and not allow_in_process:
            lines.append(f"  - {r.name}: in-process only (single-process simulation and tests)")
        else:
            lines.append(f"  - {r.name}: {r.reason}")
    if not reports:
        lines.append("  (none installed)")
    installed = {r.name for r in reports}
    setup = (
        "set up one of them"
        if "fsspec-local" in installed
        else f"install one, e.g. the local-directory transport: {install_hint('fsspec-local')}"
    )
    lines.append(
        f"  fix: {setup}; or name one explicitly (transport = ... in [tool.syftflwr], or "
        "SYFTFLWR_TRANSPORT); `syftflwr transports` shows every verdict"
    )
    return "\n".join(lines)
