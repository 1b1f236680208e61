"""The hook module: light (listing and detection import it for every user)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from syftflwr import hookimpl
from syftflwr.errors import ConfigError
from syftflwr.info import Capabilities, Detection, OptionSpec, TransportContext, TransportInfo

if TYPE_CHECKING:
    from syftflwr.mailbox import MailboxEvents, MailboxRPC

    from syftflwr_test_oldstyle.roles import SqliteClient

NAME = "oldsqlite"
DATABASE_ENV = "SYFTFLWR_OLDSQLITE_DATABASE"
DEFAULT_POLL_INTERVAL = 0.05

OPTIONS = (
    OptionSpec(
        "database",
        "path",
        "The SQLite file every participant reads and writes.",
        env=DATABASE_ENV,
    ),
    OptionSpec(
        "poll_interval",
        "float",
        "Seconds between listings of the inbox folders when busy.",
        default=DEFAULT_POLL_INTERVAL,
    ),
)


def capabilities(poll_interval: float = DEFAULT_POLL_INTERVAL) -> Capabilities:
    return Capabilities(notifies_arrivals=False, poll_interval=poll_interval)


def database_of(context: TransportContext) -> Path | None:
    database = context.options.get("database")  # core fills it from DATABASE_ENV too
    return Path(database).expanduser() if database else None


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="Every mailbox in one shared SQLite file, polled.",
        capabilities=capabilities(),
        options=OPTIONS,
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    database = database_of(context)
    if database is None:
        return Detection(False, f"no database configured (option database or {DATABASE_ENV})")
    return Detection(True, f"SQLite mailbox {database}", preference=1)


@hookimpl
def syftflwr_make_client(context: TransportContext) -> SqliteClient:
    from syftflwr_test_oldstyle.roles import SqliteClient

    database = database_of(context)
    if database is None:
        raise ConfigError(
            "the oldsqlite transport needs a database file",
            key=f"tool.syftflwr.transport.{NAME}.database",
            fix=f'set database = "/shared/mailbox.sqlite" there, or export {DATABASE_ENV}',
        )
    return SqliteClient(context, database)


@hookimpl
def syftflwr_make_rpc(client: SqliteClient, context: TransportContext) -> MailboxRPC:
    from syftflwr.mailbox import MailboxRPC

    return MailboxRPC(
        client, context, client.capabilities, storage=client.storage, arrivals=client.arrivals
    )


@hookimpl
def syftflwr_make_events(client: SqliteClient, context: TransportContext) -> MailboxEvents:
    from syftflwr.mailbox import MailboxEvents

    return MailboxEvents(
        client, context, client.capabilities, storage=client.storage, arrivals=client.arrivals
    )
