# ruff: noqa: PTH103, PTH108, PTH112, PTH114, PTH118, PTH208
# (descriptor-relative syscalls: pathlib has no *at equivalents)
"""A :class:`~syftflwr.mailbox.storage.Storage` over a local directory (stdlib only).

Shared by every transport whose mailbox is a local folder (fsspec-local's default root,
a SyftBox data dir).

* Atomic publish: the object is written to a temp file in ``{root}/.syftflwr/tmp/`` — on
  the same filesystem, but outside every watched folder, because watchdog can hold half
  a rename for up to 0.5 s when the temp file sits inside a watched tree — fsynced, then
  moved into place with ``os.replace`` (``put``) or ``os.link`` (``put_if_absent``:
  linking fails if the name exists, so it is atomic *and* exclusive).
* Large payloads are written from their parts with ``writev`` (never concatenated) and
  read with one ``readinto`` into a preallocated buffer.
* Nothing outside the root is ever read or written: folders are opened component by
  component with ``O_NOFOLLOW`` relative to their parent's descriptor, so a symlink
  anywhere below the root (a folder or a message) is refused, not followed; a FIFO or
  device is refused before it is read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Buffer
from syftflwr.errors import StorageError, UnsafeNameError
from syftflwr.mailbox.layout import TMP_FOLDER
from syftflwr.mailbox.storage import BaseStorage, check_max_size, split_path, views

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
_HAVE_DIR_FD = os.open in os.supports_dir_fd and os.link in os.supports_dir_fd and bool(_O_NOFOLLOW)
_IOV_BATCH = 512
STALE_TEMP_AGE = 3600.0
"""Temp files older than this (seconds) are leftovers of a crash and are removed."""


class _Dir:
    """An opened folder: a descriptor where the OS supports ``*at`` calls, else a path."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int | None, path: str) -> None:
        self.fd = fd
        self.path = path

    def target(self, name: str) -> str:
        return name if self.fd is not None else os.path.join(self.path, name)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LocalDirStorage(BaseStorage):
    """Mailbox storage in a local directory; see the module docstring for guarantees.

    :param root: the mailbox root (created if missing).
    :param fsync: flush every object to disk before publishing it. Turning it off trades
        durability across power loss for speed; atomicity is unaffected.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._tmp = str(self.root.joinpath(*TMP_FOLDER.split("/")))
            os.makedirs(self._tmp, exist_ok=True)
        except OSError as exc:
            raise _storage_error("create the mailbox root", str(self.root), exc) from exc
        self._root = str(self.root)
        self._remove_stale_temps()

    def __repr__(self) -> str:
        return f"LocalDirStorage({self._root!r})"

    @property
    def url(self) -> str:
        return self._root

    # -- folders -----------------------------------------------------------------------
    def _open_dir(self, components: Sequence[str], *, create: bool) -> _Dir:
        """Open ``root/components`` without following any symlink below the root."""
        if not _HAVE_DIR_FD:
            return self._open_dir_by_path(components, create=create)
        fd = os.open(self._root, _DIR_FLAGS)
        try:
            for name in components:
                try:
                    child = os.open(name, _DIR_FLAGS | _O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    child = os.open(name, _DIR_FLAGS | _O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno == errno.ELOOP or (
                        exc.errno == errno.ENOTDIR and _is_symlink(name, fd)
                    ):
                        raise UnsafeNameError(
                            f"{self._root}/{'/'.join(components)}: {name!r} is a symbolic "
                            "link; the mailbox never follows links — remove it"
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return _Dir(fd, "")

    def _open_dir_by_path(self, components: Sequence[str], *, create: bool) -> _Dir:
        # Platforms without *at calls (Windows): check each component is not a link.
        path = self._root
        for name in components:
            path = os.path.join(path, name)
            if os.path.islink(path):
                raise UnsafeNameError(f"{path} is a symbolic link; the mailbox never follows links")
            if create:
                os.makedirs(path, exist_ok=True)
            elif not os.path.isdir(path):
                raise FileNotFoundError(errno.ENOENT, "no such folder", path)
        return _Dir(None, path)

    def makedirs(self, folder: str) -> None:
        try:
            self._open_dir(split_path(folder), create=True).close()
        except OSError as exc:
            raise _storage_error("create folder", f"{self._root}/{folder}", exc) from exc

    # -- writes --------------------------------------------------------------------------
    def _write_temp(self, parts: Sequence[Buffer], *, durable: bool = True) -> str:
        name = os.path.join(self._tmp, f"{os.getpid()}-{uuid.uuid4().hex}.tmp")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY, 0o666)
        try:
            _write_all(fd, views(parts))
            if self.fsync and durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(name)
            raise
        os.close(fd)
        return name

    def _publish(
        self, path: str, parts: Sequence[Buffer], *, exclusive: bool, durable: bool = True
    ) -> bool:
        *dirs, name = split_path(path)
        try:
            temp = self._write_temp(parts, durable=durable)
        except OSError as exc:
            raise _storage_error("write", f"{self._root}/{path}", exc) from exc
        try:
            folder = self._open_dir(dirs, create=True)
            try:
                if exclusive:
                    os.link(temp, folder.target(name), dst_dir_fd=folder.fd, follow_symlinks=False)
                else:
                    os.replace(temp, folder.target(name), dst_dir_fd=folder.fd)
                    temp = ""
            finally:
                folder.close()
        except FileExistsError:
            return False
        except OSError as exc:
            raise _storage_error("publish", f"{self._root}/{path}", exc) from exc
        finally:
            if temp:
                _unlink_quietly(temp)
        return True

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        return self._publish(path, parts, exclusive=True)

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        self._publish(path, parts, exclusive=False)

    def claim(self, path: str, owner: str) -> bool:
        # Exclusive like any put_if_absent, but not fsynced: what matters is that the
        # name exists, and only a directory fsync (which no publish pays) makes that
        # durable; the owner text is a hint for takeover, not data.
        return self._publish(path, [owner.encode()], exclusive=True, durable=False)

    # -- reads ---------------------------------------------------------------------------
    def _open_file(self, path: str) -> int | None:
        """A descriptor of the regular file at ``path`` (None if there is none), opened
        without following links."""
        *dirs, name = split_path(path)
        try:
            folder = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _storage_error("read", f"{self._root}/{path}", exc) from exc
        try:
            if folder.fd is None and os.path.islink(folder.target(name)):
                raise UnsafeNameError(f"{self._root}/{path} is a symbolic link; not followed")
            flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY
            fd = os.open(folder.target(name), flags, dir_fd=folder.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeNameError(
                    f"{self._root}/{path} is a symbolic link; the mailbox never follows links"
                ) from None
            raise _storage_error("read", f"{self._root}/{path}", exc) from exc
        finally:
            folder.close()
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeNameError(f"{path} is not a regular file; refusing to read it")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        fd = self._open_file(path)
        if fd is None:
            return None
        try:
            return _read_all(fd, path, max_size)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise _storage_error("read", f"{self._root}/{path}", exc) from exc
        finally:
            os.close(fd)

    def read_head(self, path: str, size: int) -> tuple[Buffer, int] | None:
        """The first ``size`` bytes of ``path`` and its size (see the storage protocol)."""
        fd = self._open_file(path)
        if fd is None:
            return None
        try:
            total = os.fstat(fd).st_size
            return _read_exactly(fd, min(size, total)), total
        except OSError as exc:
            raise _storage_error("read", f"{self._root}/{path}", exc) from exc
        finally:
            os.close(fd)

    def list(self, folder: str) -> list[str]:
        components = split_path(folder) if folder else []
        try:
            handle = self._open_dir(components, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise _storage_error("list", f"{self._root}/{folder}", exc) from exc
        try:
            return os.listdir(handle.fd if handle.fd is not None else handle.path)
        except OSError as exc:
            raise _storage_error("list", f"{self._root}/{folder}", exc) from exc
        finally:
            handle.close()

    def delete(self, path: str) -> None:
        *dirs, name = split_path(path)
        try:
            folder = self._open_dir(dirs, create=False)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _storage_error("delete", f"{self._root}/{path}", exc) from exc
        try:
            os.unlink(folder.target(name), dir_fd=folder.fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _storage_error("delete", f"{self._root}/{path}", exc) from exc
        finally:
            folder.close()

    def local_path(self, path: str) -> Path:
        return self.root.joinpath(*split_path(path)) if path else self.root

    # -- housekeeping --------------------------------------------------------------------
    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - STALE_TEMP_AGE
        try:
            entries = list(os.scandir(self._tmp))
        except OSError:
            return
        for entry in entries:
            try:
                if entry.name.endswith(".tmp") and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                continue


# --------------------------------------------------------------------------- low level
def _write_all(fd: int, bufs: list[memoryview]) -> None:
    pending = deque(bufs)
    writev = getattr(os, "writev", None)
    while pending:
        if writev is not None:
            batch = [pending[i] for i in range(min(len(pending), _IOV_BATCH))]
            written = writev(fd, batch)
        else:  # pragma: no cover - Windows
            written = os.write(fd, pending[0])
        while written:
            head = pending[0]
            if written >= head.nbytes:
                written -= head.nbytes
                pending.popleft()
            else:
                pending[0] = head[written:]
                written = 0


def _read_all(fd: int, path: str, max_size: int | None) -> Buffer:
    size = os.fstat(fd).st_size
    check_max_size(path, size, max_size)
    buffer = bytearray(size)
    with open(fd, "rb", closefd=False) as stream:  # buffered: reads until full or EOF
        got = stream.readinto(buffer)
    # A file that shrank while being read (a non-atomic writer) comes back short; the
    # envelope decoder then reports it as truncated.
    return buffer if got == size else memoryview(buffer)[:got]


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``'s position (fewer if the file ends first)."""
    with open(fd, "rb", closefd=False) as stream:  # buffered: reads until ``size`` or EOF
        return stream.read(size)


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


_HINTS = {
    errno.EACCES: "check the permissions of the mailbox folder",
    errno.EPERM: "check the permissions of the mailbox folder (or hard-link support)",
    errno.ENOSPC: "free disk space on the mailbox's filesystem",
    errno.EDQUOT: "free space or raise the disk quota",
    errno.EROFS: "the mailbox root is on a read-only filesystem; choose another root",
    errno.EXDEV: "the mailbox root must be one filesystem: move mounts out of it",
    errno.ENOTDIR: "a file stands where a mailbox folder belongs; remove it",
    errno.EISDIR: "a folder stands where a mailbox object belongs; remove it",
}


def _storage_error(action: str, where: str, exc: OSError) -> StorageError:
    hint = _HINTS.get(exc.errno or 0, "check the mailbox root and its filesystem")
    return StorageError(exc.errno or 0, f"cannot {action} {where}: {exc.strerror or exc}; {hint}")


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
