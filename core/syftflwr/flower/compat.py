"""Bridge the Flower versions syftflwr supports (``flwr>=1.26.1,<1.43``) by FEATURE, never by
version number: each difference is probed once, at import, from what the installed
Flower actually offers.

Differences bridged here:

* where ``Run`` and ``make_message`` live (``flwr.supercore.run`` / ``flwr.app.message``
  in newer Flower, ``flwr.common.typing`` / ``flwr.common.message`` in older);
* ``Grid.set_run(run_id: int)`` (older) vs ``Grid.set_run(run: Run)`` (newer);
* the process-global ``flwr.supercore.task_identity.TaskIdentity`` that newer Flower
  reads when a ServerApp builds an instruction ``Message`` (unset -> RuntimeError);
* ``Metadata`` fields added over time (``src_task_id`` / ``dst_task_id``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

from flwr.app import Context, Error, Message, Metadata, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid

from syftflwr._version import supported_flwr

try:
    FLWR_VERSION = version("flwr")
except PackageNotFoundError:  # pragma: no cover - vendored Flower
    FLWR_VERSION = "unknown"
"""For messages and bug reports only; no decision is ever taken on it."""


def _first_attr(candidates: tuple[tuple[str, str], ...]) -> Any:
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, attr):
            return getattr(module, attr)
    tried = ", ".join(f"{m}.{a}" for m, a in candidates)
    raise ImportError(
        f"this Flower ({FLWR_VERSION}) offers none of {tried}; syftflwr supports "
        f"{supported_flwr()} — install a supported version"
    )


RunType: Any = _first_attr((("flwr.supercore.run", "Run"), ("flwr.common.typing", "Run")))
_make_message: Any = _first_attr(
    (("flwr.app.message.message", "make_message"), ("flwr.common.message", "make_message"))
)
SYSTEM_MESSAGE_TYPE: str = _first_attr(
    (
        ("flwr.supercore.constant", "SYSTEM_MESSAGE_TYPE"),
        ("flwr.common.constant", "SYSTEM_MESSAGE_TYPE"),
    )
)

_SET_RUN_PARAM = next(iter(list(inspect.signature(Grid.set_run).parameters)[1:]), "run")
SET_RUN_TAKES_RUN = _SET_RUN_PARAM != "run_id"
"""True when the installed ``Grid.set_run`` expects a ``Run`` object, not an int."""

try:
    _task_identity: Any = importlib.import_module("flwr.supercore.task_identity").TaskIdentity
except (ImportError, AttributeError):
    _task_identity = None
HAS_TASK_IDENTITY = _task_identity is not None
"""True when instruction Messages read run/node/task ids from a process-global identity."""

_METADATA_FIELDS = frozenset(inspect.signature(Metadata.__init__).parameters) - {"self"}


def make_run(run_id: int) -> Any:
    """An empty ``Run`` of the installed Flower with ``run_id``."""
    return RunType.create_empty(run_id)


def run_id_of(run: object) -> int:
    """Accept what either ``set_run`` signature passes: an int or a ``Run``."""
    if isinstance(run, bool):
        raise TypeError("set_run expects a run id (int) or a flwr Run, got a bool")
    if isinstance(run, int):
        return run
    run_id = getattr(run, "run_id", None)
    if isinstance(run_id, int):
        return run_id
    raise TypeError(f"set_run expects a run id (int) or a flwr Run, got {type(run).__name__}")


def set_task_identity(run_id: int, node_id: int = SUPERLINK_NODE_ID, task_id: int = 1) -> None:
    """Set Flower's process-global task identity where the installed Flower has one.

    Newer Flower stamps ``run_id`` and ``src_node_id`` into every instruction Message
    from it and raises when it is unset; older Flower has no such thing (the Grid stamps
    both at push time, which :class:`~syftflwr.flower.grid.TransportGrid` also does).
    """
    if _task_identity is not None:
        _task_identity.task_id = task_id
        _task_identity.run_id = run_id
        _task_identity.node_id = node_id


def make_metadata(**fields: Any) -> Metadata:
    """``Metadata(**fields)``, dropping fields the installed Flower does not know."""
    return Metadata(**{k: v for k, v in fields.items() if k in _METADATA_FIELDS})


def make_message(
    metadata: Metadata, content: RecordDict | None = None, error: Error | None = None
) -> Message:
    """A Message with explicit metadata (replies rebuilt from the wire, error replies)."""
    return cast(Message, _make_message(metadata=metadata, content=content, error=error))


def set_message_id(message: Message, message_id: str) -> None:
    """Flower grids assign message ids at push time; Metadata has no public setter."""
    message.metadata.__dict__["_message_id"] = message_id


def stamp_instruction(message: Message, *, run_id: int, src_node_id: int) -> None:
    """Stamp what Flower's grids stamp on push (``run_id``, ``src_node_id``)."""
    message.metadata.__dict__["_run_id"] = run_id
    message.metadata.__dict__["_src_node_id"] = src_node_id


def new_context(
    *,
    run_id: int,
    node_id: int,
    node_config: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    state: RecordDict | None = None,
) -> Context:
    return Context(
        run_id=run_id,
        node_id=node_id,
        node_config=dict(node_config or {}),
        state=state if state is not None else RecordDict(),
        run_config=dict(run_config or {}),
    )
