"""The transport's own options (the mailbox ones are core's ``mailbox_options``) and their
defaults. Light on purpose (stdlib and the plugin API's plain data): the hook module
imports it to list and detect the transport."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    MailboxSettings,
    OptionSpec,
    TransportContext,
    config_dir,
    expand_user,
    mailbox_options,
)

NAME = "gdrive"
TOKEN_ENV = "SYFTFLWR_GDRIVE_TOKEN"
HOME_ENV = "SYFTFLWR_HOME"
DEFAULT_ROOT_FOLDER = "SyftBox"
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_TRANSFER_CHUNK = 8 * 1024 * 1024
SCOPES = ("https://www.googleapis.com/auth/drive",)
"""Full Drive scope: peers' outboxes are folders shared with you, which narrower scopes
(``drive.file``) cannot see."""

OPTIONS = (
    OptionSpec(
        "token_file",
        "path",
        "Authorized-user token (JSON) of this participant's Google account, as written by "
        "`syftflwr gdrive login` (default: $SYFTFLWR_HOME/gdrive/token.json, else "
        "~/.config/syftflwr/gdrive/token.json, where a token from ~/.syftflwr/gdrive is moved "
        "on first use). `{email}` in the path is replaced by the participant's "
        "email (several accounts on one machine, e.g. `syftflwr simulate`). Not needed in "
        "Google Colab.",
        default=None,
        env=TOKEN_ENV,
        participant=True,
    ),
    OptionSpec(
        "root_folder",
        "str",
        "Name of the folder in each participant's My Drive that holds its outboxes.",
        default=DEFAULT_ROOT_FOLDER,
    ),
    OptionSpec(
        "transfer_chunk_size",
        "int",
        "Bytes per resumable-upload request and per ranged download (a multiple of "
        "256 KiB); smaller objects take a single request.",
        default=DEFAULT_TRANSFER_CHUNK,
        minimum=1,
    ),
    OptionSpec(
        "retries",
        "int",
        "Retries (exponential backoff with jitter) on 429, 403 rate limits and 5xx.",
        default=8,
        minimum=0,
    ),
    OptionSpec(
        "api_root_url",
        "str",
        "Root URL of the Drive API (default: Google's). For tests and proxies.",
        default=None,
        participant=True,
    ),
    *mailbox_options(
        poll_interval=DEFAULT_POLL_INTERVAL,
        help={
            "poll_interval": "Seconds between reads of the Drive changes feed when busy (one "
            "API call per read, however many peers); backs off when idle.",
            "max_object_size": "Largest file written to Drive; bigger messages are chunked "
            "beneath it (default: no limit — large files use resumable uploads).",
        },
    ),
)


LEGACY_DIR = "~/.syftflwr/gdrive"
"""Where tokens lived before this plugin used core's per-user folders."""


def gdrive_dir(env: Mapping[str, str] = os.environ) -> Path:
    """This transport's files (token, OAuth client): in the folder core keeps the
    participant's settings in ($SYFTFLWR_HOME, else ~/.config/syftflwr)."""
    return config_dir(env) / "gdrive"


def default_token_file(env: Mapping[str, str] = os.environ) -> Path:
    return gdrive_dir(env) / "token.json"


def legacy_file(path: Path, env: Mapping[str, str] = os.environ) -> Path | None:
    """The old-location twin of a default file that does not exist yet, if it exists
    (only without SYFTFLWR_HOME: that layout did not change)."""
    if env.get(HOME_ENV) or path.exists() or path.parent != gdrive_dir(env):
        return None
    old = expand_user(LEGACY_DIR, env) / path.name
    return old if old.is_file() else None


def migrate_legacy(path: Path, env: Mapping[str, str] = os.environ) -> None:
    """Move a default file from the old location (~/.syftflwr/gdrive) to ``path``, once,
    and say so; nothing happens when ``path`` exists or nothing is there."""
    old = legacy_file(path, env)
    if old is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.move(old, path)
    logging.getLogger("syftflwr.gdrive").warning(
        "moved %s to %s: syftflwr keeps Google Drive files in its per-user config folder now",
        old,
        path,
    )


def in_colab(env: Mapping[str, str] = os.environ) -> bool:
    """Google Colab, without importing anything (detection must stay cheap)."""
    import sys

    return "google.colab" in sys.modules or bool(env.get("COLAB_RELEASE_TAG"))


@dataclass(frozen=True)
class Settings:
    """The transport's options for one participant, with defaults applied."""

    token_file: Path
    token_configured: bool
    root_folder: str = DEFAULT_ROOT_FOLDER
    transfer_chunk_size: int = DEFAULT_TRANSFER_CHUNK
    retries: int = 8
    api_root_url: str | None = None
    colab: bool = False
    """Running in Google Colab (its built-in login can stand in for a token file)."""

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], env: Mapping[str, str] = os.environ
    ) -> Settings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        token = options.get("token_file") or env.get(TOKEN_ENV)
        root = str(options.get("root_folder") or DEFAULT_ROOT_FOLDER)
        if "/" in root or root in (".", ".."):
            raise ValueError(f"gdrive option root_folder must be a plain folder name, not {root!r}")
        return cls(
            token_file=expand_user(str(token), env) if token else default_token_file(env),
            token_configured=bool(token),
            colab=in_colab(env),
            root_folder=root,
            transfer_chunk_size=int(options.get("transfer_chunk_size") or DEFAULT_TRANSFER_CHUNK),
            retries=int(options.get("retries", 8) if options.get("retries") is not None else 8),
            api_root_url=str(options["api_root_url"]) if options.get("api_root_url") else None,
        )

    @classmethod
    def from_context(cls, context: TransportContext) -> Settings:
        return cls.from_options(context.options, context.env)

    @property
    def per_participant(self) -> bool:
        return "{email}" in str(self.token_file)

    def token_path(self, email: str | None) -> Path:
        """The token file of ``email`` (the ``{email}`` placeholder filled in)."""
        text = str(self.token_file)
        if "{email}" in text and email:
            return Path(text.replace("{email}", email))
        return self.token_file


def where(settings: Settings, context: TransportContext) -> tuple[str, str | None, str]:
    """Which account's Drive and which mailbox folder."""
    return (str(settings.token_path(context.email)), settings.api_root_url, settings.root_folder)


def share_key(context: TransportContext, mailbox: MailboxSettings) -> Hashable:
    """One opened Drive (API, storage, changes feed) per participant and process."""
    settings = Settings.from_context(context)
    return (*where(settings, context), mailbox.poll_interval, mailbox.max_poll_interval,
            settings.transfer_chunk_size, settings.retries, str(context.state_dir),
            context.profile)  # fmt: skip
