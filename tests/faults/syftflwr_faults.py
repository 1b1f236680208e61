"""Test-only fault injection: stop a process, hang a thread or make a call fail at a
chosen point, without a branch in production code (see README.md next to this file).

A fault names a call (``module:Qualified.name``) and what happens before or after it:
``exit`` (``os._exit(code)``), ``kill`` (SIGKILL to itself: a real kill -9), ``hang``
(the calling thread blocks for good) or ``raise`` (an exception instead of the call, or
after it). Faults reach a child process through its environment: :func:`fault_env` puts
this folder on ``PYTHONPATH`` (so the interpreter imports ``sitecustomize`` from here at
start-up) and the faults, as JSON, in ``SYFTFLWR_FAULTS``. The target module is patched
when it is first imported (or at once if it already is), so ``from m import f`` sees the
patched function too. In the test process itself, :func:`arm` patches until the end of a
``with`` block.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import wraps
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

ENV = "SYFTFLWR_FAULTS"
"""The environment variable holding the JSON list of faults a process arms at start-up."""
FAULTS_DIR = Path(__file__).resolve().parent
"""The folder to put on a child's ``PYTHONPATH`` (it holds ``sitecustomize.py``)."""
ACTIONS = ("exit", "kill", "hang", "raise")
EXIT_CODE = 137
"""What ``exit`` exits with by default: the status a shell reports for a SIGKILLed process."""


@dataclass(frozen=True)
class Fault:
    """What happens at ``target`` (``"package.module:Class.method"`` or ``"module:function"``).

    :param action: ``exit``, ``kill``, ``hang`` or ``raise``.
    :param when: ``before`` the call (it never runs) or ``after`` it returned.
    :param skip: calls that pass untouched first (fire at call ``skip + 1``).
    :param times: calls that fire (0: every call from then on); ``exit``/``kill`` fire once
        by nature, ``hang`` once per thread that reaches it.
    :param exception: ``module:Name`` of the exception ``raise`` raises (constructed with
        ``message``).
    :param code: the exit status of ``exit``.
    :param mark: a file created just before the fault acts, so a test can wait until the
        process reached the point (and e.g. kill it while it hangs there).
    :param args_contain: only calls with a ``str`` argument containing this count (e.g.
        ``".blob"``: the writes of shared blobs, not of messages); ``""``: every call.
    """

    target: str
    action: str
    when: str = "before"
    skip: int = 0
    times: int = 1
    exception: str = "syftflwr.errors:StorageError"
    message: str = ""
    code: int = EXIT_CODE
    mark: str = ""
    args_contain: str = ""

    def __post_init__(self) -> None:
        module, _, qualname = self.target.partition(":")
        if not module or not qualname:
            raise ValueError(f"fault target {self.target!r}: write it as 'module:Qualified.name'")
        if self.action not in ACTIONS:
            raise ValueError(f"fault action {self.action!r}: one of {', '.join(ACTIONS)}")
        if self.when not in ("before", "after"):
            raise ValueError(f"fault 'when' {self.when!r}: 'before' or 'after'")
        if self.skip < 0 or self.times < 0:
            raise ValueError("fault skip and times must be >= 0")
        if ":" not in self.exception:
            raise ValueError(f"fault exception {self.exception!r}: write it as 'module:Name'")

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.partition(":")[2]


