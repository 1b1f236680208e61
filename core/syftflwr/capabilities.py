"""Every optional capability of the plugin API in one table: the protocol a role (or a
storage) may implement, what core does without it, and the default setting that needs
it. ``syftflwr transports --check`` reports each from this table, docs/reference/hooks.md
lists the same. Core asks with :func:`syftflwr.roles.offers` (:func:`declares` for a
class)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Literal

from syftflwr.roles import (
    DeclaresCapabilities,
    EncryptsMessages,
    ExposesClient,
    HasLocation,
    PublishesKeys,
    ReadsBlobs,
    ReattachesRequests,
    SeesPickups,
    ServesPending,
    SharesBlobs,
    StorageIdentity,
    protocol_members,
)

Role = Literal["client", "rpc", "events", "storage"]


@dataclass(frozen=True)
class Capability:
    """One optional capability, as ``transports --check`` and the docs present it."""

    protocol: type
    label: str
    """The line ``transports --check`` reports it on."""
    role: Role
    member: str
    absent: str
    """What core does without it (what it costs)."""
    needed_by: str | None = None
    """The default setting that cannot work without it (None: nothing breaks)."""


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        PublishesKeys, "public keys", "client", "key_directory()",
        "core encryption cannot publish public keys: runs stop with exit 2",
        needed_by="encryption = true (the default)",
    ),
    Capability(
        EncryptsMessages, "encryption", "client", "encrypts_messages()",
        "the declared Capabilities.native_encryption decides whether core encrypts",
    ),
    Capability(
        DeclaresCapabilities, "caps in use", "client", "capabilities",
        "TransportInfo.capabilities (the defaults) apply whatever the options say",
    ),
    Capability(
        ExposesClient, "identity", "rpc", "client",
        "the identity is checked only when connecting, not again by the Grid/runner",
    ),
    Capability(
        ReattachesRequests, "resume", "rpc", "attach()",
        "after --resume, answers to earlier requests are noticed a few seconds late",
    ),
    Capability(
        SeesPickups, "pick-ups", "rpc", "on_picked_up()",
        "no pick-ups in the live view, no hint for a datasite that shows no sign of life",
    ),
    Capability(
        SharesBlobs, "shared blobs", "rpc", "put_blob(), drop_blob()",
        "a broadcast stores one copy of the model per recipient (a transport declaring "
        "Capabilities.shares_objects must offer it)",
    ),
    Capability(
        ReadsBlobs, "blob reads", "events", "get_blob()",
        "a request naming a blob is answered with an error saying so (a transport "
        "declaring Capabilities.shares_objects must offer it)",
    ),
    Capability(
        ServesPending, "one pass", "events", "serve_pending()",
        "`syftflwr jobs` cannot collect the jobs and decisions that arrived: it stops "
        "with exit 2 naming the transport",
    ),
    Capability(
        HasLocation, "storage url", "storage", "url",
        "logs and errors name the storage by its repr",
    ),
    Capability(
        StorageIdentity, "storage email", "storage", "email",
        "a kit transport's client reports the configured email (nothing to check it "
        "against)",
    ),
)  # fmt: skip
"""Every optional capability of the plugin API (docs/reference/hooks.md lists them)."""


def declares(cls: type, protocol: type) -> bool:
    """Whether instances of ``cls`` offer ``protocol``, as ``transports --check`` reads
    a class from a role factory's return annotation: a method, a property, an attribute
    annotated on the class, or one its methods assign to ``self``."""
    annotated = {n for k in cls.__mro__ for n in getattr(k, "__annotations__", {})}
    missing = {m for m in protocol_members(protocol) if not hasattr(cls, m)} - annotated
    return not missing or missing <= _assigned_on_self(cls)


def _assigned_on_self(cls: type) -> set[str]:
    """Attributes a class's methods assign (``self.capabilities = ...``): instance
    attributes a class does not annotate, found in its source (empty if unavailable)."""
    found: set[str] = set()
    for klass in cls.__mro__[:-1]:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            targets = (
                node.targets if isinstance(node, ast.Assign)
                else [node.target] if isinstance(node, ast.AnnAssign)
                else []
            )  # fmt: skip
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    found.add(target.attr)
    return found
