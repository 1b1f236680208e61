"""Core's mailbox layout mapped into SyftBox datasites, with SyftBox's ownership rule
enforced on every write.

Core names a sender's outbox ``syft_outbox_inbox_{sender}_to_{recipient}`` and its blob
folders ``syftflwr_blobs_{sender}`` at the top of one root. On SyftBox a participant may
only write into its own datasite, so each lives in its sender's datasite::

    {data_dir}/datasites/{sender}/app_data/syftflwr/syft_outbox_inbox_{sender}_to_{recipient}/...
    {data_dir}/datasites/{sender}/app_data/syftflwr/syftflwr_blobs_{sender}/{app}/{id}/...

A blob's folder holds its own permission files naming exactly its readers
(:meth:`DatasiteStorage.share_folder`), written before the blob.

Everything is stored through core's :class:`~syftflwr.mailbox.LocalDirStorage` rooted at
the data dir, so every object is published atomically (temp file in
``{data_dir}/.syftflwr/tmp``, outside every synced and watched folder, then
``os.replace``/``os.link``) — the non-atomic writes of syft-rpc never apply here.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from syftflwr.plugin import (
    BLOB_PREFIX,
    OUTBOX_PREFIX,
    BaseStorage,
    Buffer,
    LocalDirStorage,
    UnsafeNameError,
    is_valid_email,
    split_path,
    validate_email,
)

from syftflwr_syftbox.options import APP_DATA_FOLDER

LOCAL_STATE = ".syftflwr"
"""Top-level folder of the data dir that is local to this machine (layout marker, temps)."""
DATASITES = "datasites"


def app_folder(email: str) -> str:
    """The folder (relative to the data dir) holding ``email``'s outboxes."""
    return f"{DATASITES}/{validate_email(email)}/app_data/{APP_DATA_FOLDER}"


LEGACY_PERMISSIONS = "syftperm.yaml"
"""Permission file of the Python SyftBox client (0.4.x) and its server."""
PERMISSIONS = "syft.pub.yaml"
"""Permission file of the current (Go) SyftBox client."""


def permission_files(owner: str, peers: Iterable[str]) -> dict[str, bytes]:
    """The permission files of ``owner``'s app folder: each peer may READ only the
    outbox addressed to it (nothing else of the datasite, and never write)."""
    return _permission_files(
        [
            (f"{OUTBOX_PREFIX}{owner}_to_{peer}/**", [peer], [])
            for peer in dict.fromkeys(map(validate_email, peers))
            if peer != owner
        ]
    )


def blob_permission_files(owner: str, readers: Iterable[str]) -> dict[str, bytes]:
    """The permission files of one of ``owner``'s blob folders: exactly ``readers`` may
    read what is in it, ``owner`` writes."""
    people = [r for r in dict.fromkeys(map(validate_email, readers)) if r != owner]
    return _permission_files([("**", people, [owner])])


def _permission_files(rules: list[tuple[str, list[str], list[str]]]) -> dict[str, bytes]:
    """Both clients' permission files of ``(pattern, readers, writers)`` rules. Quoted
    as JSON strings, which YAML reads as they are."""
    legacy = "".join(
        f"- path: {json.dumps(path)}\n  user: {json.dumps(user)}\n  permissions: {bits}\n"
        for path, readers, writers in rules
        for users, bits in ((readers, "[read]"), (writers, "[read, create, write]"))
        for user in users
    )
    modern = "rules:\n" + "".join(
        f"- pattern: {json.dumps(path)}\n  access:\n"
        + "".join(
            f"    {level}:\n" + "".join(f"    - {json.dumps(user)}\n" for user in users)
            for level, users in (("read", readers), ("write", writers))
            if users
        )
        for path, readers, writers in rules
    )
    return {LEGACY_PERMISSIONS: legacy.encode(), PERMISSIONS: modern.encode()}


def write_permissions(base: LocalDirStorage, owner: str, peers: Iterable[str]) -> None:
    """Let the project's participants read what ``owner`` writes for them once SyftBox
    syncs it (a datasite is private by default); rewritten only when it changes, and
    atomically (the sync client may upload it at any moment)."""
    folder = app_folder(owner)
    for name, data in permission_files(owner, peers).items():
        path = f"{folder}/{name}"
        current = base.get(path)
        if current is None or bytes(current) != data:
            base.put(path, [data])


def outbox_owner(folder: str, email: str) -> bool:
    """True if ``folder`` is an outbox whose sender is ``email`` (exact, no parsing)."""
    head = f"{OUTBOX_PREFIX}{email}_to_"
    return folder.startswith(head) and is_valid_email(folder[len(head) :])