def fault_env(*faults: Fault, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process that arms ``faults`` at start-up (``base``:
    default ``os.environ``; any faults it holds are replaced)."""
    env = dict(os.environ if base is None else base)
    env.pop(ENV, None)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(FAULTS_DIR) not in paths:
        paths.insert(0, str(FAULTS_DIR))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if faults:
        env[ENV] = json.dumps([asdict(f) for f in faults])
    return env


def parse(text: str) -> list[Fault]:
    """Faults from the JSON of :data:`ENV` (a list of objects with :class:`Fault`'s fields)."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError(f"{ENV} must hold a JSON list of faults")
    return [Fault(**item) for item in items]


class _Trigger:
    """Counts the calls of one fault (thread-safe) and acts when its turn comes."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self._calls = 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            self._calls += 1
            n = self._calls - self.fault.skip
        return n >= 1 and (self.fault.times == 0 or n <= self.fault.times)

    def act(self) -> None:
        fault = self.fault
        if fault.mark:
            Path(fault.mark).touch()
        if fault.action == "exit":
            os._exit(fault.code)
        if fault.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # the signal is delivered asynchronously
        if fault.action == "hang":
            while True:
                time.sleep(3600)
        module, _, name = fault.exception.partition(":")
        exc_type = getattr(importlib.import_module(module), name)
        raise exc_type(fault.message or f"injected fault at {fault.target}")


def _wrap(func: Callable[..., Any], trigger: _Trigger) -> Callable[..., Any]:
    @wraps(func)
    def faulty(*args: Any, **kwargs: Any) -> Any:
        wanted = trigger.fault.args_contain
        if wanted and not any(
            isinstance(a, str) and wanted in a for a in (*args, *kwargs.values())
        ):
            return func(*args, **kwargs)
        if trigger.fault.when == "before":
            if trigger.due():
                trigger.act()
            return func(*args, **kwargs)
        result = func(*args, **kwargs)
        if trigger.due():
            trigger.act()
        return result

    return faulty


def _patch(module: ModuleType, fault: Fault) -> Callable[[], None]:
    """Replace the target in ``module``; returns the undo."""
    *path, name = fault.qualname.split(".")
    owner: Any = module
    try:
        for part in path:
            owner = getattr(owner, part)
        if isinstance(owner, type):  # the raw attribute: keep staticmethod/classmethod
            original = next(k.__dict__[name] for k in owner.__mro__ if name in k.__dict__)
        else:
            original = getattr(owner, name)
    except (AttributeError, StopIteration):
        raise ValueError(f"fault target {fault.target!r} does not exist") from None
    own = name in vars(owner)
    trigger = _Trigger(fault)
    if isinstance(original, staticmethod | classmethod):
        patched: Any = type(original)(_wrap(original.__func__, trigger))
    else:
        patched = _wrap(original, trigger)
    setattr(owner, name, patched)

    def undo() -> None:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)

    return undo


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a target module right after it is first executed."""

    def __init__(self, pending: dict[str, list[Fault]]) -> None:
        self.pending = pending

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        faults = self.pending.pop(fullname)
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            for fault in faults:
                _patch(module, fault)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install(faults: Sequence[Fault]) -> Callable[[], None]:
    """Arm ``faults`` in this process: patch imported targets now, the others when they
    are imported. Returns the undo (for the targets patched so far)."""
    undo: list[Callable[[], None]] = []
    pending: dict[str, list[Fault]] = {}
    for fault in faults:
        module = sys.modules.get(fault.module)
        if module is not None:
            undo.append(_patch(module, fault))
        else:
            pending.setdefault(fault.module, []).append(fault)
    finder = _PatchOnImport(pending) if pending else None
    if finder is not None:
        sys.meta_path.insert(0, finder)

    def uninstall() -> None:
        if finder is not None and finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for step in reversed(undo):
            step()

    return uninstall


@contextmanager
def arm(*faults: Fault) -> Iterator[None]:
    """Arm ``faults`` in the test process for the ``with`` block (targets imported now)."""
    for fault in faults:
        importlib.import_module(fault.module)
    uninstall = install(faults)
    try:
        yield
    finally:
        uninstall()


def install_from_env() -> None:
    """Arm the faults of :data:`ENV` (called by ``sitecustomize`` at start-up). A bad
    spec stops the process with status 2: a fault that silently does nothing would let
    a test pass for the wrong reason."""
    text = os.environ.get(ENV)
    if not text:
        return
    try:
        install(parse(text))
    except (ValueError, TypeError) as exc:
        sys.stderr.write(f"error: {ENV}: {exc}\nfix: see tests/faults/README.md\n")
        sys.stderr.flush()
        os._exit(2)
