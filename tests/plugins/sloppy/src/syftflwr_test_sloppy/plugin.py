"""Hook module of the ``sloppy`` transport: core's mailbox in a shared directory, with
the faults a careless plugin has. ``SYFTFLWR_SLOPPY`` (comma-separated) picks them:

* ``client-raises`` — ``syftflwr_make_client`` raises a bare ``RuntimeError``;
* ``rpc-type`` — ``syftflwr_make_rpc`` returns a dict instead of an RPC role;
* ``events-type`` — ``syftflwr_make_events`` returns a dict instead of an events role;
* ``get-raises`` — ``Storage.get`` of a request raises a raw backend error
  (``ConnectionResetError``), not a ``StorageError``;
* ``block`` — every storage call of the aggregator blocks forever once it has sent its
  first request (a poll that never returns);
* ``slow-list`` — every ``Storage.list`` takes 2 s.

The root is ``SYFTFLWR_SLOPPY_ROOT`` (or the ``root`` option)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    Capabilities,
    ConfigError,
    Detection,
    OptionSpec,
    TransportContext,
    TransportInfo,
    hookimpl,
)

NAME = "sloppy"
ROOT_ENV = "SYFTFLWR_SLOPPY_ROOT"
FAULTS_ENV = "SYFTFLWR_SLOPPY"
POLL_INTERVAL = 0.05
CAPABILITIES = Capabilities(notifies_arrivals=False, poll_interval=POLL_INTERVAL)


def faults() -> set[str]:
    return {f.strip() for f in os.environ.get(FAULTS_ENV, "").split(",") if f.strip()}


def root_of(context: TransportContext) -> Path | None:
    root = context.options.get("root") or os.environ.get(ROOT_ENV)
    return Path(root) if root else None


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="A mailbox in a shared directory, with faults on demand.",
        capabilities=CAPABILITIES,
        options=(
            OptionSpec("root", "path", "the shared directory", env=ROOT_ENV, participant=True),
        ),
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    root = root_of(context)
    if root is None or not root.is_dir():
        return Detection(False, f"no shared directory (set {ROOT_ENV})")
    return Detection(True, f"shared directory {root}", preference=1)


@hookimpl
def syftflwr_make_client(context: TransportContext) -> Any:
    if "client-raises" in faults():
        raise RuntimeError("sloppy backend exploded")  # what a careless plugin lets through
    from syftflwr_test_sloppy.roles import SloppyClient

    root = root_of(context)
    if root is None:
        raise ConfigError("the sloppy transport needs a root", fix=f"export {ROOT_ENV}=/dir")
    return SloppyClient(context, root, faults())


@hookimpl
def syftflwr_make_rpc(client: Any, context: TransportContext) -> Any:
    if "rpc-type" in faults():
        return {"not": "an RPC role"}
    from syftflwr.plugin import MailboxRPC

    return MailboxRPC(client, context, CAPABILITIES, storage=client.storage,
                      arrivals=client.arrivals)  # fmt: skip


@hookimpl
def syftflwr_make_events(client: Any, context: TransportContext) -> Any:
    if "events-type" in faults():
        return {"not": "an events role"}
    from syftflwr.plugin import MailboxEvents

    return MailboxEvents(client, context, CAPABILITIES, storage=client.storage,
                         arrivals=client.arrivals)  # fmt: skip