class DatasiteStorage(BaseStorage):
    """One participant's view of a SyftBox data dir: reads any datasite, writes only
    its own.

    :param base: storage rooted at the data dir (shared by every participant of the
        process that uses this data dir).
    :param owner: the participant (the SyftBox config's email).
    :param known: participants named by the project; an outbox's owner is looked up
        among them first, then among the datasites present.
    """

    def __init__(self, base: LocalDirStorage, owner: str, known: Iterable[str] = ()) -> None:
        self.base = base
        self.owner = validate_email(owner)
        self._known = tuple(dict.fromkeys([self.owner, *map(validate_email, known)]))
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DatasiteStorage({self.base.url!r}, owner={self.owner!r})"

    @property
    def url(self) -> str:
        return f"{self.base.url}/{app_folder(self.owner)}"

    # -- path mapping --------------------------------------------------------------------
    def owner_of(self, folder: str) -> str:
        """Whose datasite holds the outbox ``folder``; refuses what matches no one, or
        more than one datasite (emails may contain ``_to_``)."""
        owner = self._find_owner(folder)
        if owner is None:
            raise UnsafeNameError(
                f"cannot tell whose outbox {folder!r} is: it matches no datasite; name the "
                "participants in [tool.syftflwr] (aggregator, datasites)"
            )
        return owner

    def _find_owner(self, folder: str) -> str | None:
        """The owner, or None if no participant and no datasite present matches."""
        with self._lock:
            cached = self._owners.get(folder)
        if cached is not None:
            return cached
        if folder.startswith(BLOB_PREFIX):  # syftflwr_blobs_{owner}: the name says whose
            owner = folder[len(BLOB_PREFIX) :]
            if not is_valid_email(owner):
                raise UnsafeNameError(f"{folder!r} names no participant's blob folders")
            return owner
        if not folder.startswith(OUTBOX_PREFIX):
            raise UnsafeNameError(
                f"{folder!r} is not a syftflwr outbox or blob folder; only {OUTBOX_PREFIX}* "
                f"and {BLOB_PREFIX}* folders are mapped into SyftBox datasites"
            )
        matches = [e for e in self._known if outbox_owner(folder, e)]
        if not matches:
            present = [d for d in self.base.list(DATASITES) if is_valid_email(d)]
            matches = [d for d in present if outbox_owner(folder, d)]
        if not matches:
            return None
        if len(matches) > 1:
            raise UnsafeNameError(
                f"cannot tell whose outbox {folder!r} is: it matches several datasites "
                f"({', '.join(matches)})"
            )
        with self._lock:
            self._owners[folder] = matches[0]
        return matches[0]

    def _map(self, path: str, *, write: bool) -> str | None:
        """The data-dir path of ``path``; None when reading from a datasite that does
        not exist (yet): nothing is there."""
        parts = split_path(path)
        if parts[0] == LOCAL_STATE:
            return path
        if not write:
            owner = self._find_owner(parts[0])
            return None if owner is None else f"{app_folder(owner)}/{path}"
        owner = self.owner_of(parts[0])
        if owner != self.owner:
            raise UnsafeNameError(
                f"refusing to write {path!r}: it belongs to {owner}'s datasite, and "
                f"{self.owner} may only write into its own (SyftBox permissions)"
            )
        return f"{app_folder(owner)}/{path}"

    def _write_path(self, path: str) -> str:
        mapped = self._map(path, write=True)
        assert mapped is not None  # writes either map or raise
        return mapped

    # -- Storage -------------------------------------------------------------------------
    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        return self.base.put_if_absent(self._write_path(path), parts)

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        self.base.put(self._write_path(path), parts)

    def claim(self, path: str, owner: str) -> bool:
        return self.base.claim(self._write_path(path), owner)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        mapped = self._map(path, write=False)
        return None if mapped is None else self.base.get(mapped, max_size=max_size)

    def read_head(self, path: str, size: int) -> tuple[Buffer, int] | None:
        """Core's optional head read (the header is checked before the body is read)."""
        mapped = self._map(path, write=False)
        return None if mapped is None else self.base.read_head(mapped, size)

    def list(self, folder: str) -> list[str]:
        if folder == "":
            return self._list_outboxes()
        mapped = self._map(folder, write=False)
        return [] if mapped is None else self.base.list(mapped)

    def delete(self, path: str) -> None:
        self.base.delete(self._write_path(path))

    def makedirs(self, folder: str) -> None:
        self.base.makedirs(self._write_path(folder))

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        """Core's :class:`~syftflwr.plugin.SharesFolders`: permission files in the blob
        folder (both clients' formats) naming exactly ``readers`` (read) and its owner
        (write); SyftBox syncs what is in it to those readers only."""
        mapped = self._write_path(folder)
        for name, data in blob_permission_files(self.owner, readers).items():
            self.base.put(f"{mapped}/{name}", [data])

    def local_path(self, path: str) -> Path | None:
        """``""`` is the data dir (the root a file watcher awaits missing folders
        under); None for an outbox of no known or present datasite."""
        if path == "":
            return self.base.local_path("")
        mapped = self._map(path, write=False)
        return None if mapped is None else self.base.local_path(mapped)

    def _list_outboxes(self) -> builtins.list[str]:
        """Every outbox in every datasite, each only if it sits in its sender's datasite
        (a folder in B's datasite claiming to be A's outbox is not listed)."""
        names: set[str] = {LOCAL_STATE}
        for datasite in self.base.list(DATASITES):
            if not is_valid_email(datasite):
                continue
            for name in self.base.list(app_folder(datasite)):
                if outbox_owner(name, datasite):
                    names.add(name)
        return sorted(names)
