"""The sloppy storage and client: core's local-directory storage with faults."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    LocalDirStorage,
    Poller,
    StorageKeyDirectory,
    TransportContext,
    ensure_layout,
)


class SloppyStorage(LocalDirStorage):
    def __init__(self, root: Path, faults: set[str], *, blocks: bool) -> None:
        super().__init__(root)
        self.faults = faults
        self.blocking = False
        self._blocks = blocks

    def _maybe_block(self) -> None:
        if self.blocking:
            threading.Event().wait()  # forever

    def put_if_absent(self, path: str, parts: Any) -> bool:  # type: ignore[override]
        self._maybe_block()
        done = super().put_if_absent(path, parts)
        if self._blocks and path.endswith(".request"):
            self.blocking = True  # from now on, every call hangs
        return done

    def get(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self._maybe_block()
        if "get-raises" in self.faults and path.endswith(".request"):
            raise ConnectionResetError(104, "Connection reset by peer")  # a raw backend error
        return super().get(path, *args, **kwargs)

    def read_head(self, path: str, size: int) -> Any:
        self._maybe_block()
        if "get-raises" in self.faults and path.endswith(".request"):
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read_head(path, size)

    def delete(self, path: str) -> None:
        self._maybe_block()
        super().delete(path)

    def put(self, path: str, parts: Any) -> None:  # type: ignore[override]
        self._maybe_block()
        super().put(path, parts)

    def claim(self, path: str, owner: str) -> bool:
        self._maybe_block()
        return super().claim(path, owner)

    def list(self, folder: str) -> list[str]:
        self._maybe_block()
        if "slow-list" in self.faults:
            time.sleep(2.0)
        return super().list(folder)


class SloppyClient:
    def __init__(self, context: TransportContext, root: Path, faults: set[str]) -> None:
        self._email = context.require_email()
        blocks = "block" in faults and context.aggregator == self._email
        self.storage = SloppyStorage(root, faults, blocks=blocks)
        ensure_layout(self.storage)
        self.arrivals = Poller(self.storage, interval=0.05, name=f"sloppy-{self._email}")

    @property
    def email(self) -> str:
        return self._email

    def datasite_url(self, email: str) -> str:
        return f"sloppy:{email}"

    def key_directory(self) -> StorageKeyDirectory:
        return StorageKeyDirectory(self.storage, self._email)

    def close(self) -> None:
        self.arrivals.close()
