"""The transport's own options (the mailbox ones are core's ``mailbox_options``), where a
root is, and the effective capabilities of a root.

Light on purpose (the plugin API's plain data and folder helpers): imported by the hook
module.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    PROFILE_NAMES,
    Capabilities,
    MailboxSettings,
    OptionSpec,
    TransportContext,
    expand_user,
    mailbox_options,
    user_dir,
)

NAME = "fsspec-local"
HOME_ENV = "SYFTFLWR_HOME"
DEFAULT_POLL_INTERVAL = 0.5
LOCAL_FALLBACK_POLL = 0.05
"""Start interval when a local root falls back to polling (inotify limits, ``watch = "poll"``)."""

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
        "watch",
        "str",
        "How a local root notices arrivals: 'auto' (inotify through watchdog, polling "
        "if the OS runs out of watches) or 'poll' (network filesystems such as NFS/SMB, "
        "where inotify does not see other machines' writes).",
        default="auto",
        choices=("auto", "poll"),
        participant=True,
    ),
    *mailbox_options(
        poll_interval=DEFAULT_POLL_INTERVAL,
        fsync=True,
        help={
            "poll_interval": "Seconds between listings of a remote root's inbox folders "
            "when busy; backs off when idle.",
            "max_object_size": "Largest object written to the root; bigger messages are "
            "chunked beneath it (default: no limit).",
        },
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


def creatable(path: Path) -> tuple[bool, str]:
    """Whether ``path`` exists as a writable folder or could be created (no side effects)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False, f"no existing parent of {path}"
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{probe} is not writable"
    return True, str(path)


@dataclass(frozen=True)
class Settings:
    """Where a participant's root is and how it is watched (the rest: MailboxSettings)."""

    root: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    watch: str = "auto"

    @property
    def is_local(self) -> bool:
        return not is_url(self.root)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], env: Mapping[str, str] = os.environ
    ) -> Settings:
        """Tolerates missing keys (contexts built by hand in tests and notebooks)."""
        watch = str(options.get("watch") or "auto")
        if watch not in ("auto", "poll"):
            raise ValueError(f"fsspec-local option watch must be 'auto' or 'poll', not {watch!r}")
        return cls(
            root=resolve_root(options.get("root"), env),
            storage_options=dict(options.get("storage_options") or {}),
            watch=watch,
        )

    @classmethod
    def from_context(cls, context: TransportContext) -> Settings:
        return cls.from_options(context.options, context.env)


def share_key(context: TransportContext, mailbox: MailboxSettings) -> Hashable:
    """Participants of a process using the same root share its storage and watcher."""
    settings = Settings.from_context(context)
    options = tuple(sorted((k, repr(v)) for k, v in settings.storage_options.items()))
    return (settings.root, options, settings.watch, mailbox.fsync, mailbox.poll_interval,
            mailbox.max_poll_interval)  # fmt: skip


def capabilities(context: TransportContext, mailbox: MailboxSettings) -> Capabilities:
    """Local roots notify arrivals (inotify, or our own poller feeding the same wake-up);
    remote roots are polled at ``poll_interval``. Every root shares objects: it is one
    directory (or bucket) every participant reads, so a blob folder of the sender's is
    readable by every recipient as it is (and by every other participant too)."""
    root = Settings.from_context(context).root
    if not is_url(root):
        return Capabilities(
            notifies_arrivals=True,
            poll_interval=mailbox.poll_interval,
            max_object_size=mailbox.max_object_size,
            profiles=PROFILE_NAMES,
            shares_objects=True,
        )
    return Capabilities(
        notifies_arrivals=False,
        poll_interval=mailbox.poll_interval,
        max_poll_interval=mailbox.max_poll_interval,
        max_object_size=mailbox.max_object_size,
        in_process_only=root.lower().startswith("memory://"),
        profiles=PROFILE_NAMES,
        shares_objects=True,
    )
