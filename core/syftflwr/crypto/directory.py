"""Where public keys are published and fetched: the transport's business.

A client role that can carry keys exposes ``key_directory() -> KeyDirectory``. Every
storage-based transport gets it for free from :class:`StorageKeyDirectory`: the owner
writes its record into each of its outboxes (only it may write there, and each outbox is
already readable by — on Drive, shared with — exactly the peer it addresses), in the
folder of the app the key belongs to::

    {root}/syft_outbox_inbox_{owner}_to_{reader}/{app}/syftflwr.pubkey.json

Key pairs are per participant *and app* (``state/<app>/<email>/keys``), so each app has
its own slot: two apps with the same participants never overwrite each other's keys.
Core scopes a directory to the app with its optional ``for_app(app)``; a directory
without it keeps one slot per owner and reader (then two apps sharing participants and
storage cannot both be encrypted). A slot of syftflwr before per-app slots
(``{outbox}/syftflwr.pubkey.json``) is read while the owner has not published an app
slot yet, and removed by its owner when it publishes the same key into its app slot.

A transport without a key directory cannot use core encryption: connecting with
encryption on fails closed and says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer
from syftflwr.mailbox.layout import outbox, validate_app_folder
from syftflwr.mailbox.storage import Storage
from syftflwr.names import validate_email
from syftflwr.roles import KeyDirectory, PublishesKeys, ScopesKeysByApp, offers

RECORD_NAME = "syftflwr.pubkey.json"
MAX_RECORD = 4096


def key_directory_of(client: object, app: str | None = None) -> KeyDirectory | None:
    """The client role's key directory, if its transport has one (scoped to ``app``
    when the directory supports it)."""
    if not offers(client, PublishesKeys):
        return None
    directory: KeyDirectory = cast(PublishesKeys, client).key_directory()
    if app is not None and offers(directory, ScopesKeysByApp):
        return cast(ScopesKeysByApp, directory).for_app(app)
    return directory


def record_path(owner: str, reader: str, app: str | None = None) -> str:
    """Where ``owner`` publishes its key of ``app`` for ``reader`` (``app=None``: the
    slot shared by all apps, written before per-app slots)."""
    if app is None:
        return f"{outbox(owner, reader)}/{RECORD_NAME}"
    return f"{outbox(owner, reader)}/{validate_app_folder(app)}/{RECORD_NAME}"


def _same_key(a: Buffer, b: Buffer) -> bool:
    try:
        return bool(json.loads(bytes(a))["x25519"] == json.loads(bytes(b))["x25519"])
    except (ValueError, KeyError, TypeError):
        return False


class StorageKeyDirectory:
    """Key records in a mailbox storage, one copy in each of the owner's outboxes."""

    def __init__(self, storage: Storage, me: str, app: str | None = None) -> None:
        self.storage = storage
        self.me = validate_email(me)
        self.app = None if app is None else validate_app_folder(app)

    def for_app(self, app: str) -> StorageKeyDirectory:
        return StorageKeyDirectory(self.storage, self.me, app)

    def publish(self, record: bytes, readers: Sequence[str]) -> None:
        for reader in dict.fromkeys(readers):
            path = record_path(self.me, reader, self.app)
            current = self.storage.get(path, max_size=MAX_RECORD)
            if current is None or bytes(current) != record:
                self.storage.put(path, [record])
            if self.app is not None:
                self._migrate(reader, record)

    def _migrate(self, reader: str, record: bytes) -> None:
        """Remove my slot shared by all apps when it holds this app's key (it moved
        into the app's slot); another app's key stays for that app to move."""
        legacy = record_path(self.me, reader)
        current = self.storage.get(legacy, max_size=MAX_RECORD)
        if current is not None and _same_key(current, record):
            self.storage.delete(legacy)

    def fetch(self, email: str) -> Buffer | None:
        owner = validate_email(email)
        found = self.storage.get(record_path(owner, self.me, self.app), max_size=MAX_RECORD)
        if found is None and self.app is not None:  # an owner not yet on per-app slots
            found = self.storage.get(record_path(owner, self.me), max_size=MAX_RECORD)
        return found


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
