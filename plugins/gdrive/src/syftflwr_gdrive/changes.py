"""Arrival detection through Drive's changes feed: ONE ``changes.list`` call per idle poll,
however many peers and endpoints are watched.

A participant's feed covers every file it can see — its own and everything inside the
folders peers shared with it — so one call tells it what appeared in all its inboxes.
Folders are listed only to (re)build state: when a watch starts (what is already there
is reported first), when a watched folder comes into existence, and when the feed's
page token is rejected. The page token is persisted in the state directory, so a
restarted runner resumes the feed where it stopped (names reported twice are fine: the
mailbox journal decides what is new).

Folders that do not exist yet (a datasite that never ran, a response folder before the
first reply) are *pending*: a folder change in the feed re-resolves them, and so does a
slow safety sweep (``pending_recheck`` seconds) in case a share was missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syftflwr.plugin import FolderSubscription, PollingSource, StorageError, atomic_write

from syftflwr_gdrive.api import FOLDER_MIME, DriveAPIError
from syftflwr_gdrive.storage import DriveStorage

log = logging.getLogger("syftflwr.gdrive")

CHANGE_FIELDS = (
    "nextPageToken,newStartPageToken,changes(fileId,removed,"
    "file(id,name,mimeType,parents,trashed,owners(emailAddress)))"
)


class _Watched:
    __slots__ = ("folder_id", "subscribers")

    def __init__(self) -> None:
        self.folder_id: str | None = None
        self.subscribers: set[FolderSubscription] = set()


class ChangesFeed(PollingSource):
    """An :class:`~syftflwr.mailbox.arrivals.ArrivalSource` over one participant's
    Drive changes feed, on an adaptive interval (``interval`` when busy, growing by half
    per idle round up to ``max_interval``, back to ``interval`` on arrival or poke)."""

    def __init__(
        self,
        storage: DriveStorage,
        *,
        interval: float = 1.0,
        max_interval: float | None = None,
        token_path: Path | None = None,
        pending_recheck: float = 60.0,
        background: bool = True,
    ) -> None:
        super().__init__(
            interval=interval,
            max_interval=max_interval,
            name="syftflwr-gdrive-changes",
            background=background,
        )
        self.storage = storage
        self.token_path = token_path
        self.pending_recheck = pending_recheck
        self._io = threading.Lock()
        """Serialises feed reads and folder (re)listings (one thread polls, watches list)."""
        self._folders: dict[str, _Watched] = {}
        self._by_id: dict[str, str] = {}
        self._seen: set[str] = set()
        self._token: str | None = None
        self._failing = False
        self._rebuild = False
        self._last_recheck = time.monotonic()
        self.rounds = 0
        self.feed_calls = 0
        """``changes.list`` requests made (the benchmark of calls per idle poll)."""

    @property
    def pending(self) -> list[str]:
        with self._cond:
            return sorted(p for p, w in self._folders.items() if w.folder_id is None)

    # -- the page token ----------------------------------------------------------------------
    def _load_token(self) -> str | None:
        if self.token_path is None:
            return None
        try:
            text = self.token_path.read_text().strip()
        except OSError:
            return None
        return text or None

    def _save_token(self, token: str) -> None:
        self._token = token
        if self.token_path is None:
            return
        try:
            atomic_write(self.token_path, token)
        except OSError as exc:
            log.warning("cannot save the Drive changes token to %s: %s", self.token_path, exc)

    def _start_token(self) -> str:
        page = self.storage.api.call("the changes feed", lambda s: s.changes().getStartPageToken())
        return str(page["startPageToken"])

    def _ensure_token(self) -> None:
        """Taken BEFORE any folder is listed, so nothing slips between list and feed."""
        if self._token is None:
            token = self._load_token() or self._start_token()
            self._save_token(token)

    # -- watching ----------------------------------------------------------------------------
    def _watch(self, sub: FolderSubscription, folders: Iterable[str]) -> None:
        with self._io:
            self._ensure_token()
            for folder in folders:
                with self._cond:
                    state = self._folders.setdefault(folder, _Watched())
                    state.subscribers.add(sub)
                    known = state.folder_id
                if known is None:
                    self._resolve(folder, only=sub)
                else:
                    self._report_listing(folder, [sub])
        self._ensure_thread()

    def _unwatch(self, sub: FolderSubscription, folders: Iterable[str]) -> None:
        with self._cond:
            for folder in folders:
                state = self._folders.get(folder)
                if state is None:
                    continue
                state.subscribers.discard(sub)
                if not state.subscribers:
                    del self._folders[folder]
                    if state.folder_id is not None:
                        self._by_id.pop(state.folder_id, None)

    def _resolve(self, folder: str, only: FolderSubscription | None = None) -> bool:
        """Look ``folder`` up; if it exists now, index it and report its content."""
        try:
            folder_id = self.storage.folder_id(folder)
        except StorageError as exc:
            log.debug("cannot resolve %s yet: %s", folder, exc)
            return False
        if folder_id is None:
            return False
        with self._cond:
            state = self._folders.get(folder)
            if state is None:
                return False
            state.folder_id = folder_id
            self._by_id[folder_id] = folder
            subs = [only] if only is not None else list(state.subscribers)
        self._report_listing(folder, subs)
        return True

    def _report_listing(self, folder: str, subs: list[FolderSubscription]) -> int:
        try:
            names = self.storage.list(folder)
        except StorageError as exc:
            log.warning(
                "listing %s failed (%s); it is listed again on the next change", folder, exc
            )
            return 0
        for name in names:
            for sub in subs:
                sub.deliver(folder, name)
        return len(names)

    # -- polling -----------------------------------------------------------------------------
    def _read_feed(self) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        while True:
            token = self._token
            self.feed_calls += 1
            page = self.storage.api.call(
                "the changes feed",
                lambda s, t=token: s.changes().list(  # type: ignore[misc]
                    pageToken=t, pageSize=1000, spaces="drive", fields=CHANGE_FIELDS
                ),
            )
            changes += page.get("changes", [])
            if page.get("nextPageToken"):
                self._token = str(page["nextPageToken"])
                continue
            self._save_token(str(page.get("newStartPageToken") or token))
            return changes

    def poll_once(self) -> int:
        """Read the feed once (one call when idle) and report new names in watched
        folders; returns how many were reported."""
        with self._io:
            # Every call that can fail is inside the try: an escaping error would end
            # the polling thread, and the runner would wait for arrivals forever.
            try:
                if self._rebuild:  # the page token was refused: restart the feed, relist
                    self._ensure_token_fresh()
                    self._rebuild = False
                    return self._relist_all()
                self._ensure_token()
                changes = self._read_feed()
                self._failing = False
            except StorageError as exc:
                if isinstance(exc, DriveAPIError) and exc.status in (400, 404, 410):
                    if not self._rebuild:
                        log.warning("the Drive changes token was refused (%s); rebuilding", exc)
                        self._rebuild = True
                        self._poke()  # rebuild on the next round, not after a back-off
                    return 0
                if not self._failing:
                    log.warning("reading the Drive changes feed failed (%s); retrying", exc)
                self._failing = True
                return 0
            found = self._apply(changes)
            if self._due_recheck():
                found += self._recheck_pending()
            self.rounds += 1
            return found

    def _ensure_token_fresh(self) -> None:
        self._save_token(self._start_token())

    def _relist_all(self) -> int:
        with self._cond:
            folders = list(self._folders)
        return sum(self._report_listing(f, self._subs(f)) for f in folders)

    def _subs(self, folder: str) -> list[FolderSubscription]:
        with self._cond:
            state = self._folders.get(folder)
            return [] if state is None else list(state.subscribers)

    def _apply(self, changes: list[dict[str, Any]]) -> int:
        found = 0
        folder_appeared = False
        for change in changes:
            file = change.get("file") or {}
            file_id = str(change.get("fileId") or file.get("id") or "")
            if change.get("removed") or file.get("trashed"):
                self._seen.discard(file_id)
                self._forget_folder_id(file_id)
                continue
            if file.get("mimeType") == FOLDER_MIME:
                folder_appeared = True
            for parent in file.get("parents") or []:
                with self._cond:
                    folder = self._by_id.get(parent)
                if folder is None or file_id in self._seen:
                    continue
                owners = file.get("owners") or [{}]
                if owners[0].get("emailAddress") != self.storage.owner_of(folder):
                    continue  # not written by the folder's owner: never a message
                self._seen.add(file_id)
                for sub in self._subs(folder):
                    sub.deliver(folder, str(file.get("name", "")))
                found += 1
        if folder_appeared and self.pending:
            found += self._recheck_pending()
        return found

    def _forget_folder_id(self, file_id: str) -> None:
        with self._cond:
            folder = self._by_id.pop(file_id, None)
            if folder is None:
                return
            state = self._folders.get(folder)
            if state is not None:
                state.folder_id = None
        self.storage.forget_folder(folder)

    def _due_recheck(self) -> bool:
        return bool(self.pending) and time.monotonic() - self._last_recheck >= self.pending_recheck

    def _recheck_pending(self) -> int:
        self._last_recheck = time.monotonic()
        return sum(1 for folder in self.pending if self._resolve(folder))
