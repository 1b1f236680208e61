"""The client role; core's mailbox supplies the RPC and events roles."""

from __future__ import annotations

from pathlib import Path

from syftflwr.crypto.directory import StorageKeyDirectory
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import Poller
from syftflwr.mailbox.layout import OUTBOX_PREFIX, ensure_layout
from syftflwr.names import validate_email

from syftflwr_test_oldstyle.plugin import DEFAULT_POLL_INTERVAL, capabilities
from syftflwr_test_oldstyle.storage import SqliteStorage


class SqliteClient:
    def __init__(self, context: TransportContext, database: Path) -> None:
        self._email = validate_email(context.require_email())
        poll = float(context.options.get("poll_interval") or DEFAULT_POLL_INTERVAL)
        self.capabilities: Capabilities = capabilities(poll)
        self.database = database
        self.storage = SqliteStorage(database)
        ensure_layout(self.storage)
        self.arrivals = Poller(self.storage, interval=poll, name=f"oldsqlite-{self._email}")

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        return f"sqlite://{self.database}/{OUTBOX_PREFIX}{validate_email(email)}_to_"

    def key_directory(self) -> StorageKeyDirectory:
        return StorageKeyDirectory(self.storage, self._email)

    def close(self) -> None:
        self.arrivals.close()
