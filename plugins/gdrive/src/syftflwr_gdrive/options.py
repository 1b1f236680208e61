"""The transport's options and their defaults. Light on purpose (stdlib and core's plain
data): the hook module imports it to list and detect the transport."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.config.dirs import expand_user
from syftflwr.config.participant import config_dir
from syftflwr.info import Capabilities, OptionSpec, TransportContext
from syftflwr.profiles import PROFILE_NAMES

NAME = "gdrive"
TOKEN_ENV = "SYFTFLWR_GDRIVE_TOKEN"
HOME_ENV = "SYFTFLWR_HOME"
DEFAULT_ROOT_FOLDER = "SyftBox"
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_RETENTION_INTERVAL = 30.0
DEFAULT_TRANSFER_CHUNK = 8 * 1024 * 1024
SCOPES = ("https://www.googleapis.com/auth/drive",)
"""Full Drive scope: peers' outboxes are folders shared with you, which narrower scopes
(``drive.file``) cannot see."""

STATIC_CAPABILITIES = Capabilities(
    notifies_arrivals=False,
    poll_interval=DEFAULT_POLL_INTERVAL,
    max_poll_interval=8 * DEFAULT_POLL_INTERVAL,
    profiles=PROFILE_NAMES,
)

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
        "poll_interval",
        "float",
        "Seconds between reads of the Drive changes feed when busy (one API call per "
        "read, however many peers); backs off when idle.",
        default=DEFAULT_POLL_INTERVAL,
        minimum=0,
        exclusive_minimum=True,
    ),
    OptionSpec(
        "max_poll_interval",
        "float",
        "Upper bound of the idle back-off (default: 8 x poll_interval).",
        default=None,
        minimum=0,
        exclusive_minimum=True,
    ),
    OptionSpec(
        "max_object_size",
        "int",
        "Largest file written to Drive; bigger messages are chunked beneath it "
        "(default: no limit — large files use resumable uploads).",
        default=None,
        minimum=1,
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
        "retention_interval",
        "float",
        "Seconds between cleanups of this participant's delivered and expired messages "
        "(0 disables them).",
        default=DEFAULT_RETENTION_INTERVAL,
        minimum=0,
    ),
    OptionSpec(
        "workers",
        "int",
        "Threads handling requests of concurrent endpoints in a datasite runner.",
        default=4,
        participant=True,
        minimum=1,
    ),
    OptionSpec(
        "api_root_url",
        "str",
        "Root URL of the Drive API (default: Google's). For tests and proxies.",
        default=None,
        participant=True,
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


def _opt_float(value: object, default: float | None) -> float | None:
    return default if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """The transport's options for one participant, with defaults applied."""

    token_file: Path
    token_configured: bool
    root_folder: str = DEFAULT_ROOT_FOLDER
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float | None = None
    max_object_size: int | None = None
    transfer_chunk_size: int = DEFAULT_TRANSFER_CHUNK
    retries: int = 8
    retention_interval: float = DEFAULT_RETENTION_INTERVAL
    workers: int = 4
    api_root_url: str | None = None
    colab: bool = False
    """Running in Google Colab (its built-in login can stand in for a token file)."""

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], env: Mapping[str, str] = os.environ
    ) -> Settings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        token = options.get("token_file") or env.get(TOKEN_ENV)
        max_size = options.get("max_object_size")
        root = str(options.get("root_folder") or DEFAULT_ROOT_FOLDER)
        if "/" in root or root in (".", ".."):
            raise ValueError(f"gdrive option root_folder must be a plain folder name, not {root!r}")
        return cls(
            token_file=expand_user(str(token), env) if token else default_token_file(env),
            token_configured=bool(token),
            colab=in_colab(env),
            root_folder=root,
            poll_interval=_opt_float(options.get("poll_interval"), DEFAULT_POLL_INTERVAL)
            or DEFAULT_POLL_INTERVAL,
            max_poll_interval=_opt_float(options.get("max_poll_interval"), None),
            max_object_size=None if max_size is None else int(max_size),
            transfer_chunk_size=int(options.get("transfer_chunk_size") or DEFAULT_TRANSFER_CHUNK),
            retries=int(options.get("retries", 8) if options.get("retries") is not None else 8),
            retention_interval=_opt_float(
                options.get("retention_interval"), DEFAULT_RETENTION_INTERVAL
            )
            or 0.0,
            workers=int(options.get("workers") or 4),
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

    def capabilities(self) -> Capabilities:
        return Capabilities(
            notifies_arrivals=False,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval or 8 * self.poll_interval,
            max_object_size=self.max_object_size,
            profiles=PROFILE_NAMES,
        )
