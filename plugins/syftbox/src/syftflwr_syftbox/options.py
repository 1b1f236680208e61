"""The transport's options, the SyftBox client config they point to, and the effective
capabilities.

Light on purpose (stdlib and core's plain data): imported by the hook module, so the
config file is read with :mod:`json`, not through syft-core's pydantic model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    PROFILE_NAMES,
    SYFTFLWR05_PROFILE,
    Capabilities,
    ConfigError,
    OptionSpec,
    TransportContext,
    expand_user,
    is_valid_email,
)

NAME = "syftbox"
CONFIG_PATH_ENV = "SYFTBOX_CLIENT_CONFIG_PATH"
"""syft-core's variable naming the client config file."""
LEGACY_CONFIG_NAME = "client_config.json"
"""syft-core still reads this name next to ``config.json`` (older SyftBox clients)."""
MiB = 1024 * 1024
DEFAULT_MAX_OBJECT_SIZE = 8 * MiB
"""The Python SyftBox 0.4.0 client refuses files above 10 MiB and its server refuses
upload REQUESTS above 10 MiB (the file plus its multipart framing, measured: a 10 MiB
file never syncs); core chunks beneath this, encryption overhead included."""
DEFAULT_POLL_INTERVAL = 0.05
DEFAULT_MAX_POLL_INTERVAL = 0.5
DEFAULT_RETENTION_INTERVAL = 30.0
DEFAULT_INCOMPLETE_GRACE = 10.0
"""Seconds an incomplete request may take to complete: a sync client writes files in
place and in no particular order (a chunked message's parts after its manifest)."""
DEFAULT_KEY_WAIT = 60.0
"""Seconds a send waits for a peer's DID to appear (peers publish it when they connect)."""
APP_DATA_FOLDER = "syftflwr"
"""``datasites/{email}/app_data/{APP_DATA_FOLDER}/`` holds a participant's outboxes."""

WATCH_MODES = ("auto", "poll")

STATIC_CAPABILITIES = Capabilities(
    notifies_arrivals=True,
    # the default (native) profile is encrypted by core, through the client's key
    # directory; the syft-flwr-0.5 profile's client declares its syft-crypto encryption
    native_encryption=False,
    poll_interval=DEFAULT_POLL_INTERVAL,
    max_poll_interval=DEFAULT_MAX_POLL_INTERVAL,
    max_object_size=DEFAULT_MAX_OBJECT_SIZE,
    profiles=PROFILE_NAMES,
    shares_objects=True,  # native profile: a blob folder's permission files name its readers
)

