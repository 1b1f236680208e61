"""The mailbox :class:`~syftflwr.mailbox.storage.Storage` on an fsspec filesystem
(``gcs://``, ``s3://``, ``memory://``, any other fsspec URL).

* Every object is ONE single-object create (``pipe_file``), so readers never see a
  partial object on object stores.
* ``put_if_absent`` asks the backend for a conditional create (``mode="create"``):
  gcsfs sends ``ifGenerationMatch=0`` and s3fs ``If-None-Match: *`` where their versions
  support it, and the memory filesystem refuses an existing key — then it is exclusive.
  A backend that only emulates it (exists-then-write) gives the weaker guarantee that
  two writers racing within one round trip may both "win"; claims then fall back on the
  journal, and docs/transports/fsspec-local.md says which backends are which.
* Listing caches are off (``use_listings_cache=False``, ``skip_instance_cache=True``, and
  ``invalidate_cache`` before every list), so a poll always sees the store as it is.
* Backend exceptions become :class:`~syftflwr.errors.StorageError` naming the object
  and the likely fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syftflwr.plugin import (
    BaseStorage,
    Buffer,
    StorageError,
    check_max_size,
    split_path,
    total_size,
)

_PRECONDITION_MARKERS = ("412", "precondition", "conditionalrequestconflict", "already exists")


def _join(parts: Sequence[Buffer]) -> bytes:
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(memoryview(p).cast("B") for p in parts)


def _is_precondition_failure(exc: BaseException) -> bool:
    if isinstance(exc, FileExistsError):
        return True
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _PRECONDITION_MARKERS)


def _default_timeouts(url: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Request timeouts for the cloud backends, unless the user set their own: a server
    that stops answering must surface as a StorageError (retried by the poller), never
    hang a runner forever. Generous enough for a 100 MB object on a slow link."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("gcs", "gs") and "requests_timeout" not in given:
        return {"requests_timeout": 300}
    if scheme in ("s3", "s3a") and "config_kwargs" not in given:
        return {"config_kwargs": {"connect_timeout": 30, "read_timeout": 300}}
    return {}


class FsspecStorage(BaseStorage):
    """Mailbox storage under ``url`` on the fsspec filesystem it names."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        options = {"use_listings_cache": False, "skip_instance_cache": True}
        options.update(_default_timeouts(self.url, storage_options or {}))
        options.update(storage_options or {})
        try:
            self.fs, base = fsspec.core.url_to_fs(self.url, **options)
        except (ImportError, ValueError) as exc:
            scheme = self.url.partition("://")[0]
            package = {"gcs": "gcsfs", "gs": "gcsfs", "s3": "s3fs", "s3a": "s3fs"}.get(scheme)
            hint = (
                f"pip install {package}"
                if package
                else "install the fsspec implementation for this URL scheme"
            )
            raise StorageError(
                f"cannot open the mailbox root {self.url}: {exc}; fix: {hint}"
            ) from exc
        self.base = str(base).rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    def _full(self, path: str) -> str:
        return f"{self.base}/{'/'.join(split_path(path))}" if path else self.base

    def _error(self, action: str, path: str, exc: BaseException) -> StorageError:
        return StorageError(
            f"cannot {action} {self.url}/{path}: {type(exc).__name__}: {exc}; check the "
            "root URL, the credentials in storage_options and the network"
        )

    # -- writes --------------------------------------------------------------------------
    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        full = self._full(path)
        try:
            self.fs.pipe_file(full, _join(parts), mode="create")
        except Exception as exc:
            if _is_precondition_failure(exc):
                return False
            raise self._error("create", path, exc) from exc
        return True

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        try:
            self.fs.pipe_file(self._full(path), _join(parts))
        except Exception as exc:
            raise self._error("write", path, exc) from exc

    # -- reads ---------------------------------------------------------------------------
    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        full = self._full(path)
        try:
            size = self.fs.size(full) if max_size is not None else None
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error("read", path, exc) from exc
        if size is not None:
            check_max_size(path, int(size), max_size)  # before downloading anything
        try:
            data = self.fs.cat_file(full)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error("read", path, exc) from exc
        check_max_size(path, total_size([data]), max_size)
        return bytes(data)

    def read_head(self, path: str, size: int) -> tuple[Buffer, int] | None:
        """The first ``size`` bytes and the size of ``path`` (core's optional storage
        method): a short object in one download, a long one's head in a ranged one."""
        full = self._full(path)
        try:
            total = int(self.fs.size(full))
            data = self.fs.cat_file(full, start=0, end=size) if total > size else None
            if data is None:
                data = self.fs.cat_file(full)
                total = len(data)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error("read", path, exc) from exc
        return bytes(data), total

    def list(self, folder: str) -> list[str]:
        full = self._full(folder)
        try:
            self.fs.invalidate_cache(full)
            entries = self.fs.ls(full, detail=False)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._error("list", folder, exc) from exc
        names = []
        for entry in entries:
            name = str(entry).rstrip("/").rsplit("/", 1)[-1]
            if name and str(entry).rstrip("/") != full:
                names.append(name)
        return names

    def delete(self, path: str) -> None:
        try:
            self.fs.rm(self._full(path))  # rm: every backend has it (older s3fs lacks rm_file)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._error("delete", path, exc) from exc

    def makedirs(self, folder: str) -> None:
        try:
            self.fs.makedirs(self._full(folder), exist_ok=True)
        except FileExistsError:
            return
        except Exception as exc:
            raise self._error("create folder", folder, exc) from exc
