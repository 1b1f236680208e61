"""Where every mailbox object lives — the one layout all file-based transports share.

syft-flwr's layout, so profiles can interoperate::

    {root}/syft_outbox_inbox_{sender}_to_{recipient}/{app}/rpc/{endpoint}/{id}.request
    {root}/syft_outbox_inbox_{responder}_to_{requester}/{app}/rpc/{endpoint}/{id}.response
    {root}/syft_outbox_inbox_{responder}_to_{requester}/{app}/rpc/{endpoint}/{id}.claim
    {root}/syftflwr_blobs_{sender}/{app}/{blob_id}/{blob_id}.blob
                                      a blob stored once for several recipients (shared
                                      with exactly them: one folder per blob)
    {root}/.syftflwr/layout.json      format version of the layout
    {root}/.syftflwr/tmp/             temp files of atomic local writes (never watched)

Rule: a participant only ever *writes* into its own outboxes (folders whose sender is
itself) and its own blob folders. Its inboxes are its peers' outboxes addressed to it.
Blob folders start with :data:`BLOB_PREFIX`, never :data:`OUTBOX_PREFIX`, so nothing that
looks for outboxes (watchers, :func:`discover_senders`, sweeps) ever sees them.

Every path is built here from names validated by :mod:`syftflwr.names`, never from
strings found in storage; folder names are never parsed back into emails except by
:func:`discover_senders`, which validates what it finds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.errors import StorageError, UnsafeNameError
from syftflwr.names import (
    is_valid_email,
    validate_app_name,
    validate_email,
    validate_identifier,
    validate_message_id,
)

if TYPE_CHECKING:
    from syftflwr.mailbox.storage import Storage

LAYOUT_NAME = "syft_outbox_inbox"
LAYOUT_VERSION = 1
"""Version of the folder layout and object naming; bumped on incompatible changes."""
SUPPORTED_LAYOUT_VERSIONS = frozenset({1})

OUTBOX_PREFIX = "syft_outbox_inbox_"
BLOB_PREFIX = "syftflwr_blobs_"
TMP_FOLDER = ".syftflwr/tmp"
LAYOUT_FILE = ".syftflwr/layout.json"
PART_MARK = ".part-"
MAX_PARTS = 99_999
"""Part numbers are 5 digits wide, so names sort and parse unambiguously."""


class ObjectKind(StrEnum):
    """What a mailbox object is; the value is its file-name suffix without the dot."""

    REQUEST = "request"
    RESPONSE = "response"
    CLAIM = "claim"
    BLOB = "blob"
    """A shared blob (:func:`blob_path`); never in an outbox."""


@dataclass(frozen=True, slots=True)
class ObjectName:
    """A parsed mailbox file name: ``{id}.{kind}`` or ``{id}.{kind}.part-00001-of-00042``."""

    id: str
    kind: ObjectKind
    part: int | None = None
    """1-based part number, None for the object itself (a whole message or a manifest)."""
    parts: int | None = None

    @property
    def is_part(self) -> bool:
        return self.part is not None

    def __str__(self) -> str:
        base = f"{self.id}.{self.kind.value}"
        if self.part is None or self.parts is None:
            return base
        return part_name(base, self.part, self.parts)


def part_name(base: str, index: int, count: int) -> str:
    """Name of part ``index`` (1-based) of ``count`` of the object named ``base``."""
    if not 1 <= index <= count <= MAX_PARTS:
        raise ValueError(f"part {index} of {count} is out of range (1..{MAX_PARTS})")
    return f"{base}{PART_MARK}{index:05d}-of-{count:05d}"


def parse_name(name: str) -> ObjectName | None:
    """Parse a file name found in a mailbox folder; None for anything that is not a
    well-formed mailbox object (temp files, foreign files, path-shaped or bad ids)."""
    base, mark, part = name.partition(PART_MARK)
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        return None
    try:
        kind = ObjectKind(suffix)
        validate_message_id(stem)
    except (ValueError, UnsafeNameError):
        return None
    if not mark:
        return ObjectName(stem, kind)
    index, of, count = part.partition("-of-")
    if not (of and len(index) == 5 and len(count) == 5 and index.isdigit() and count.isdigit()):
        return None
    i, n = int(index), int(count)
    if not 1 <= i <= n:
        return None
    return ObjectName(stem, kind, i, n)


def outbox(sender: str, recipient: str) -> str:
    """The top-level folder ``sender`` writes into for ``recipient``."""
    return f"{OUTBOX_PREFIX}{validate_email(sender)}_to_{validate_email(recipient)}"


def blob_folder(sender: str, app: str, blob_id: str) -> str:
    """The folder of one blob of ``sender``'s (``app``: the app's folder, as in
    :class:`Route`): its own folder, so a storage can share it with exactly the blob's
    recipients (:class:`~syftflwr.mailbox.storage.SharesFolders`)."""
    return (
        f"{BLOB_PREFIX}{validate_email(sender)}/{validate_app_folder(app)}/"
        f"{validate_message_id(blob_id)}"
    )


def blob_path(sender: str, app: str, blob_id: str) -> str:
    """Where a blob's bytes are (a chunk manifest when it is above ``max_object_size``:
    parts next to it, as for messages)."""
    return f"{blob_folder(sender, app, blob_id)}/{blob_id}.{ObjectKind.BLOB.value}"


def validate_app_folder(value: str) -> str:
    """An app's folder: its name, or (a wire profile's) ``prefix/name`` — one or two
    validated identifiers, so it can never leave the outbox."""
    parts = value.split("/") if isinstance(value, str) else [value]
    if len(parts) > 2:
        raise UnsafeNameError(f"invalid app folder {value!r}: at most one '/'")
    for part in parts:
        validate_app_name(part)
    return value


@dataclass(frozen=True, slots=True)
class Route:
    """One direction of one app endpoint: ``sender`` writes, ``recipient`` reads.

    A request travels along a route; its response and the responder's claim travel
    along :meth:`reverse`. All fields are validated on construction.
    """

    sender: str
    recipient: str
    app: str
    """The app's folder (:func:`validate_app_folder`): the app name in the native
    profile, ``flwr/{app}`` in syft-flwr-0.5's."""
    endpoint: str

    def __post_init__(self) -> None:
        validate_email(self.sender)
        validate_email(self.recipient)
        validate_app_folder(self.app)
        validate_identifier(self.endpoint, "endpoint")

    @property
    def folder(self) -> str:
        """The folder holding this route's objects (owned by ``sender``)."""
        return f"{outbox(self.sender, self.recipient)}/{self.app}/rpc/{self.endpoint}"

    def reverse(self) -> Route:
        return Route(self.recipient, self.sender, self.app, self.endpoint)

    def path(self, message_id: str, kind: ObjectKind) -> str:
        """Path of ``{id}.{kind}`` in this route's folder."""
        return f"{self.folder}/{validate_message_id(message_id)}.{ObjectKind(kind).value}"

    def request_path(self, message_id: str) -> str:
        return self.path(message_id, ObjectKind.REQUEST)

    def response_path(self, message_id: str) -> str:
        """Where the response to a request sent along this route appears."""
        return self.reverse().path(message_id, ObjectKind.RESPONSE)

    def claim_path(self, message_id: str) -> str:
        """Where the recipient of this route claims a request (its own outbox)."""
        return self.reverse().path(message_id, ObjectKind.CLAIM)


