"""The small storage protocol every storage-backed transport implements (the one class
a transport on the mailbox kit, :mod:`syftflwr.kit`, writes itself).

Paths are relative to the storage's root and '/'-separated; they are built by
:mod:`syftflwr.mailbox.layout` from validated names, and every storage checks them again
with :func:`split_path` (defence in depth: no ``..``, no absolute paths, no NUL).

The guarantees the mailbox relies on (docs/mailbox.md, "The storage contract"):

* ``put_if_absent`` is atomic *and* exclusive: a reader sees the whole object or nothing,
  and of two concurrent writers exactly one wins (the other gets False).
* ``put`` is an atomic replace.
* ``claim`` lets exactly one caller win a marker (default: ``put_if_absent`` of the owner).
* ``list(folder)`` names what is directly inside ``folder`` — objects and sub-folders, not
  recursive, no trailing slash, any order; ``""`` is the root; a missing folder is [].
  Foreign names (temp files) may appear: the mailbox ignores names it cannot parse.
* ``parts`` are bytes-like objects written one after the other (never kept after the
  call); ``get`` returns a bytes-like object the caller may keep (never changed later).
* No object above the transport's ``max_object_size`` is ever written: core chunks
  larger messages beneath it.
* Backend failures surface as :class:`~syftflwr.errors.StorageError`; an object that is
  not a plain file (a symlink, a FIFO) as :class:`~syftflwr.errors.UnsafeNameError`; one
  above ``max_size`` as :class:`~syftflwr.errors.MessageTooLargeError`, before it is read.
  Everything a peer can write here is hostile input: refuse what is not a plain object,
  never follow a link out of the root.

A storage that cannot give a guarantee (an object store without conditional create)
documents the weaker one it gives.

Optional: ``read_head(path, size) -> (first_bytes, total_size) | None`` — the first
``size`` bytes of an object (all of it when shorter) and its whole size, from ONE
opened version of it. A storage offering it lets the mailbox check a message's header
before reading its body (:func:`syftflwr.mailbox.chunking.read_object`), so garbage
costs its header, not its size. A wrapper that changes what ``get`` returns (sealing,
sync-aware reads) must not forward it unchanged; :class:`StorageWrapper` does not.
Optional attributes: ``url`` (where it lives, for logs) and ``email`` (the identity the
storage itself has, :class:`syftflwr.roles.StorageIdentity`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer
from syftflwr.errors import MessageTooLargeError, UnsafeNameError
from syftflwr.roles import HasLocation, offers


@runtime_checkable
class Storage(Protocol):
    """What the mailbox needs from a storage backend."""

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        """Atomically create ``path`` from the concatenation of ``parts``; False (and no
        change) if it already exists. Parent folders are created as needed."""
        ...

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        """Atomically create or replace ``path``."""
        ...

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        """The whole object, or None if it does not exist. Raises
        :class:`~syftflwr.errors.MessageTooLargeError` before reading an object larger
        than ``max_size``."""
        ...

    def list(self, folder: str) -> list[str]:
        """Names of the objects and sub-folders directly inside ``folder`` (``""``: the
        root), in any order; [] if it does not exist."""
        ...

    def delete(self, path: str) -> None:
        """Remove ``path``; a missing object is fine."""
        ...

    def claim(self, path: str, owner: str) -> bool:
        """Atomically create the marker ``path`` holding ``owner``; exactly one caller of
        many (threads, processes, machines) gets True."""
        ...

    def makedirs(self, folder: str) -> None:
        """Create ``folder`` and its parents (a no-op where folders are implicit)."""
        ...

    def local_path(self, path: str) -> Path | None:
        """The local filesystem path of ``path``, for file watchers; None if remote."""
        ...


@runtime_checkable
class SharesFolders(Protocol):
    """Optional on a Storage whose transport declares ``Capabilities.shares_objects``:
    make a folder of this participant's readable by exactly ``readers`` (and itself), so
    one stored blob reaches several recipients (:class:`~syftflwr.roles.SharesBlobs`).
    The mailbox calls it on a new, empty blob folder *before* writing the blob into it:
    SyftBox writes a permission file naming the readers; Google Drive grants each reader
    on the folder without notification e-mails. A storage where every participant can
    already read every sender's folders (one local or network directory) does not need it.

    A storage whose grants cover content whatever its order (Drive: a folder's readers
    read every file in it, written before or after) may set a class attribute
    ``shares_while_writing = True``: the mailbox then grants while the blob uploads, and
    still before any message names it.
    """

    def share_folder(self, folder: str, readers: Sequence[str]) -> None: ...


@runtime_checkable
class PutsNew(Protocol):
    """Optional on a Storage: create an object under a name nobody has written before —
    a new request's, whose id this participant's journal has never seen (the journal
    records every request before it is published, so such an id was never published
    by this participant, and only it writes its outbox). The mailbox vouches for that,
    so a storage without create-if-absent (Drive) may skip the check that
    :meth:`Storage.put_if_absent` needs: one round trip per message instead of two.
    Atomic like ``put_if_absent``; a storage that retried a write it cannot tell from
    a duplicate still settles it. Not forwarded by :class:`StorageWrapper` (a wrapper
    that changes writes would be bypassed): a wrapper offers it only by defining it."""

    def put_new(self, path: str, parts: Sequence[Buffer]) -> None: ...


class BaseStorage(ABC):
    """Convenience base: default ``claim``, ``makedirs`` and ``local_path``."""

    @abstractmethod
    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool: ...

    @abstractmethod
    def put(self, path: str, parts: Sequence[Buffer]) -> None: ...

    @abstractmethod
    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None: ...

    @abstractmethod
    def list(self, folder: str) -> list[str]: ...

    @abstractmethod
    def delete(self, path: str) -> None: ...

    def claim(self, path: str, owner: str) -> bool:
        return self.put_if_absent(path, [owner.encode()])

    def makedirs(self, folder: str) -> None:  # noqa: B027 - object stores have no folders
        """Folders are implicit by default."""

    def local_path(self, path: str) -> Path | None:
        return None


# --------------------------------------------------------------------------- helpers
def split_path(path: str) -> list[str]:
    """Components of a storage path; raises UnsafeNameError for anything that could
    leave the root ('..', '.', empty components, absolute paths, backslashes, NUL)."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        raise UnsafeNameError(f"unsafe storage path {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeNameError(f"unsafe storage path {path!r}: empty, '.' or '..' component")
    return parts


def views(parts: Sequence[Buffer]) -> list[memoryview]:
    """Byte views of ``parts`` (no copies), empty ones dropped."""
    out = []
    for part in parts:
        view = memoryview(part)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if view.nbytes:
            out.append(view)
    return out


def total_size(parts: Sequence[Buffer]) -> int:
    return sum(memoryview(p).nbytes for p in parts)


def check_max_size(path: str, size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise MessageTooLargeError(
            f"{path} is {size:,} bytes, above the {max_size:,} bytes allowed here; "
            "raise [tool.syftflwr] max_message_size if such messages are expected"
        )


class StorageWrapper(BaseStorage):
    """``inner`` with some operations changed (sealing, sync-aware reads...): every
    operation is forwarded, so a subclass overrides only what it changes. The optional
    ``share_folder`` and ``shares_while_writing`` are forwarded when ``inner`` has them;
    ``read_head`` never is (see the module docstring)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @property
    def url(self) -> str:
        return cast(HasLocation, self.inner).url if offers(self.inner, HasLocation) else ""

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        return self.inner.put_if_absent(path, parts)

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        self.inner.put(path, parts)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        return self.inner.get(path, max_size=max_size)

    def list(self, folder: str) -> list[str]:
        return self.inner.list(folder)

    def delete(self, path: str) -> None:
        self.inner.delete(path)

    def claim(self, path: str, owner: str) -> bool:
        return self.inner.claim(path, owner)

    def makedirs(self, folder: str) -> None:
        self.inner.makedirs(folder)

    def local_path(self, path: str) -> Path | None:
        return self.inner.local_path(path)

    @property
    def shares_while_writing(self) -> bool:
        """The wrapped storage's (:class:`SharesFolders`): hidden, a Drive blob's grants
        would run before its upload instead of beside it."""
        return getattr(self.inner, "shares_while_writing", False) is True

    def __getattr__(self, name: str) -> object:
        """``share_folder`` when the wrapped storage has it (:class:`SharesFolders`), so
        a wrapper neither hides nor invents the capability; nothing else."""
        if name == "share_folder" and offers(self.inner, SharesFolders):
            return cast(SharesFolders, self.inner).share_folder
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
