"""Chunked messages over a file sync, which keeps no order between files.

A sender publishes a chunked message's parts first and its manifest last, so a reader of
a local (or shared) data dir never sees a manifest without its parts. A SyftBox client
downloads each file on its own, small ones first as often as not: the manifest can
arrive seconds before its multi-MiB parts. Two small wrappers make that look like any
object still being written, which the mailbox already waits for:

* :class:`SyncedStorage`: a manifest whose parts are not all present and complete yet
  (a SyftBox client writes downloads in place) reads as an empty object ("incomplete";
  a runner re-checks it within the ``incomplete_grace`` option, an aggregator when it
  is told of it again);
* :class:`PartArrivals`: the arrival of a part is also reported as an arrival of its
  message, so whoever waits on the message re-reads it when the last part lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from syftflwr.plugin import (
    ArrivalCallback,
    ArrivalSource,
    Buffer,
    MalformedMessageError,
    Manifest,
    SharesFolders,
    Storage,
    StorageWrapper,
    Subscription,
    is_manifest,
    parse_name,
)


class SyncedStorage(StorageWrapper):
    """``inner`` (a participant's datasite view), with manifests whose parts have not all
    been synced yet reading as incomplete objects.

    It offers no ``read_head``: the mailbox would take a small manifest whole from its
    head, past :meth:`get`, and refuse it for parts still on their way."""

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        cast(SharesFolders, self.inner).share_folder(folder, readers)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        data = self.inner.get(path, max_size=max_size)
        if data is None or not is_manifest(data):
            return data
        try:
            manifest = Manifest.decode(data, source=path)
        except MalformedMessageError:
            return data  # core refuses it with the reason
        if max_size is not None and manifest.size > max_size:
            return data  # refused from its size, before any part is looked for
        folder = path.rpartition("/")[0]
        for index, part in enumerate(manifest.part_names(), start=1):
            local = self.inner.local_path(f"{folder}/{part}")
            try:
                size = None if local is None else local.stat().st_size
            except OSError:
                return b""  # not synced yet: incomplete, re-read when it arrives
            if size is not None and size < manifest.part_length(index):
                return b""  # a sync client still writing it in place
        return data


class PartArrivals:
    """``inner``'s arrivals, each part also reported as its message once that message's
    manifest is there (see the module). Before it is, nothing is reported: a reader told
    of a message that does not exist would take it as gone; the manifest's own arrival
    is reported when it lands."""

    def __init__(self, inner: ArrivalSource, storage: Storage) -> None:
        self.inner = inner
        self.storage = storage

    def subscribe(self, callback: ArrivalCallback) -> Subscription:
        def deliver(folder: str, name: str) -> None:
            callback(folder, name)
            parsed = parse_name(name)
            if parsed is None or not parsed.is_part:
                return
            message = f"{parsed.id}.{parsed.kind.value}"
            path = self.storage.local_path(f"{folder}/{message}")
            if path is not None and path.is_file():
                callback(folder, message)

        return self.inner.subscribe(deliver)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