def inbox_routes(
    me: str, senders: Iterable[str], app: str, endpoints: Iterable[str]
) -> list[Route]:
    """Routes whose folders are ``me``'s inboxes for ``app``: one per sender and endpoint."""
    eps = sorted(set(endpoints))
    return [Route(s, me, app, ep) for s in sorted(set(senders)) for ep in eps]


def discover_senders(top_level_names: Iterable[str], me: str) -> list[str]:
    """Senders that have an outbox addressed to ``me`` among the root's folder names.

    Used only when the project names no participants; every sender found is validated
    (a folder named with a path-shaped or invalid email is ignored).
    """
    suffix = f"_to_{validate_email(me)}"
    found = set()
    for name in top_level_names:
        if name.startswith(OUTBOX_PREFIX) and name.endswith(suffix):
            sender = name[len(OUTBOX_PREFIX) : -len(suffix)]
            if sender != me and is_valid_email(sender):
                found.add(sender)
    return sorted(found)


# --------------------------------------------------------------------------- version marker
def layout_marker() -> bytes:
    return json.dumps({"layout": LAYOUT_NAME, "version": LAYOUT_VERSION}).encode()


def ensure_layout(storage: Storage) -> int:
    """Write the layout marker if the root has none, and refuse a root written by an
    incompatible syftflwr. Returns the root's layout version."""
    storage.put_if_absent(LAYOUT_FILE, [layout_marker()])
    raw = storage.get(LAYOUT_FILE, max_size=64 * 1024)
    if raw is None:  # deleted between the two calls: the root is still ours to use
        return LAYOUT_VERSION
    try:
        marker = json.loads(bytes(raw))
        version = int(marker["version"])
        name = marker.get("layout", LAYOUT_NAME)
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"{LAYOUT_FILE} in the mailbox root is unreadable ({exc}); "
            "delete it to let syftflwr write a fresh one"
        ) from None
    if name != LAYOUT_NAME or version not in SUPPORTED_LAYOUT_VERSIONS:
        raise StorageError(
            f"the mailbox root uses layout {name!r} version {version}, this syftflwr "
            f"supports {LAYOUT_NAME!r} versions {sorted(SUPPORTED_LAYOUT_VERSIONS)}: "
            "upgrade syftflwr on this machine, or point the transport at another root"
        )
    return version


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
