"""Opening a participant's Drive: credentials, API, the mailbox storage in its My Drive
(identity: the token's owner, ``about.get``) and the changes feed. The kit shares one
opened Drive per participant and process (``share_key``), so an aggregator's RPC role and
a datasite's events role each cost one feed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from syftflwr.plugin import SYFTFLWR05_PROFILE, MailboxSettings, TransportContext, validate_email

from syftflwr_gdrive.api import DriveAPI, RetryPolicy
from syftflwr_gdrive.auth import load_credentials
from syftflwr_gdrive.changes import ChangesFeed
from syftflwr_gdrive.options import Settings, migrate_legacy, where
from syftflwr_gdrive.storage import DriveStorage


def syftflwr05_folder_names(parts: list[str]) -> list[str]:
    """syft-flwr 0.5's Drive folders of a mailbox path: it creates its app folder
    ``flwr/{app}`` as ONE folder whose name holds the slash (``GDriveFileIO.
    _get_nested_folder(outbox, [app_name, "rpc", endpoint])``), not ``flwr`` then ``{app}``."""
    if len(parts) >= 3 and parts[1] == "flwr":
        return [parts[0], f"{parts[1]}/{parts[2]}", *parts[3:]]
    return parts


def whoami(api: DriveAPI) -> str:
    about = api.call("your account (about.get)", lambda s: s.about().get(fields="user"))
    return str(about["user"]["emailAddress"])


def open_storage(context: TransportContext, mailbox: MailboxSettings) -> DriveStorage:
    validate_email(context.require_email())
    settings = Settings.from_context(context)
    if not settings.token_configured:
        migrate_legacy(settings.token_path(context.email), context.env)
    api = DriveAPI(
        load_credentials(settings, context.email),
        root_url=settings.api_root_url,
        policy=RetryPolicy(retries=settings.retries),
    )
    me = whoami(api)
    return DriveStorage(
        api,
        me,
        root_name=settings.root_folder,
        transfer_chunk=settings.transfer_chunk_size,
        folder_names=syftflwr05_folder_names if context.profile == SYFTFLWR05_PROFILE else None,
        upload_sessions=None if context.state_dir is None else _state(context, "uploads"),
    )


def _state(context: TransportContext, what: str) -> Path:
    """This participant's folder ``what`` of the transport's state (per Drive account,
    mailbox root and API root: a switch of account never resumes the other's uploads)."""
    assert context.state_dir is not None
    place = where(Settings.from_context(context), context)
    digest = hashlib.sha256(repr(place).encode()).hexdigest()[:16]
    return context.state_dir / "gdrive" / f"{what}-{digest}"


def open_feed(
    storage: DriveStorage, context: TransportContext, mailbox: MailboxSettings
) -> ChangesFeed:
    token_path = None
    if context.state_dir is not None:
        token_path = _state(context, "changes").with_suffix(".token")
    return ChangesFeed(
        storage,
        interval=mailbox.poll_interval,
        max_interval=mailbox.max_poll_interval,
        token_path=token_path,
    )
