"""Where public keys are published and fetched: the transport's business.

A client role that can carry keys exposes ``key_directory() -> KeyDirectory``. Every
storage-based transport gets it for free from :class:`StorageKeyDirectory`: the owner
writes its record into each of its outboxes (only it may write there, and each outbox is
already readable by — on Drive, shared with — exactly the peer it addresses)::

    {root}/syft_outbox_inbox_{owner}_to_{reader}/syftflwr.pubkey.json

A transport without a key directory cannot use core encryption: connecting with
encryption on fails closed and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from syftflwr.envelope import Buffer
from syftflwr.mailbox.layout import outbox
from syftflwr.mailbox.storage import Storage
from syftflwr.names import validate_email

RECORD_NAME = "syftflwr.pubkey.json"
MAX_RECORD = 4096


@runtime_checkable
class KeyDirectory(Protocol):
    """Publish this participant's public-key record; fetch a peer's."""

    def publish(self, record: bytes, readers: Sequence[str]) -> None:
        """Make ``record`` readable by each of ``readers`` (idempotent, cheap if unchanged)."""
        ...

    def fetch(self, email: str) -> Buffer | None:
        """``email``'s published record as this participant sees it, or None."""
        ...


def key_directory_of(client: object) -> KeyDirectory | None:
    """The client role's key directory, if its transport has one."""
    factory = getattr(client, "key_directory", None)
    return factory() if callable(factory) else None


def record_path(owner: str, reader: str) -> str:
    return f"{outbox(owner, reader)}/{RECORD_NAME}"


class StorageKeyDirectory:
    """Key records in a mailbox storage, one copy in each of the owner's outboxes."""

    def __init__(self, storage: Storage, me: str) -> None:
        self.storage = storage
        self.me = validate_email(me)

    def publish(self, record: bytes, readers: Sequence[str]) -> None:
        for reader in dict.fromkeys(readers):
            path = record_path(self.me, reader)
            current = self.storage.get(path, max_size=MAX_RECORD)
            if current is None or bytes(current) != record:
                self.storage.put(path, [record])

    def fetch(self, email: str) -> Buffer | None:
        return self.storage.get(record_path(validate_email(email), self.me), max_size=MAX_RECORD)
