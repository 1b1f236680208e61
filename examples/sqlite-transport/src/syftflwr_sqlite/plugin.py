"""The hook module named by the entry point ``syftflwr.transports: sqlite``: one
registration of core's mailbox kit and a detection. Imports only ``syftflwr.plugin``
(and not ``sqlite3``: the storage module is imported when a role is built)."""

from __future__ import annotations

from pathlib import Path

from syftflwr.plugin import (
    Detection,
    OptionSpec,
    StorageTransport,
    TransportContext,
    mailbox_options,
)

NAME = "sqlite"
PATH_ENV = "SYFTFLWR_SQLITE_PATH"
PATH_HELP = "The SQLite file every participant opens (created on first use)."

kit = StorageTransport(
    NAME,
    "A mailbox in one SQLite file shared by every participant, polled.",
    storage="syftflwr_sqlite.storage:SQLiteStorage",
    options=(
        OptionSpec("path", "path", PATH_HELP, env=PATH_ENV, participant=True),
        *mailbox_options(poll_interval=0.1),
    ),
)
syftflwr_transport_info, syftflwr_make_client, syftflwr_make_rpc, syftflwr_make_events = kit.hooks()


@kit.detection
def syftflwr_detect(context: TransportContext) -> Detection:
    path = context.options.get("path") or context.env.get(PATH_ENV)
    if not path:
        return Detection(False, f"no database configured (option path or {PATH_ENV})")
    if not Path(path).expanduser().parent.is_dir():
        return Detection(False, f"the folder of {path} does not exist")
    return Detection(True, f"SQLite mailbox {path}", preference=1)
