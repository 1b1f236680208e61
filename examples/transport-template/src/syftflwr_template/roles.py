"""The roles, built on core's mailbox building blocks (``syftflwr.mailbox``): the storage
(here a local directory, atomic and exclusive), an arrival source (here core's adaptive
``Poller``) — and core supplies the RPC and events roles: chunking above
``max_object_size``, atomic claims, a journal of handled requests in the participant's
``state_dir``, error replies, retention.

For another storage (a bucket, an API), implement :class:`syftflwr.mailbox.Storage`
(put_if_absent, put, get, list, delete, claim...) and keep the rest of this file.
"""

from __future__ import annotations

from pathlib import Path

from syftflwr.crypto.directory import StorageKeyDirectory
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import LocalDirStorage, MailboxEvents, MailboxRPC, Poller, ensure_layout
from syftflwr.mailbox.layout import OUTBOX_PREFIX
from syftflwr.names import validate_email

from syftflwr_template.plugin import DEFAULT_POLL_INTERVAL, capabilities


class TemplateClient:
    """Client role: who I am (this storage has no identity of its own, so the
    configured email) and where mailboxes live. Owns the storage and its poller."""

    def __init__(self, context: TransportContext, root: Path) -> None:
        self._email = validate_email(context.require_email())
        options = context.options
        poll = float(options.get("poll_interval") or DEFAULT_POLL_INTERVAL)
        max_size = options.get("max_object_size")
        self.capabilities: Capabilities = capabilities(
            poll, None if max_size is None else int(max_size)
        )
        self.root = root
        self.storage = LocalDirStorage(root)
        ensure_layout(self.storage)
        self.arrivals = Poller(self.storage, interval=poll, name=f"template-poller-{self._email}")

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        """Where ``email``'s outboxes start (for logs and ``syftflwr doctor``)."""
        return f"{self.root}/{OUTBOX_PREFIX}{validate_email(email)}_to_"

    def key_directory(self) -> StorageKeyDirectory:
        """Where public keys are published and fetched: core encryption (on by default)
        needs it. On a mailbox storage, core's StorageKeyDirectory does it all."""
        return StorageKeyDirectory(self.storage, self._email)

    def close(self) -> None:
        self.arrivals.close()


def make_rpc(client: TemplateClient, context: TransportContext) -> MailboxRPC:
    return MailboxRPC(
        client,
        context,
        client.capabilities,
        storage=client.storage,
        arrivals=client.arrivals,
    )


def make_events(client: TemplateClient, context: TransportContext) -> MailboxEvents:
    return MailboxEvents(
        client,
        context,
        client.capabilities,
        storage=client.storage,
        arrivals=client.arrivals,
    )