OPTIONS = (
    OptionSpec(
        "encrypt",
        "bool",
        "The syft-flwr-0.5 profile only: encrypt every message with syft-crypto as "
        "syft-flwr 0.5 does (unset: true; fail closed, a peer without a published DID is "
        "refused, never sent plaintext). The native profile is encrypted by syftflwr: "
        "its switch is encryption in [tool.syftflwr], and setting this option there is "
        "an error.",
        default=None,
    ),
    OptionSpec(
        "config_path",
        "path",
        "The SyftBox client config (JSON) whose email is this participant's identity "
        f"(default: ${CONFIG_PATH_ENV}, else ~/.syftbox/config.json).",
        default=None,
        participant=True,
    ),
    OptionSpec(
        "data_dir",
        "path",
        "The SyftBox data directory (default: the config's data_dir). Participants "
        "simulated on one machine may share one.",
        default=None,
        participant=True,
    ),
    OptionSpec(
        "watch",
        "str",
        "How arrivals are learnt: 'auto' watches the folders a participant waits on "
        "with inotify (watchdog; polling where the OS refuses), 'poll' lists them.",
        default="auto",
        choices=WATCH_MODES,
        participant=True,
    ),
    OptionSpec(
        "poll_interval",
        "float",
        "Seconds between listings of the folders a participant polls (watch = 'poll', "
        "or where inotify is unavailable) when busy; backs off when idle.",
        default=DEFAULT_POLL_INTERVAL,
        minimum=0,
        exclusive_minimum=True,
    ),
    OptionSpec(
        "max_poll_interval",
        "float",
        "Upper bound of the idle back-off.",
        default=DEFAULT_MAX_POLL_INTERVAL,
        minimum=0,
        exclusive_minimum=True,
    ),
    OptionSpec(
        "max_object_size",
        "int",
        "Largest file written into a datasite; bigger messages are chunked beneath it "
        "(SyftBox 0.4's client refuses files above 10 MiB, its server uploads above 10 MiB "
        "including framing).",
        default=DEFAULT_MAX_OBJECT_SIZE,
        minimum=1,
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
        "incomplete_grace",
        "float",
        "Seconds a runner waits for an incomplete request (a file the sync client is "
        "still writing, a chunked message whose parts have not all synced) before "
        "refusing it.",
        default=DEFAULT_INCOMPLETE_GRACE,
        minimum=0,
    ),
    OptionSpec(
        "key_wait",
        "float",
        "The syft-flwr-0.5 profile only: seconds a send waits for the recipient's DID "
        f"(published when it connects, synced by SyftBox) before failing closed (unset: "
        f"{DEFAULT_KEY_WAIT:g}); 0 fails at once. The native profile waits for keys as "
        "core does; setting this option there is an error.",
        default=None,
        minimum=0,
    ),
    OptionSpec(
        "fsync",
        "bool",
        "Flush each file to disk before publishing it (durability across power loss; "
        "atomicity never depends on it).",
        default=True,
        participant=True,
    ),
    OptionSpec(
        "workers",
        "int",
        "Threads handling requests of concurrent endpoints in a datasite runner.",
        default=4,
        participant=True,
        minimum=1,
    ),
)


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$SYFTBOX_CLIENT_CONFIG_PATH``, else ``~/.syftbox/config.json`` (syft-core's order)."""
    value = env.get(CONFIG_PATH_ENV)
    if value:
        return expand_user(value, env)
    return expand_user("~/.syftbox/config.json", env)


def _existing_config(path: Path) -> Path | None:
    if path.is_file():
        return path
    legacy = path.with_name(LEGACY_CONFIG_NAME)
    return legacy if legacy.is_file() else None


@dataclass(frozen=True)
class SyftBoxConfig:
    """What syftflwr needs from a SyftBox client config."""

    path: Path
    email: str
    data_dir: Path
    server_url: str

    @classmethod
    def load(cls, path: Path) -> SyftBoxConfig:
        """Read ``path`` (or the legacy ``client_config.json`` beside it)."""
        found = _existing_config(path)
        if found is None:
            raise ConfigError(
                f"no SyftBox client config at {path}",
                fix="run the SyftBox client once (it writes the config), set "
                f"{CONFIG_PATH_ENV}, or set the syftbox option config_path",
            )
        try:
            data = json.loads(found.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the SyftBox client config {found}: {exc}",
                fix="repair or re-create it with the SyftBox client",
            ) from exc
        email = data.get("email")
        if not isinstance(email, str) or not is_valid_email(email):
            raise ConfigError(
                f"the SyftBox client config {found} has no valid email (got {email!r})",
                fix="set its email to the participant's address",
            )
        data_dir = data.get("data_dir") or data.get("sync_folder")
        return cls(
            path=found,
            email=email,
            data_dir=(
                Path(str(data_dir)).expanduser() if data_dir else Path.home() / "SyftBox"
            ).absolute(),
            server_url=str(data.get("server_url") or "https://syftbox.net"),
        )


def _opt_float(value: object, default: float) -> float:
    return default if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """The transport's options for one participant, with defaults applied."""

    config_path: Path
    data_dir: Path | None = None
    encrypt: bool = False
    """syft-crypto encryption (the syft-flwr-0.5 profile: the option, true when unset)."""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    max_object_size: int | None = DEFAULT_MAX_OBJECT_SIZE
    retention_interval: float = DEFAULT_RETENTION_INTERVAL
    fsync: bool = True
    workers: int = 4
    watch: str = "auto"
    key_wait: float = DEFAULT_KEY_WAIT
    incomplete_grace: float = DEFAULT_INCOMPLETE_GRACE
    shares_objects: bool = True
    """The native profile's mailbox stores a broadcast's model once (the syft-flwr-0.5
    profile's syft-rpc files are one per recipient)."""

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        env: Mapping[str, str] = os.environ,
        profile: str = "native",
    ) -> Settings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        config_path = options.get("config_path")
        data_dir = options.get("data_dir")
        max_size = options.get("max_object_size", DEFAULT_MAX_OBJECT_SIZE)
        watch = str(options.get("watch") or "auto")
        if watch not in WATCH_MODES:
            raise ConfigError(
                f"the syftbox option watch is {watch!r}",
                fix=f"set it to one of {', '.join(WATCH_MODES)}",
            )
        return cls(
            config_path=(
                expand_user(str(config_path), env) if config_path else default_config_path(env)
            ),
            data_dir=Path(str(data_dir)).expanduser().absolute() if data_dir else None,
            encrypt=profile == SYFTFLWR05_PROFILE and options.get("encrypt") is not False,
            poll_interval=_opt_float(options.get("poll_interval"), DEFAULT_POLL_INTERVAL)
            or DEFAULT_POLL_INTERVAL,
            max_poll_interval=_opt_float(
                options.get("max_poll_interval"), DEFAULT_MAX_POLL_INTERVAL
            ),
            max_object_size=None if max_size is None else int(max_size),
            retention_interval=_opt_float(
                options.get("retention_interval"), DEFAULT_RETENTION_INTERVAL
            ),
            fsync=bool(options.get("fsync", True)),
            workers=int(options.get("workers") or 4),
            watch=watch,
            key_wait=_opt_float(options.get("key_wait"), DEFAULT_KEY_WAIT),
            incomplete_grace=_opt_float(options.get("incomplete_grace"), DEFAULT_INCOMPLETE_GRACE),
            shares_objects=profile != SYFTFLWR05_PROFILE,
        )

    @classmethod
    def from_context(cls, context: TransportContext) -> Settings:
        return cls.from_options(context.options, context.env, context.profile)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            notifies_arrivals=self.watch != "poll",
            poll_interval=self.poll_interval,
            max_poll_interval=max(self.max_poll_interval, self.poll_interval),
            native_encryption=self.encrypt,
            max_object_size=self.max_object_size,
            profiles=PROFILE_NAMES,
            shares_objects=self.shares_objects,
        )


