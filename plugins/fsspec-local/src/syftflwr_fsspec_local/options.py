"""The transport's options, their defaults, and the effective capabilities of a root.

Light on purpose (stdlib, core's plain data and folder helpers): imported by the hook module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syftflwr.config.dirs import expand_user, user_dir
from syftflwr.info import Capabilities, OptionSpec, TransportContext
from syftflwr.profiles import PROFILE_NAMES

NAME = "fsspec-local"
HOME_ENV = "SYFTFLWR_HOME"
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_RETENTION_INTERVAL = 30.0
LOCAL_FALLBACK_POLL = 0.05
"""Start interval when a local root falls back to polling (inotify limits, ``watch = "poll"``)."""

STATIC_CAPABILITIES = Capabilities(
    notifies_arrivals=True,
    poll_interval=DEFAULT_POLL_INTERVAL,
    profiles=PROFILE_NAMES,
)
"""What ``syftflwr transports`` shows: the default (local) root notifies arrivals. Roles
get :func:`effective_capabilities` for their actual root."""

OPTIONS = (
    OptionSpec(
        "root",
        "str",
        "Mailbox root shared by the participants: a local directory (default: "
        "$SYFTFLWR_HOME/mailbox, else the per-user data directory's syftflwr/mailbox) "
        "or an fsspec URL such as gcs://bucket/prefix, s3://bucket/prefix or memory://name.",
        default=None,
        participant=True,
    ),
    OptionSpec(
        "storage_options",
        "mapping",
        "Keyword arguments for the fsspec filesystem of a URL root (credentials, "
        "endpoint_url, token...).",
        default=None,
        participant=True,
    ),
    OptionSpec(
        "poll_interval",
        "float",
        "Seconds between listings of a remote root's inbox folders when busy; backs off when idle.",
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
        "Largest object written to the root; bigger messages are chunked beneath it "
        "(default: no limit).",
        default=None,
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
        "watch",
        "str",
        "How a local root notices arrivals: 'auto' (inotify through watchdog, polling "
        "if the OS runs out of watches) or 'poll' (network filesystems such as NFS/SMB, "
        "where inotify does not see other machines' writes).",
        default="auto",
        choices=("auto", "poll"),
        participant=True,
    ),
    OptionSpec(
        "fsync",
        "bool",
        "Flush each local object to disk before publishing it (durability across power "
        "loss; atomicity never depends on it).",
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


def default_root(env: Mapping[str, str] = os.environ) -> Path:
    """``$SYFTFLWR_HOME/mailbox``, else the per-user data dir's ``syftflwr/mailbox`` —
    both from ``env`` (the context's environment), never the process's."""
    home = env.get(HOME_ENV)
    if home:
        return expand_user(home, env).absolute() / "mailbox"
    return user_dir("data", env) / "mailbox"


def is_url(root: str) -> bool:
    """True for fsspec URLs other than ``file://`` (those are local directories)."""
    scheme, sep, _ = root.partition("://")
    return bool(sep) and scheme.lower() not in ("file", "local")


def resolve_root(root: object, env: Mapping[str, str] = os.environ) -> str:
    """The configured root as an absolute local path or a URL."""
    if root is None or root == "":
        return str(default_root(env))
    text = str(root)
    if is_url(text):
        return text.rstrip("/")
    if "://" in text:
        text = text.partition("://")[2]
    return str(expand_user(text, env).absolute())


def _opt_float(value: object, default: float | None) -> float | None:
    return default if value is None else float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """The transport's options for one participant, with defaults applied."""

    root: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float | None = None
    max_object_size: int | None = None
    retention_interval: float = DEFAULT_RETENTION_INTERVAL
    watch: str = "auto"
    fsync: bool = True
    workers: int = 4

    @property
    def is_local(self) -> bool:
        return not is_url(self.root)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], env: Mapping[str, str] = os.environ
    ) -> Settings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        poll = _opt_float(options.get("poll_interval"), DEFAULT_POLL_INTERVAL)
        max_size = options.get("max_object_size")
        watch = str(options.get("watch") or "auto")
        if watch not in ("auto", "poll"):
            raise ValueError(f"fsspec-local option watch must be 'auto' or 'poll', not {watch!r}")
        return cls(
            root=resolve_root(options.get("root"), env),
            storage_options=dict(options.get("storage_options") or {}),
            poll_interval=poll or DEFAULT_POLL_INTERVAL,
            max_poll_interval=_opt_float(options.get("max_poll_interval"), None),
            max_object_size=None if max_size is None else int(max_size),
            retention_interval=_opt_float(
                options.get("retention_interval"), DEFAULT_RETENTION_INTERVAL
            )
            or 0.0,
            watch=watch,
            fsync=bool(options.get("fsync", True)),
            workers=int(options.get("workers") or 4),
        )

    @classmethod
    def from_context(cls, context: TransportContext) -> Settings:
        return cls.from_options(context.options, context.env)


def effective_capabilities(settings: Settings) -> Capabilities:
    """Local roots notify arrivals (inotify, or our own poller feeding the same wake-up);
    remote roots are polled at ``poll_interval``."""
    if settings.is_local:
        return Capabilities(
            notifies_arrivals=True,
            poll_interval=settings.poll_interval,
            max_object_size=settings.max_object_size,
            profiles=PROFILE_NAMES,
        )
    return Capabilities(
        notifies_arrivals=False,
        poll_interval=settings.poll_interval,
        max_poll_interval=settings.max_poll_interval,
        max_object_size=settings.max_object_size,
        in_process_only=settings.root.lower().startswith("memory://"),
        profiles=PROFILE_NAMES,
    )
