"""The client role (identity from a SyftBox client config) and the role factories: the
native profile is core's mailbox, rooted in the SyftBox data dir."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syftflwr.plugin import (
    SYFTFLWR05_PROFILE as SYFTFLWR05,
)
from syftflwr.plugin import (
    BaseEvents,
    BaseRPC,
    Capabilities,
    ConfigError,
    LocalArrivals,
    LocalDirStorage,
    MailboxEvents,
    MailboxRPC,
    Storage,
    TransportContext,
    check_identity,
    ensure_layout,
)

from syftflwr_syftbox.datasite_storage import DatasiteStorage, app_folder, write_permissions
from syftflwr_syftbox.options import NAME, Settings, SyftBoxConfig, check_profile_options
from syftflwr_syftbox.synced import PartArrivals, SyncedStorage
from syftflwr_syftbox.wire import Format1Guard, SyftBoxKeyDirectory

if TYPE_CHECKING:
    from syftflwr_syftbox.keys import KeyRing

_DATA_DIRS: dict[tuple[Path, bool], LocalDirStorage] = {}
_DATA_DIRS_LOCK = threading.Lock()


def open_data_dir(data_dir: Path, *, fsync: bool) -> LocalDirStorage:
    """The process-wide storage of a data dir (participants simulated in one process
    share it), with the layout marker checked once."""
    key = (data_dir, fsync)
    with _DATA_DIRS_LOCK:
        storage = _DATA_DIRS.get(key)
        if storage is None:
            storage = LocalDirStorage(data_dir, fsync=fsync)
            ensure_layout(storage)
            _DATA_DIRS[key] = storage
        return storage


def forget_data_dirs() -> None:
    """Drop every opened data dir (tests; a notebook switching data dirs)."""
    with _DATA_DIRS_LOCK:
        _DATA_DIRS.clear()


class SyftBoxClient:
    """Client role: the SyftBox config's email is the identity (core refuses a
    participant whose configured email differs), its data dir holds the datasites."""

    def __init__(self, context: TransportContext) -> None:
        email = context.require_email()
        check_profile_options(context)
        self.settings = Settings.from_context(context)
        self.config = SyftBoxConfig.load(self.settings.config_path)
        # before anything is written into the data dir in this identity's name
        check_identity(email, self.config.email, NAME, source=str(self.config.path))
        if self.config.email != email:  # the same participant (core's check) spelled
            raise ConfigError(  # otherwise: its datasite folder would not be found
                f"the SyftBox config {self.config.path} spells this participant "
                f"{self.config.email}, the project {email}; SyftBox names datasite folders "
                "by the exact spelling, so peers would look for the wrong one",
                fix=f"spell it {self.config.email} in [tool.syftflwr] (and --as), or "
                "change the config's email",
            )
        self.data_dir = self.settings.data_dir or self.config.data_dir
        base = open_data_dir(self.data_dir, fsync=self.settings.fsync)
        self.base = base
        base.makedirs(app_folder(self.config.email))
        if context.participants:
            write_permissions(base, self.config.email, context.participants)
        datasite = DatasiteStorage(base, self.config.email, context.participants)
        # native profile (wire format 2): core envelopes, sealed by core when the
        # project's encryption is on; objects of format 1 are refused naming it (wire.py)
        self.storage: Storage = SyncedStorage(Format1Guard(datasite))
        self.capabilities: Capabilities = self.settings.capabilities()
        self.keys: KeyRing | None = None
        if self.settings.encrypt:  # the syft-flwr-0.5 profile's syft-crypto encryption
            from syftflwr_syftbox.keys import KeyRing

            # created (and the DID published) on connect, before it serves or sends
            self.keys = KeyRing(self.config, self.data_dir, key_wait=self.settings.key_wait)
        # Arrivals through the participant's datasite view (it maps each outbox to its
        # sender's datasite) over core's process-wide inotify watcher: one
        # inotify instance however many participants a process simulates. No folder is
        # ever created: the ones a participant waits on are in its peers' datasites, and a
        # missing one is awaited through its nearest existing ancestor.
        self.local_arrivals = LocalArrivals(
            datasite,
            mode=self.settings.watch,
            poll_interval=self.settings.poll_interval,
            max_poll_interval=max(self.settings.max_poll_interval, self.settings.poll_interval),
            create_folders=False,
            poller_name=f"syftflwr-syftbox-poller-{self.config.email}",
        )
        self.arrivals = PartArrivals(self.local_arrivals, datasite)

    @property
    def email(self) -> str:
        return self.config.email

    def datasite_url(self, email: str) -> str:
        """The folder holding ``email``'s outboxes in this data dir."""
        return str(self.data_dir / app_folder(email))

    def encrypts_messages(self) -> bool:
        """Core's client-role query: True only where syft-crypto encrypts every message
        (the syft-flwr-0.5 profile with ``encrypt`` on); the native profile is sealed by
        core (``encryption`` in ``[tool.syftflwr]``)."""
        return self.settings.encrypt

    def key_directory(self) -> SyftBoxKeyDirectory:
        """Where core encryption publishes this participant's public key: its outboxes."""
        return SyftBoxKeyDirectory(self.storage, self.config.email, self.data_dir)

    def syft_client(self) -> Any:
        """A syft-core ``Client`` for this participant (syft-rpc/syft-event take one)."""
        from syft_core import Client
        from syft_core.config import SyftClientConfig

        return Client(
            SyftClientConfig.model_validate(
                {
                    "path": self.config.path,
                    "email": self.config.email,
                    "data_dir": self.data_dir,
                    "server_url": self.config.server_url,
                }
            )
        )

    def close(self) -> None:
        """Stops the poller, if polling was needed (the roles close their own
        subscriptions; the inotify watcher is process-wide)."""
        self.arrivals.close()


def make_rpc(client: SyftBoxClient, context: TransportContext) -> BaseRPC:
    if context.profile == SYFTFLWR05:
        from syftflwr_syftbox.syftflwr05 import SyftRpc05

        return SyftRpc05(client, context)
    return MailboxRPC(
        client,
        context,
        client.capabilities,
        storage=client.storage,
        arrivals=client.arrivals,
        retention_interval=client.settings.retention_interval,
    )


def make_events(client: SyftBoxClient, context: TransportContext) -> BaseEvents:
    if context.profile == SYFTFLWR05:
        from syftflwr_syftbox.syftflwr05 import SyftEvents05

        return SyftEvents05(client, context)
    return MailboxEvents(
        client,
        context,
        client.capabilities,
        storage=client.storage,
        arrivals=client.arrivals,
        workers=client.settings.workers,
        incomplete_grace=client.settings.incomplete_grace,
        retention_interval=client.settings.retention_interval,
    )
