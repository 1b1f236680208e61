"""Wire profiles: what is written on the wire, chosen per project (``[tool.syftflwr]
profile``, reaching transports as ``TransportContext.profile``).

* ``native`` (:data:`~syftflwr.mailbox.profile.NATIVE`) — syftflwr's envelope, chunking,
  core encryption; the default.
* ``syft-flwr-0.5`` — OpenMined syft-flwr 0.5's bytes, for interoperating with its
  participants: :data:`~syftflwr.profiles.syftflwr05.P2P` (its Google Drive files; used
  by file mailboxes; its SyftBox files are the syftbox plugin's). Unchunked, no core
  encryption.

A mailbox transport passes ``profile=mailbox_profile(context.profile)`` to
``MailboxRPC``/``MailboxEvents``. See docs/profiles.md.
"""

from __future__ import annotations

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.errors import ConfigError
from syftflwr.mailbox.profile import NATIVE, NativeProfile, WireProfile
from syftflwr.profiles.syftflwr05 import P2P, P2PProfile

PROFILE_NAMES = (NATIVE.name, P2P.name)


def mailbox_profile(name: str) -> WireProfile:
    """The profile a file mailbox (syft-flwr's P2P layout) speaks for ``name``."""
    if name == NATIVE.name:
        return NATIVE
    if name == P2P.name:
        return P2P
    raise ConfigError(
        f"unknown wire profile {name!r}",
        key="tool.syftflwr.profile",
        fix=f"use one of: {', '.join(PROFILE_NAMES)}",
    )


__all__ = [
    "NATIVE",
    "P2P",
    "PROFILE_NAMES",
    "NativeProfile",
    "P2PProfile",
    "WireProfile",
    "mailbox_profile",
]

_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
