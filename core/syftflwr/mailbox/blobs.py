"""Shared blobs: what every transport implementing :class:`~syftflwr.roles.SharesBlobs`
and :class:`~syftflwr.roles.ReadsBlobs` does the same way — naming a new blob, the
refusals a reader gives, and the reader's small cache.

The storage side (where a mailbox keeps blobs, the journal, retention) is in
:mod:`syftflwr.mailbox.rpc` and :mod:`syftflwr.mailbox.events`; the layout in
:mod:`syftflwr.mailbox.layout` (``blob_folder``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer
from syftflwr.errors import BlobGoneError, EncryptionError, MessageTooLargeError
from syftflwr.info import TransportContext
from syftflwr.mailbox.storage import total_size
from syftflwr.names import new_message_id, validate_email, validate_message_id
from syftflwr.roles import BlobContent, BlobRef, check_size

CACHE_ENTRIES = 2
"""Blobs a reader keeps: the model of the current push (several instructions of one
round name it) and the one before (evaluate(r) and train(r+1) share arrays)."""
CACHE_BYTES = 1 << 30
"""At most this many bytes of cached blobs; a larger blob is read, not cached."""


def blob_where(ref: BlobRef, sender: str) -> str:
    """How refusals name a blob: ``blob {name} from {sender}``."""
    return f"blob {ref.name} from {sender}"


def new_blob_ref(
    data: Sequence[Buffer], context: TransportContext, recipients: Sequence[str]
) -> BlobRef:
    """The ref of a blob about to be stored: a fresh random name (never a hash of the
    content), the SHA-256 and size of ``data`` concatenated (parts: make a
    :class:`~syftflwr.roles.BlobContent` first with :func:`~syftflwr.roles.blob_parts`).
    Refuses, before anything is stored, a blob above ``max_message_size`` (readers refuse
    those: see :func:`check_blob_readable`) and recipients that are not valid emails."""
    size = check_new_blob(data, context, recipients)
    return BlobRef(name=new_message_id(), sha256=blob_sha256(data), size=size)


def check_new_blob(
    data: Sequence[Buffer] | BlobContent, context: TransportContext, recipients: Sequence[str]
) -> int:
    """The refusals of :func:`new_blob_ref` without the hash (a transport that hashes
    while it uploads), before a :class:`~syftflwr.roles.BlobContent` is made; returns the
    size of ``data`` concatenated."""
    for email in recipients:
        validate_email(email)
    size = data.size if isinstance(data, BlobContent) else total_size(data)
    check_size(size, context, "blob")
    return size


def blob_sha256(data: Sequence[Buffer]) -> str:
    """Hex SHA-256 of ``data`` concatenated (hashlib releases the GIL: a thread can
    hash while another uploads)."""
    digest = hashlib.sha256()
    for part in data:
        digest.update(memoryview(part).cast("B"))
    return digest.hexdigest()


def check_blob_readable(ref: BlobRef, sender: str, context: TransportContext) -> str:
    """Refusals before a plain (unsealed) reader touches storage; returns :func:`blob_where`.

    A ref with a content key is a sealed blob: a role without encryption must not hand
    its ciphertext to the app as if it were the model. The name must be a valid id (it
    becomes a path), and a blob is never larger than a message may be: blobs carry what
    messages would otherwise carry, so ``max_message_size`` bounds both.
    """
    text = blob_where(ref, sender)
    if ref.key is not None or ref.digest is not None:
        raise EncryptionError(
            f"{text} is sealed, but encryption is off here: refused; fix: turn encryption on "
            "for this participant (remove `encryption = false`), or off at the sender"
        )
    validate_message_id(ref.name)
    if not 0 <= ref.size <= context.max_message_size:
        raise MessageTooLargeError(
            f"{text} is {ref.size:,} bytes, above max_message_size "
            f"{context.max_message_size:,}: refused; raise [tool.syftflwr] max_message_size "
            "if this is expected"
        )
    return text


def blob_gone(text: str) -> BlobGoneError:
    """The refusal for a blob that is not in storage: core's reader asks again while
    its sender may still be uploading it, then refuses with this text."""
    return BlobGoneError(
        f"{text} is gone: it expired, or its sender dropped it (every message naming it "
        "was answered or given up) or never finished storing it"
    )


class BlobCache:
    """The last few blobs a reader read, as stored (ciphertext when sealed), keyed by
    (sender, app, sha256): a datasite reads a model once however many instructions of
    a push name it. Bounded by :data:`CACHE_ENTRIES` and :data:`CACHE_BYTES`;
    thread-safe. The key includes the hash, so an entry is only ever returned for a ref
    naming exactly those bytes (verified when they were read)."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, sender: str, app: str, sha256: str) -> bytes | None:
        with self._lock:
            data = self._items.get((sender, app, sha256))
            if data is None:
                self.misses += 1
                return None
            self._items.move_to_end((sender, app, sha256))
            self.hits += 1
            return data

    def put(self, sender: str, app: str, sha256: str, data: bytes) -> None:
        if len(data) > self.max_bytes or self.entries < 1:
            return
        with self._lock:
            self._items[(sender, app, sha256)] = data
            self._items.move_to_end((sender, app, sha256))
            while len(self._items) > self.entries or self._held() > self.max_bytes:
                self._items.popitem(last=False)

    def _held(self) -> int:
        return sum(len(d) for d in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
