"""Plain data a transport exchanges with core: its metadata, options, detection verdict,
and the context it is built with. Kept free of I/O so hook modules stay cheap to import.

Size terms (never mixed up):

* ``Capabilities.max_object_size`` — what ONE stored object may hold on this transport
  (e.g. 10 MiB on a SyftBox client). Core splits larger messages into chunks beneath it,
  so it never limits what users can send. ``None``: no limit.
* ``TransportContext.max_message_size`` — policy, configurable: a message (after
  reassembly) larger than this is refused as hostile input, on send and on receipt.
* :data:`PROTOBUF_LIMIT` — protobuf cannot parse one Flower message above ~2 GiB; core
  refuses such a message before sending it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from syftflwr._deprecation import mark_private as _mark_private

PLUGIN_API_VERSION = 1
"""The plugin-API version this core speaks.

Rule: the number changes only when a hookspec or a role interface changes
incompatibly (a removed/renamed hook or argument, a changed return contract). Adding an
optional hook or an optional capability field does not change it. A plugin declares
the version it was built for in ``TransportInfo.api_version``; core accepts exactly the
versions in :data:`SUPPORTED_PLUGIN_API_VERSIONS` and names them when it refuses one.
"""
SUPPORTED_PLUGIN_API_VERSIONS = frozenset({1})

PROTOBUF_LIMIT = 2**31 - 1
"""protobuf's hard limit for parsing one message (bytes)."""

DEFAULT_MAX_MESSAGE_SIZE = 2**31 - 1 - 1024 * 1024
"""Default policy limit: just under what protobuf can parse."""

OptionType = Literal["str", "int", "float", "bool", "path", "url", "mapping"]


@dataclass(frozen=True)
class OptionSpec:
    """One configuration key: of a transport's ``[tool.syftflwr.transport.<name>]``
    table, or of ``[tool.syftflwr]`` itself (:data:`syftflwr.config.project.KEYS`).

    Core validates types, required keys and unknown keys from these specs and generates
    the configuration reference from them; ``env`` names an environment variable that
    overrides the file (CLI flags override both).
    """

    name: str
    type: OptionType
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    env: str | None = None
    participant: bool = False
    """True for per-participant settings (tokens, local roots) rather than project-wide."""
    minimum: float | None = None
    """Smallest value an ``int`` or ``float`` option accepts (None: no bound); core
    refuses anything below it, naming the valid range."""
    exclusive_minimum: bool = False
    """True if ``minimum`` itself is refused too (``> 0`` rather than ``>= 0``)."""
    flag: str | None = None
    """The command-line flag that overrides it (core's own keys)."""
    parse: Callable[[object], Any] | None = None
    """Parses a value in place of ``type``'s parser (an email, a duration), raising
    ValueError; ``choices`` and ``minimum`` still apply."""
    fix: str | None = None
    """What to write instead of a bad value; default: from ``help``, ``type``, range."""

    @property
    def range(self) -> str | None:
        """The valid range as users read it (``"> 0"``, ``">= 1"``), None if unbounded."""
        if self.minimum is None:
            return None
        return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}"


@dataclass(frozen=True)
class Capabilities:
    """What a transport can do; core adapts to it instead of guessing."""

    notifies_arrivals: bool
    """True if the transport wakes waiters when a message arrives (inotify, a callback)."""
    poll_interval: float | None = None
    """Seconds between polls when it cannot notify; core backs off from here when idle."""
    max_poll_interval: float | None = None
    """Upper bound of the idle back-off (defaults to 8x ``poll_interval``)."""
    native_encryption: bool = False
    """True if messages are end-to-end encrypted by the transport itself (SyftBox X3DH)."""
    in_process_only: bool = False
    """True if participants must share one Python process (the ``memory`` transport)."""
    max_object_size: int | None = None
    """Largest object the storage accepts; core chunks larger messages beneath it."""
    profiles: tuple[str, ...] = ("native",)
    """Wire profiles spoken: ``native`` and/or ``syft-flwr-0.5``."""
    shares_objects: bool = False
    """True if one stored object can be made readable by several recipients (a folder
    of the sender's they can read, a permission list): a broadcast then stores the model
    once (:class:`~syftflwr.roles.SharesBlobs`). False: one copy per recipient."""
    resumes_uploads: bool = False
    """True if an upload of a large object cut short by a crash continues from where it
    stopped after a restart (Google Drive's resumable sessions). False: the restarted
    process uploads it again from the start."""

    def __post_init__(self) -> None:
        if not self.notifies_arrivals and not self.poll_interval:
            raise ValueError("a transport that cannot notify arrivals must declare poll_interval")


@dataclass(frozen=True)
class TransportInfo:
    """Returned by the ``syftflwr_transport_info`` hook."""

    name: str
    description: str
    capabilities: Capabilities
    api_version: int = PLUGIN_API_VERSION
    options: tuple[OptionSpec, ...] = ()
    docs_url: str | None = None


@dataclass(frozen=True)
class Detection:
    """Returned by ``syftflwr_detect``: can this transport be used here, and how much is it
    preferred? Among usable transports the highest ``preference`` wins; ties are broken by
    name, so the choice is deterministic."""

    usable: bool
    reason: str
    preference: int = 0


@dataclass(frozen=True)
class TransportContext:
    """Everything a transport is built with; the same object reaches every role factory.

    ``options`` is the transport's own table after validation against its
    :class:`OptionSpec` list (defaults filled in). ``email`` is None only while detecting.
    """

    transport: str
    app_name: str
    email: str | None = None
    aggregator: str | None = None
    datasites: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    state_dir: Path | None = None
    """Private per-participant directory for journals, tokens, keys, cursors."""
    profile: str = "native"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    clock_skew: float = 30.0
    """Seconds of clock difference tolerated when checking expiry."""
    encryption: bool = False
    """Core envelope encryption requested (transports with native encryption ignore it)."""
    env: Mapping[str, str] = field(
        default_factory=lambda: dict(os.environ), repr=False, compare=False
    )
    """The environment this participant runs with: a transport reads environment
    variables (and ``HOME``/``XDG_*`` for default folders, see
    :func:`syftflwr.config.dirs.user_dir`) from here only, never from ``os.environ`` —
    ``simulate`` builds participants with their workspace's environment. Default: a copy
    of the process's environment (contexts built by hand)."""

    @property
    def participants(self) -> tuple[str, ...]:
        """The aggregator and every datasite, without duplicates, in config order."""
        seen: dict[str, None] = {}
        for email in (self.aggregator, *self.datasites):
            if email:
                seen.setdefault(email, None)
        return tuple(seen)

    def require_email(self) -> str:
        if not self.email:
            raise ValueError(
                "this transport role needs the participant's email (context.email is None)"
            )
        return self.email


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
