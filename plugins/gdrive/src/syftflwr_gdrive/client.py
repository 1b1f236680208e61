"""The client role and the role factories. A participant's Drive session — credentials,
API, storage, changes feed — is opened once per process and shared by every role built
for it, so an aggregator's RPC role and a datasite's events role each cost one feed."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from syftflwr.crypto.directory import StorageKeyDirectory
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox.events import MailboxEvents
from syftflwr.mailbox.layout import OUTBOX_PREFIX, ensure_layout
from syftflwr.mailbox.rpc import MailboxRPC
from syftflwr.names import validate_email
from syftflwr.profiles import mailbox_profile

from syftflwr_gdrive.api import DriveAPI, RetryPolicy
from syftflwr_gdrive.auth import load_credentials
from syftflwr_gdrive.changes import ChangesFeed
from syftflwr_gdrive.options import Settings, migrate_legacy
from syftflwr_gdrive.storage import DriveStorage


@dataclass(frozen=True)
class Session:
    """One participant's opened Drive: who the token belongs to, and its mailbox."""

    email: str
    api: DriveAPI
    storage: DriveStorage
    feed: ChangesFeed


_SESSIONS: dict[tuple[Any, ...], Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _key(settings: Settings, context: TransportContext) -> tuple[Any, ...]:
    return (str(settings.token_path(context.email)), settings.api_root_url, settings.root_folder,
            settings.poll_interval, settings.max_poll_interval, settings.transfer_chunk_size,
            settings.retries, str(context.state_dir), context.profile)  # fmt: skip


def whoami(api: DriveAPI) -> str:
    about = api.call("your account (about.get)", lambda s: s.about().get(fields="user"))
    return str(about["user"]["emailAddress"])


def open_session(settings: Settings, context: TransportContext) -> Session:
    key = _key(settings, context)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None:
            return session
        api = DriveAPI(
            load_credentials(settings, context.email),
            root_url=settings.api_root_url,
            policy=RetryPolicy(retries=settings.retries),
        )
        email = whoami(api)
        storage = DriveStorage(
            api,
            email,
            root_name=settings.root_folder,
            transfer_chunk=settings.transfer_chunk_size,
            folder_names=mailbox_profile(context.profile).folder_names,
        )
        ensure_layout(storage)
        token_path = None
        if context.state_dir is not None:
            digest = hashlib.sha256(repr(key[:3]).encode()).hexdigest()[:16]
            token_path = context.state_dir / "gdrive" / f"changes-{digest}.token"
        feed = ChangesFeed(
            storage,
            interval=settings.poll_interval,
            max_interval=settings.max_poll_interval,
            token_path=token_path,
        )
        session = _SESSIONS[key] = Session(email, api, storage, feed)
        return session


def forget_sessions() -> None:
    """Close every opened session (tests; a notebook switching accounts)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        session.feed.close()


class GDriveClient:
    """Client role: the identity is the token owner's (``about.get``), never guessed from
    the config; core refuses to run when it differs from the participant's email."""

    def __init__(self, context: TransportContext) -> None:
        validate_email(context.require_email())
        self.settings = Settings.from_context(context)
        if not self.settings.token_configured:
            migrate_legacy(self.settings.token_path(context.email), context.env)
        self.capabilities: Capabilities = self.settings.capabilities()
        self.session = open_session(self.settings, context)
        self._email = self.session.email

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        """Where ``email``'s outboxes live: its My Drive folder (by name)."""
        return f"gdrive://{validate_email(email)}/{self.settings.root_folder}/{OUTBOX_PREFIX}{email}_to_"

    def key_directory(self) -> StorageKeyDirectory:
        """Public keys for core encryption, in this participant's (shared) outboxes."""
        return StorageKeyDirectory(self.session.storage, self._email)

    def close(self) -> None:
        """Nothing to release: the session is shared by the process (:func:`forget_sessions`)."""


def make_rpc(client: GDriveClient, context: TransportContext) -> MailboxRPC:
    return MailboxRPC(
        client,
        context,
        client.capabilities,
        storage=client.session.storage,
        arrivals=client.session.feed,
        retention_interval=client.settings.retention_interval,
        profile=mailbox_profile(context.profile),
    )


def make_events(client: GDriveClient, context: TransportContext) -> MailboxEvents:
    return MailboxEvents(
        client,
        context,
        client.capabilities,
        storage=client.session.storage,
        arrivals=client.session.feed,
        workers=client.settings.workers,
        retention_interval=client.settings.retention_interval,
        profile=mailbox_profile(context.profile),
    )
