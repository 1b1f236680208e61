"""The plugin API: the one module a transport plugin imports.

Everything a transport author may use — the hook marker, the info/options/capability
types, the role protocols and bases, the errors, the storage protocol and the mailbox
building blocks — is here, and only here. Every other module of core is private: it may
change in any release. Imports of those private paths that plugins used before this
module existed still work for one minor release with a ``DeprecationWarning`` naming the
replacement here (see ``docs/reference/hooks.md``).

``import syftflwr.plugin`` is cheap (the plain data types and errors only): listing and
detection import a hook module for every user, every time. Everything else — pluggy's
marker, the roles, the mailbox (sqlite journals, watchdog) — loads on first use through
the module ``__getattr__`` (PEP 562); type checkers see it all through the
``TYPE_CHECKING`` block.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
from typing import TYPE_CHECKING, Any

from syftflwr.errors import (
    BlobGoneError,
    ConfigError,
    DecryptionError,
    EncryptionError,
    ForbiddenSenderError,
    IdentityMismatchError,
    MalformedMessageError,
    MessageExpiredError,
    MessageRejectedError,
    MessageTooLargeError,
    MissingKeyError,
    StorageError,
    SyftflwrError,
    TransportClosedError,
    TransportError,
    UnsafeNameError,
    UntrustedKeyError,
)
from syftflwr.info import (
    DEFAULT_MAX_MESSAGE_SIZE,
    PLUGIN_API_VERSION,
    PROTOBUF_LIMIT,
    SUPPORTED_PLUGIN_API_VERSIONS,
    Capabilities,
    Detection,
    OptionSpec,
    OptionType,
    TransportContext,
    TransportInfo,
)

if TYPE_CHECKING:
    from syftflwr.atomic import atomic_write
    from syftflwr.capabilities import CAPABILITIES, Capability
    from syftflwr.config.dirs import expand_user, user_dir
    from syftflwr.config.participant import config_dir
    from syftflwr.crypto.directory import StorageKeyDirectory
    from syftflwr.envelope import Buffer, Request, Response, decode, encode
    from syftflwr.hookspecs import hookimpl
    from syftflwr.kit import (
        ArrivalsFactory,
        MailboxClient,
        MailboxSettings,
        StorageFactory,
        StorageTransport,
        mailbox_options,
    )
    from syftflwr.mailbox.arrivals import (
        ArrivalCallback,
        ArrivalSource,
        CallbackSubscription,
        FolderSubscription,
        Poller,
        PollingSource,
        Subscription,
    )
    from syftflwr.mailbox.blobs import (
        BlobCache,
        blob_gone,
        blob_where,
        check_blob_readable,
        new_blob_ref,
    )
    from syftflwr.mailbox.chunking import Manifest, is_manifest, read_object
    from syftflwr.mailbox.claims import Claims
    from syftflwr.mailbox.events import MailboxEvents
    from syftflwr.mailbox.incomplete import IncompleteRequests
    from syftflwr.mailbox.journal import Journal
    from syftflwr.mailbox.layout import (
        BLOB_PREFIX,
        OUTBOX_PREFIX,
        ObjectKind,
        ObjectName,
        Route,
        blob_folder,
        blob_path,
        ensure_layout,
        parse_name,
    )
    from syftflwr.mailbox.localdir import LocalDirStorage
    from syftflwr.mailbox.profile import WireProfile, refuse_oversized
    from syftflwr.mailbox.rpc import MailboxRPC
    from syftflwr.mailbox.storage import (
        BaseStorage,
        PutsNew,
        SharesFolders,
        Storage,
        StorageWrapper,
        check_max_size,
        split_path,
        total_size,
        views,
    )
    from syftflwr.mailbox.watcher import (
        LIMIT_ERRNOS,
        BackendFactory,
        EventSink,
        LocalArrivals,
        WatchBackend,
        WatchHub,
        default_backend_factory,
        reset_hub,
        set_backend_factory,
    )
    from syftflwr.mailbox.watcher import hub as watch_hub
    from syftflwr.names import (
        is_valid_email,
        new_message_id,
        validate_email,
        validate_identifier,
    )
    from syftflwr.processes import pid_alive
    from syftflwr.profiles import PROFILE_NAMES, mailbox_profile
    from syftflwr.profiles.syftflwr05 import ENDPOINT as SYFTFLWR05_ENDPOINT
    from syftflwr.profiles.syftflwr05 import NAME as SYFTFLWR05_PROFILE
    from syftflwr.profiles.syftflwr05 import wire_app as syftflwr05_wire_app
    from syftflwr.roles import (
        BaseEvents,
        BaseRPC,
        BlobContent,
        BlobRef,
        ClientRole,
        DeclaresCapabilities,
        Drained,
        EncryptsMessages,
        EventsRole,
        ExposesClient,
        HandleLater,
        HasLocation,
        KeyDirectory,
        PublishesKeys,
        ReadsBlobs,
        ReattachesRequests,
        ReportsPickups,
        RequestHandle,
        RPCRole,
        SeesPickups,
        ServesPending,
        SharesBlobs,
        StorageIdentity,
        blob_parts,
        check_identity,
        effective_capabilities,
        offers,
        refusal_kind,
    )


def _lazy_names() -> dict[str, str]:
    """Name -> ``module:attribute`` of every import in the ``TYPE_CHECKING`` block above,
    read from this module's source: that block is the one list of the names loaded on
    first use, which type checkers and IDEs read too (as scientific-python's
    ``lazy_loader`` reads stubs)."""
    tree = ast.parse(pathlib.Path(__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If))
    return {
        alias.asname or alias.name: f"{node.module}:{alias.name}"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


_LAZY = _lazy_names()

__all__ = [
    "BLOB_PREFIX",
    "CAPABILITIES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "LIMIT_ERRNOS",
    "OUTBOX_PREFIX",
    "PLUGIN_API_VERSION",
    "PROFILE_NAMES",
    "PROTOBUF_LIMIT",
    "SUPPORTED_PLUGIN_API_VERSIONS",
    "SYFTFLWR05_ENDPOINT",
    "SYFTFLWR05_PROFILE",
    "ArrivalCallback",
    "ArrivalSource",
    "ArrivalsFactory",
    "BackendFactory",
    "BaseEvents",
    "BaseRPC",
    "BaseStorage",
    "BlobCache",
    "BlobContent",
    "BlobGoneError",
    "BlobRef",
    "Buffer",
    "CallbackSubscription",
    "Capabilities",
    "Capability",
    "Claims",
    "ClientRole",
    "ConfigError",
    "DeclaresCapabilities",
    "DecryptionError",
    "Detection",
    "Drained",
    "EncryptionError",
    "EncryptsMessages",
    "EventSink",
    "EventsRole",
    "ExposesClient",
    "FolderSubscription",
    "ForbiddenSenderError",
    "HandleLater",
    "HasLocation",
    "IdentityMismatchError",
    "IncompleteRequests",
    "Journal",
    "KeyDirectory",
    "LocalArrivals",
    "LocalDirStorage",
    "MailboxClient",
    "MailboxEvents",
    "MailboxRPC",
    "MailboxSettings",
    "MalformedMessageError",
    "Manifest",
    "MessageExpiredError",
    "MessageRejectedError",
    "MessageTooLargeError",
    "MissingKeyError",
    "ObjectKind",
    "ObjectName",
    "OptionSpec",
    "OptionType",
    "Poller",
    "PollingSource",
    "PublishesKeys",
    "PutsNew",
    "RPCRole",
    "ReadsBlobs",
    "ReattachesRequests",
    "ReportsPickups",
    "Request",
    "RequestHandle",
    "Response",
    "Route",
    "SeesPickups",
    "ServesPending",
    "SharesBlobs",
    "SharesFolders",
    "Storage",
    "StorageError",
    "StorageFactory",
    "StorageIdentity",
    "StorageKeyDirectory",
    "StorageTransport",
    "StorageWrapper",
    "Subscription",
    "SyftflwrError",
    "TransportClosedError",
    "TransportContext",
    "TransportError",
    "TransportInfo",
    "UnsafeNameError",
    "UntrustedKeyError",
    "WatchBackend",
    "WatchHub",
    "WireProfile",
    "atomic_write",
    "blob_folder",
    "blob_gone",
    "blob_parts",
    "blob_path",
    "blob_where",
    "check_blob_readable",
    "check_identity",
    "check_max_size",
    "config_dir",
    "decode",
    "default_backend_factory",
    "effective_capabilities",
    "encode",
    "ensure_layout",
    "expand_user",
    "hookimpl",
    "is_manifest",
    "is_valid_email",
    "mailbox_options",
    "mailbox_profile",
    "new_blob_ref",
    "new_message_id",
    "offers",
    "parse_name",
    "pid_alive",
    "read_object",
    "refusal_kind",
    "refuse_oversized",
    "reset_hub",
    "set_backend_factory",
    "split_path",
    "syftflwr05_wire_app",
    "total_size",
    "user_dir",
    "validate_email",
    "validate_identifier",
    "views",
    "watch_hub",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'syftflwr.plugin' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