SYFTFLWR05_ONLY = {
    "encrypt": "encrypted by syftflwr, switched by encryption in [tool.syftflwr] (on by "
    "default); write encryption = false there to run unencrypted",
    "key_wait": "sealed by syftflwr, whose sends wait for a peer's key as long as a round "
    "allows (at most 60 s)",
}
"""The options of syft-crypto's encryption, and what the native profile does instead."""


def check_profile_options(context: TransportContext) -> None:
    """Options of the syft-flwr-0.5 profile's syft-crypto encryption would be ignored in
    the native profile (core seals it): set there, they are refused. In the syft-flwr-0.5
    profile, which core cannot seal, ``encrypt = false`` while the project's encryption
    is on would leave nothing to encrypt: refused, naming both switches."""
    if context.profile == SYFTFLWR05_PROFILE:
        if context.encryption and context.options.get("encrypt") is False:
            raise ConfigError(
                f"the syftbox option encrypt is false, and encryption is on: in profile = "
                f'"{SYFTFLWR05_PROFILE}" only syft-crypto (this option) can encrypt, so '
                "messages would go unencrypted",
                key=f"tool.syftflwr.transport.{NAME}.encrypt",
                fix=f"remove encrypt = false from [tool.syftflwr.transport.{NAME}] "
                "(syft-crypto encrypts, as syft-flwr 0.5 does), or write encryption = false "
                "in [tool.syftflwr] to accept unencrypted messages",
            )
        return
    for name, instead in SYFTFLWR05_ONLY.items():
        value = context.options.get(name)
        if value is None:
            continue
        raise ConfigError(
            f"the syftbox option {name} is set ({str(value).lower()}), but it applies only "
            f'to profile = "{SYFTFLWR05_PROFILE}": the {context.profile} profile is {instead}',
            key=f"tool.syftflwr.transport.{NAME}.{name}",
            fix=f"remove {name} from [tool.syftflwr.transport.{NAME}] (and "
            f"SYFTFLWR_{NAME.upper()}_{name.upper()} from the environment)",
        )
