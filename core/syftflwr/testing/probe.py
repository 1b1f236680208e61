"""What listing and detecting one transport imports, measured in a fresh interpreter.

``syftflwr transports`` and auto-detection import every installed transport's hook
module and call ``syftflwr_transport_info`` and ``syftflwr_detect``. A hook module that
imports Google's client, gcsfs or Flower at the top makes every listing slow for every
user, so both the conformance suite and ``syftflwr transports --check`` run this probe.

The probe rebuilds the transport's entry point from its name and target (so it works for
installed plugins and for temporary registrations alike, given the same ``sys.path``),
then records ``sys.modules`` after each step. Run as a module::

    python -m syftflwr.testing.probe '{"name": "foo", "target": "syftflwr_foo.plugin"}'

It imports only the standard library and syftflwr's light core at the top.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CORE_HEAVY_MODULES = ("flwr", "grpc", "numpy", "google.protobuf", "syftflwr.flower")
"""Never needed to list or detect a transport (Flower alone costs about a second)."""

STEPS = ("listing", "import", "info", "detect", "statuses")
"""In order: read metadata only; import the hook module and validate it; call
``syftflwr_transport_info``; call ``syftflwr_detect``; build the full listing."""


def is_under(module: str, packages: Iterable[str]) -> str | None:
    """The entry of ``packages`` that ``module`` is (or lies inside), if any."""
    for package in packages:
        if module == package or module.startswith(package + "."):
            return package
    return None


@dataclass(frozen=True)
class ProbeResult:
    """Modules each step imported (``new[step]``), and what failed, if anything."""

    name: str
    target: str
    new: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: str | None = None
    """Why the probe could not run a step (an import error, a detection exception)."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    listing_imported_plugin: bool = False
    """True if merely listing (metadata) imported the plugin module: a registry bug."""

    def imported(self, *steps: str) -> list[str]:
        """Every module imported during ``steps`` (all steps by default)."""
        chosen = steps or STEPS
        return sorted({m for s in chosen for m in self.new.get(s, ())})

    def heavy(self, heavy: Iterable[str], *steps: str) -> dict[str, list[str]]:
        """``{heavy package: [modules of it imported]}`` for the packages that were."""
        found: dict[str, list[str]] = {}
        packages = tuple(heavy)
        for module in self.imported(*steps):
            package = is_under(module, packages)
            if package is not None:
                found.setdefault(package, []).append(module)
        return found

    def third_party(self, *steps: str) -> list[str]:
        """Top-level packages imported that are neither stdlib, syftflwr nor the
        plugin's own package (hints: what the hook module drags in)."""
        own = self.target.partition(":")[0].split(".")[0]
        skip = {*sys.stdlib_module_names, "syftflwr", own, "_distutils_hack"}
        tops = {m.split(".")[0] for m in self.imported(*steps)}
        return sorted(t for t in tops if t not in skip and not t.startswith("_"))


def probe(
    name: str,
    target: str,
    *,
    python: str = sys.executable,
    path: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> ProbeResult:
    """Run the probe for transport ``name`` (entry-point value ``target``) in a fresh
    interpreter that sees ``path`` (default: this process's ``sys.path``)."""
    environ = dict(os.environ if env is None else env)
    search = [p for p in (sys.path if path is None else path) if p]
    environ["PYTHONPATH"] = os.pathsep.join(search)
    environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    request = json.dumps({"name": name, "target": target})
    proc = subprocess.run(
        [python, "-m", "syftflwr.testing.probe", request],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-20:]
        return ProbeResult(
            name,
            target,
            error=f"the probe process failed (exit {proc.returncode}):\n" + "\n".join(detail),
        )
    data = json.loads(lines[-1])
    return ProbeResult(
        name=name,
        target=target,
        new={step: tuple(mods) for step, mods in data["new"].items()},
        error=data.get("error"),
        seconds=data.get("seconds", {}),
        listing_imported_plugin=bool(data.get("listing_imported_plugin")),
    )


# --------------------------------------------------------------------------- child side
def _child(name: str, target: str) -> dict[str, Any]:
    import importlib.metadata

    from syftflwr.hookspecs import ENTRY_POINT_GROUP
    from syftflwr.registry import Registry, detection_context

    result: dict[str, Any] = {"new": {}, "seconds": {}}
    module = target.partition(":")[0]
    seen = set(sys.modules)

    def step(label: str, started: float) -> None:
        nonlocal seen
        now = set(sys.modules)
        result["new"][label] = sorted(now - seen)
        result["seconds"][label] = round(time.perf_counter() - started, 4)
        seen = now

    started = time.perf_counter()
    entry_point = importlib.metadata.EntryPoint(name=name, value=target, group=ENTRY_POINT_GROUP)
    registry = Registry(entry_points=[entry_point], disabled=())
    registry.names()
    result["listing_imported_plugin"] = module in sys.modules
    step("listing", started)
    try:
        started = time.perf_counter()
        transport = registry.load(name)
        step("import", started)
        started = time.perf_counter()
        _ = transport.info.capabilities
        step("info", started)
        started = time.perf_counter()
        transport.detect(detection_context(transport))
        step("detect", started)
        started = time.perf_counter()
        registry.statuses()
        step("statuses", started)
    except Exception as exc:
        step("failed", started)
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print('usage: python -m syftflwr.testing.probe \'{"name": ..., "target": ...}\'')
        return 2
    request = json.loads(args[0])
    result = _child(request["name"], request["target"])
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
