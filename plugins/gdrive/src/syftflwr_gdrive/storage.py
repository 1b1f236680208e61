"""The mailbox :class:`~syftflwr.mailbox.storage.Storage` on Google Drive, for ONE
participant (Drive's view depends on whose token is used).

Where paths live:

* the participant's own objects — its outboxes ``syft_outbox_inbox_{me}_to_{peer}/...``
  and ``.syftflwr/`` — under a root folder (``SyftBox`` by default) in its My Drive; each
  outbox is shared with its recipient as writer, without notification e-mails;
* a peer's outbox addressed to me, ``syft_outbox_inbox_{peer}_to_{me}/...``, is the
  folder of exactly that name OWNED BY ``peer`` among those shared with me. A folder of
  that name owned by anybody else is ignored, and so is a file inside it that its owner
  did not write: a third party cannot inject messages.

Drive has no create-if-absent. ``put_if_absent`` gives this guarantee instead: it checks
the name, creates the file tagged with a random writer token (``appProperties``), lists
the name again and **the oldest copy wins** (``createdTime``, then file id); a loser
deletes its own copy and returns False. Drive orders creations, so of writers racing on
one name exactly one sees itself oldest; the only window is that a reader may briefly
see a loser's complete copy before it is deleted. A create retried after an ambiguous
5xx can leave two copies with the same tag: the newer is deleted. Readers read the
oldest copy. Every object is created by ONE request (multipart) or one resumable
session, and appears only when complete, so readers never see a partial object.

Only a file's owner can delete it on Drive: a participant deletes only what it wrote
(its requests once answered, its responses and claims once the request is gone — the
core retention rules), which is exactly what Drive allows.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from syftflwr.plugin import (
    BLOB_PREFIX,
    OUTBOX_PREFIX,
    BaseStorage,
    Buffer,
    StorageError,
    atomic_write,
    check_max_size,
    is_valid_email,
    split_path,
    total_size,
    validate_email,
)

from syftflwr_gdrive.api import FOLDER_MIME, DriveAPI, DriveNotFoundError

log = logging.getLogger("syftflwr.gdrive")

WRITER_TAG = "syftflwr_writer"
FILE_FIELDS = "id,name,mimeType,parents,createdTime,size,appProperties,owners(emailAddress)"
DEFAULT_TRANSFER_CHUNK = 8 * 1024 * 1024
"""Resumable upload / ranged download step; objects up to this size take one request."""
BLOB_REQUEST = 256 * 1024 * 1024
"""A blob goes up in one resumable request up to this size (larger ones in requests of
this size): each request costs a round trip and counts against the quota, and Drive
keeps what an interrupted request delivered (the client asks how far it got and goes
on). It bounds the copy the client makes of a request's body."""


def blob_request(size: int) -> int:
    """Bytes per resumable request of a ``size``-byte blob: all of it up to
    :data:`BLOB_REQUEST`, in Drive's unit (256 KiB) for every request but the last."""
    quantum = 256 * 1024
    return min(BLOB_REQUEST, max(quantum, -(-size // quantum) * quantum))


def quote(value: str) -> str:
    """A string literal for Drive's ``q`` grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _owner(resource: dict[str, Any]) -> str:
    owners = resource.get("owners") or [{}]
    return str(owners[0].get("emailAddress", ""))


def _age(resource: dict[str, Any]) -> tuple[str, str]:
    return (str(resource.get("createdTime", "")), str(resource.get("id", "")))


def _join(parts: Sequence[Buffer]) -> bytes:
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(memoryview(p).cast("B") for p in parts)


def _whole(parts: Sequence[Buffer]) -> bytes | memoryview:
    """``parts`` as one buffer, without a copy when it is one part already (a sealed
    blob is one buffer: joining 100 MB is 50 ms before an upload's first byte)."""
    return memoryview(parts[0]).cast("B") if len(parts) == 1 else _join(parts)


@functools.cache
def _upload_class() -> Any:
    """A media upload of a buffer: resumable chunks are views of it (no copy:
    ``io.BytesIO`` copies anything but ``bytes``), a multipart body its bytes (the email
    generator building it needs ``bytes``). Never a stream: google-auth-httplib2 cannot
    rewind googleapiclient's stream slice when it retries a chunk after a 401 (expired
    token), so the retry would announce the chunk's Content-Length with an empty body
    and hang until the socket times out."""
    from googleapiclient.http import MediaUpload

    class BufferUpload(MediaUpload):  # type: ignore[misc]
        def __init__(self, data: bytes | memoryview, chunksize: int, resumable: bool) -> None:
            self._data = memoryview(data).cast("B")
            self._chunksize = chunksize
            self._resumable = resumable

        def chunksize(self) -> int:
            return self._chunksize

        def mimetype(self) -> str:
            return "application/octet-stream"

        def size(self) -> int:
            return self._data.nbytes

        def resumable(self) -> bool:
            return self._resumable

        def getbytes(self, begin: int, length: int) -> bytes | memoryview:
            chunk = self._data[begin : begin + length]
            return chunk if self._resumable else bytes(chunk)

        def has_stream(self) -> bool:
            return False

    return BufferUpload


SESSION_LIFETIME = 7 * 24 * 3600.0
"""Drive keeps an unfinished resumable session about a week; older records are dropped."""


class UploadSessions:
    """The resumable sessions of unfinished uploads, one small JSON record each in the
    participant's state dir, so a process that restarts after a crash or a kill continues
    a large upload where Drive has it instead of sending it all again.

    A record is keyed by the destination (folder id and name) and the SHA-256 and size of
    the content: only the same bytes to the same place resume. A process takes a record
    by renaming it (of two processes, one gets it) and drops it once the upload is done."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def key(self, parent: str, name: str, data: bytes | memoryview) -> str:
        digest = hashlib.sha256(data).hexdigest()
        return hashlib.sha256(f"{parent}/{name}/{len(data)}/{digest}".encode()).hexdigest()[:32]

    def take(self, key: str) -> dict[str, str] | None:
        """The record of ``key``, removed from the folder; None if there is none."""
        taken = self.folder / f"{key}.{uuid.uuid4().hex}.taken"
        try:
            (self.folder / f"{key}.json").rename(taken)
        except FileNotFoundError:
            return None
        try:
            record = json.loads(taken.read_text())
        except (OSError, ValueError):
            return None
        finally:
            taken.unlink(missing_ok=True)
        if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
            return None
        return record

    def save(self, key: str, uri: str, tag: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {"uri": uri, "tag": tag, "started": str(time.time())}
        atomic_write(self.folder / f"{key}.json", json.dumps(record), mode=0o600)
        self._prune()

    def drop(self, key: str) -> None:
        (self.folder / f"{key}.json").unlink(missing_ok=True)

    def _prune(self) -> None:
        """Records of sessions Drive no longer keeps (their upload never came back)."""
        old = time.time() - SESSION_LIFETIME
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < old:
                    path.unlink()


class DriveStorage(BaseStorage):
    """Mailbox storage of participant ``me`` on Drive (thread-safe)."""

    shares_while_writing = True
    """A folder's grants cover every file in it, written before or after (core's
    :class:`~syftflwr.plugin.SharesFolders`): a blob's grants run while it uploads."""

    def __init__(
        self,
        api: DriveAPI,
        me: str,
        *,
        root_name: str = "SyftBox",
        transfer_chunk: int = DEFAULT_TRANSFER_CHUNK,
        folder_names: Callable[[list[str]], list[str]] | None = None,
        upload_sessions: Path | None = None,
    ) -> None:
        self.api = api
        self.sessions = None if upload_sessions is None else UploadSessions(upload_sessions)
        """Where resumable sessions are kept across restarts (the state dir); None:
        an interrupted upload starts over."""
        self.folder_names = folder_names or (lambda parts: parts)
        """The Drive folder names of a path's components (a wire profile's naming rule)."""
        self.me = me
        self.root_name = root_name
        self.transfer_chunk = max(256 * 1024, transfer_chunk // (256 * 1024) * (256 * 1024))
        self._folders: dict[str, str] = {}
        self._owners: dict[str, str] = {}
        """folder path -> the email whose files count there (me, or the peer)."""
        self._lock = threading.RLock()
        self._root_id: str | None = None
        self._fresh: dict[str, set[str]] = {}
        """Blob folders this storage created -> the names it wrote into them."""

    def __repr__(self) -> str:
        return f"DriveStorage({self.me!r}, root={self.root_name!r})"

    @property
    def email(self) -> str:
        """The token's owner (``about.get``): the identity the client role reports."""
        return self.me

    @property
    def url(self) -> str:
        return f"gdrive://{self.me}/{self.root_name}"

    # -- folders -------------------------------------------------------------------------
    def _children(
        self, parent: str, name: str | None = None, *, folders: bool = False
    ) -> list[dict[str, Any]]:
        q = f"{quote(parent)} in parents and trashed = false"
        if name is not None:
            q += f" and name = {quote(name)}"
        if folders:
            q += f" and mimeType = {quote(FOLDER_MIME)}"
        return self._query(q, f"the folder {parent}")

    def _query(self, q: str, what: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.api.call(
                what,
                lambda s, t=token: s.files().list(  # type: ignore[misc]
                    q=q, pageSize=1000, pageToken=t, fields=f"nextPageToken,files({FILE_FIELDS})"
                ),
            )
            out += page.get("files", [])
            token = page.get("nextPageToken")
            if not token:
                return sorted(out, key=_age)

    def _create_folder(self, parent: str, name: str) -> str:
        """Create-then-keep-oldest, so two processes of one user agree on one folder."""
        tag = uuid.uuid4().hex
        body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent],
                "appProperties": {WRITER_TAG: tag}}  # fmt: skip
        self.api.call(f"folder {name}", lambda s: s.files().create(body=body, fields="id"))
        return self._settle(self._children(parent, name, folders=True), tag)

    def _settle(self, copies: list[dict[str, Any]], tag: str) -> str:
        """Keep the oldest copy; delete the copies this call made that lost."""
        mine = [c for c in copies if _owner(c) == self.me]
        winner = mine[0]
        for copy in mine[1:]:
            if (copy.get("appProperties") or {}).get(WRITER_TAG) == tag:
                self._delete_id(str(copy["id"]), copy.get("name", "?"))
        return str(winner["id"])

    def root_id(self) -> str:
        with self._lock:
            if self._root_id is None:
                found = [
                    f
                    for f in self._children("root", self.root_name, folders=True)
                    if _owner(f) == self.me
                ]
                self._root_id = (
                    str(found[0]["id"]) if found else self._create_folder("root", self.root_name)
                )
            return self._root_id

    def is_mine(self, top: str) -> bool:
        """Whether a top-level name lives in my root (my outboxes and blob folders,
        .syftflwr) rather than being a peer's outbox toward me or a peer's blobs."""
        if self._is_blobs(top):
            return top == f"{BLOB_PREFIX}{self.me}"
        return not top.startswith(OUTBOX_PREFIX) or top.startswith(f"{OUTBOX_PREFIX}{self.me}_to_")

    def _peer_outbox(self, top: str) -> tuple[str, str] | None:
        """The folder ``top`` owned by the peer it names as sender, addressed to me."""
        q = f"name = {quote(top)} and mimeType = {quote(FOLDER_MIME)} and trashed = false"
        for folder in self._query(q, f"the shared folder {top}"):
            owner = _owner(folder)
            if owner != self.me and top == f"{OUTBOX_PREFIX}{owner}_to_{self.me}":
                return str(folder["id"]), owner
        return None

    def folder_id(self, folder: str, *, create: bool = False) -> str | None:
        """The id of ``folder`` (a storage path), creating it (and sharing a new outbox
        with its recipient) if asked; None if it does not exist."""
        if folder == "":
            return self.root_id()
        with self._lock:
            cached = self._folders.get(folder)
        if cached is not None:
            return cached
        parts = self.folder_names(split_path(folder))
        top = parts[0]
        if self.is_mine(top):
            parent, owner, path = self.root_id(), self.me, ""
        else:
            if create:
                raise StorageError(
                    f"refusing to write into {top}: a participant only writes into its own "
                    "outboxes and blob folders (a bug in the caller)"
                )
            found = self._peer_blob_folder(parts) if self._is_blobs(top) else self._peer_outbox(top)
            if found is None:
                return None
            parent, owner = found
            depth = 3 if self._is_blobs(top) else 1
            path = "/".join(parts[:depth])
            self._remember(path, parent, owner)
            parts = parts[depth:]
        fresh = create and top == f"{BLOB_PREFIX}{self.me}"
        for name in parts:
            path = f"{path}/{name}" if path else name
            with self._lock:
                cached = self._folders.get(path)
            if cached is not None:
                parent = cached
                continue
            if fresh and path.count("/") == 2:  # a new blob's folder: a random 128-bit name
                parent = self._create_fresh_folder(parent, name)
                self._remember(path, parent, owner)
                continue
            found_children = [
                f for f in self._children(parent, name, folders=True) if _owner(f) == owner
            ]
            if found_children:
                parent = str(found_children[0]["id"])
            elif create:
                parent = self._create_folder(parent, name)
                if path == top:
                    self._share_outbox(parent, top)
            else:
                return None
            self._remember(path, parent, owner)
        return parent

    @staticmethod
    def _is_blobs(top: str) -> bool:
        return top.startswith(BLOB_PREFIX)

    def _create_fresh_folder(self, parent: str, name: str) -> str:
        """A blob's folder, created by ONE request: its name is a new random id, so there
        is nothing to look up first and no racing writer to settle with. It stays
        *fresh* (known empty but for what this storage wrote) so the blob is written
        without the existence checks either (:meth:`_fresh_names`)."""
        body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        made = self.api.call(f"folder {name}", lambda s: s.files().create(body=body, fields="id"))
        folder_id = str(made["id"])
        with self._lock:
            self._fresh[folder_id] = set()
        return folder_id

    def _fresh_names(self, folder_id: str) -> set[str] | None:
        """What this storage wrote into a fresh blob folder of its own; None if the
        folder is not one (its content must be listed)."""
        with self._lock:
            return self._fresh.get(folder_id)

    def _peer_blob_folder(self, parts: list[str]) -> tuple[str, str] | None:
        """A peer's blob folder ``syftflwr_blobs_{peer}/{app}/{id}`` shared with me: the
        folder named ``id`` OWNED BY ``peer`` (the folders above it are not shared, so
        Drive shows no parent; the id is random and only the peer's own folder counts)."""
        peer = parts[0][len(BLOB_PREFIX) :]
        if len(parts) < 3 or not is_valid_email(peer):
            return None
        q = f"name = {quote(parts[2])} and mimeType = {quote(FOLDER_MIME)} and trashed = false"
        for found in self._query(q, f"the shared blob folder {'/'.join(parts[:3])}"):
            if _owner(found) == peer:
                return str(found["id"]), peer
        return None

    def _remember(self, path: str, folder_id: str, owner: str) -> None:
        with self._lock:
            self._folders[path] = folder_id
            self._owners[path] = owner

    def forget_folder(self, folder: str) -> None:
        """Drop cached ids of ``folder`` and below (it was deleted or is unreachable)."""
        with self._lock:
            for path in [p for p in self._folders if p == folder or p.startswith(folder + "/")]:
                self._folders.pop(path, None)
                self._owners.pop(path, None)

    def owner_of(self, folder: str) -> str:
        top = split_path(folder)[0] if folder else ""
        if not folder or self.is_mine(top):
            return self.me
        return top[len(BLOB_PREFIX) :] if self._is_blobs(top) else self._owners.get(top, "")

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        """Let exactly ``readers`` read ``folder``, a new folder of mine (core's
        :class:`~syftflwr.plugin.SharesFolders`, called before a blob is written into
        it): one ``reader`` grant each, without notification e-mails, all in one batch
        request (per 100 readers)."""
        top = split_path(folder)[0]
        if not self.is_mine(top):
            raise StorageError(
                f"refusing to share {folder}: a participant only shares its own folders "
                "(a bug in the caller)"
            )
        people = [validate_email(r) for r in dict.fromkeys(readers) if r != self.me]
        folder_id = self.folder_id(folder, create=True)
        assert folder_id is not None

        def grant(reader: str) -> Callable[[Any], Any]:
            body = {"type": "user", "role": "reader", "emailAddress": reader}
            return lambda s: s.permissions().create(
                fileId=folder_id, body=body, sendNotificationEmail=False, fields="id"
            )

        if people:
            self.api.batch(f"sharing {folder} with {', '.join(people)}", list(map(grant, people)))

    def _share_outbox(self, folder_id: str, top: str) -> None:
        prefix = f"{OUTBOX_PREFIX}{self.me}_to_"
        recipient = top[len(prefix) :]
        if not top.startswith(prefix) or not is_valid_email(recipient):
            return
        body = {"type": "user", "role": "writer", "emailAddress": recipient}
        self.api.call(
            f"sharing {top} with {recipient}",
            lambda s: s.permissions().create(
                fileId=folder_id, body=body, sendNotificationEmail=False, fields="id"
            ),
        )

    # -- objects -------------------------------------------------------------------------
    def _copies(
        self, path: str, *, create_folder: bool = False
    ) -> tuple[str | None, list[dict[str, Any]]]:
        folder, _, name = path.rpartition("/")
        split_path(path)
        fid = self.folder_id(folder, create=create_folder)
        if fid is None:
            return None, []
        owner = self.owner_of(folder)
        try:
            copies = [c for c in self._children(fid, name) if _owner(c) == owner]
        except DriveNotFoundError:
            self.forget_folder(folder)
            return None, []
        return fid, [c for c in copies if c.get("mimeType") != FOLDER_MIME]

    def _create_file(
        self,
        parent: str,
        name: str,
        data: bytes | memoryview,
        tag: str,
        *,
        chunk: int | None = None,
        resumable_later: bool = True,
    ) -> str:
        """Upload ``data`` as ``name`` into ``parent``, tagged ``tag`` — or with the tag of
        the interrupted upload of the same bytes it continues (returned). ``chunk``: the
        bytes per resumable request (a multiple of 256 KiB), default ``transfer_chunk``.
        ``resumable_later=False``: no later process uploads these bytes to this place (a
        blob), so its session is not recorded (nor its content hashed for the record:
        100 MB, 60 ms, before the first byte)."""
        chunk = chunk or self.transfer_chunk
        if len(data) <= self.transfer_chunk:  # a large multipart upload is refused
            self._create_small(parent, name, data, tag)
            return tag
        body = {"name": name, "parents": [parent], "appProperties": {WRITER_TAG: tag}}
        media = _upload_class()(data, chunk, True)
        what = f"upload of {name}"
        sessions = self.sessions if resumable_later else None
        key = None if sessions is None else sessions.key(parent, name, data)
        record = None if key is None or sessions is None else sessions.take(key)
        with self.api.session() as service:  # one connection for the whole upload
            request = service.files().create(body=body, media_body=media, fields="id")
            if record is not None:
                # googleapiclient's own recovery: ask the session how far it got, go on
                request.resumable_uri, request._in_error_state = record["uri"], True
                tag = record["tag"]
            done = None
            while done is None:
                try:
                    _, done = self.api.retrying(what, lambda: request.next_chunk(num_retries=0))
                except DriveNotFoundError:
                    if record is None:
                        raise
                    log.info("the interrupted upload of %s expired on Drive: starting over", name)
                    return self._create_file(parent, name, data, uuid.uuid4().hex, chunk=chunk)
                if record is None and key is not None and sessions is not None:
                    record = {"uri": str(request.resumable_uri), "tag": tag}
                    sessions.save(key, record["uri"], tag)
        if key is not None and sessions is not None:
            sessions.drop(key)
        return tag

    def _create_small(self, parent: str, name: str, data: bytes | memoryview, tag: str) -> int:
        """One multipart create of ``data`` (at most ``transfer_chunk``) as ``name`` in
        ``parent``, tagged ``tag``; returns the attempts it took (more than one: an
        earlier attempt may have created a copy its error hid)."""
        body = {"name": name, "parents": [parent], "appProperties": {WRITER_TAG: tag}}
        attempts = 0

        def create(service: Any) -> Any:
            nonlocal attempts
            attempts += 1
            media = _upload_class()(data, self.transfer_chunk, False)
            return service.files().create(body=body, media_body=media, fields="id")

        self.api.call(f"upload of {name}", create)
        return attempts

    def _put_fresh(self, path: str, parts: Sequence[Buffer]) -> bool | None:
        """Write ``path`` into a fresh blob folder of mine by one upload (nobody else
        writes there: its readers are readers); False if this storage wrote it already,
        None if the folder is not a fresh one."""
        split_path(path)
        folder, _, name = path.rpartition("/")
        folder_id = self.folder_id(folder, create=True)
        written = None if folder_id is None else self._fresh_names(folder_id)
        if folder_id is None or written is None:
            return None
        with self._lock:
            if name in written:
                return False
            written.add(name)
        data = _whole(parts)
        try:
            self._create_file(  # a blob: a later process stores a new one, never this
                folder_id,
                name,
                data,
                uuid.uuid4().hex,
                chunk=blob_request(len(data)),
                resumable_later=False,
            )
        except BaseException:
            with self._lock:
                written.discard(name)
            raise
        return True

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        """Create ``path`` unless it exists: Drive has no create-if-absent, so the copy
        created first wins (a later one is deleted by its writer). A small object is
        created without a look first (the check after settles it: one call less per
        message); a large one is looked for first, to spare a useless upload."""
        fresh = self._put_fresh(path, parts)
        if fresh is not None:
            return fresh
        data = _join(parts)
        fid: str | None
        if len(data) <= self.transfer_chunk:
            fid = self._parent_id(path)
        else:
            fid, copies = self._copies(path, create_folder=True)
            if copies:
                return False
        assert fid is not None
        name = path.rpartition("/")[2]
        tag = self._create_file(fid, name, data, uuid.uuid4().hex)
        return self._settle_ours(path, tag)

    def _parent_id(self, path: str) -> str:
        """The id of the folder ``path`` goes into, made if missing (no look for ``path``)."""
        split_path(path)
        fid = self.folder_id(path.rpartition("/")[0], create=True)
        assert fid is not None
        return fid

    def _settle_ours(self, path: str, tag: str) -> bool:
        """After creating ``path`` tagged ``tag``: whether our copy is the one that counts
        (the oldest); our other copies, or all of ours if another's is older, deleted."""
        _, copies = self._copies(path)
        if not copies:  # deleted right away by someone: we did create it
            return True
        if (copies[0].get("appProperties") or {}).get(WRITER_TAG) == tag:
            for copy in copies[1:]:
                if (copy.get("appProperties") or {}).get(WRITER_TAG) == tag:
                    self._delete_id(str(copy["id"]), path)
            return True
        for copy in copies:
            if (copy.get("appProperties") or {}).get(WRITER_TAG) == tag:
                self._delete_id(str(copy["id"]), path)
        return False

    def put_new(self, path: str, parts: Sequence[Buffer]) -> None:
        """Create ``path``, a name nobody wrote before (core's :class:`PutsNew`): one
        create, no check after — unless the create was retried (a first attempt may
        have created a copy its error hid), then settled as :meth:`put_if_absent` does."""
        data = _join(parts)
        if len(data) > self.transfer_chunk:  # a resumable upload: the usual way
            if not self.put_if_absent(path, [data]):  # (joined once)
                raise StorageError(f"{path} already exists")
            return
        name, tag = path.rpartition("/")[2], uuid.uuid4().hex
        attempts = self._create_small(self._parent_id(path), name, data, tag)
        if attempts > 1 and not self._settle_ours(path, tag):
            raise StorageError(f"{path} already exists")

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        if self._put_fresh(path, parts):
            return
        fid, _ = self._copies(path, create_folder=True)
        assert fid is not None
        tag = self._create_file(fid, path.rpartition("/")[2], _join(parts), uuid.uuid4().hex)
        _, copies = self._copies(path)
        for copy in copies:
            if (copy.get("appProperties") or {}).get(WRITER_TAG) != tag:
                self._delete_id(str(copy["id"]), path)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        _, copies = self._copies(path)
        if not copies:
            return None
        file_id, size = str(copies[0]["id"]), int(copies[0].get("size") or 0)
        check_max_size(path, size, max_size)
        try:
            data = self.download(file_id, size, path)
        except DriveNotFoundError:
            return None
        check_max_size(path, total_size([data]), max_size)
        return data

    def read_head(self, path: str, size: int) -> tuple[Buffer, int] | None:
        """The first ``size`` bytes and the size of ``path`` (core's optional storage
        method): a short file in one download, a long one's head in a ranged one."""
        _, copies = self._copies(path)
        if not copies:
            return None
        file_id, total = str(copies[0]["id"]), int(copies[0].get("size") or 0)
        try:
            if total <= size:
                data = self.download(file_id, total, path)
                return data, memoryview(data).nbytes

            def ranged(s: Any) -> Any:
                request = s.files().get_media(fileId=file_id)
                request.headers["range"] = f"bytes=0-{size - 1}"
                return request

            return bytes(self.api.call(path, ranged)), total
        except DriveNotFoundError:
            return None

    def download(self, file_id: str, size: int, what: str) -> Buffer:
        """The content of ``file_id``: one request up to ``transfer_chunk``, else ranged
        requests into one preallocated buffer."""
        if size <= self.transfer_chunk:
            return bytes(self.api.call(what, lambda s: s.files().get_media(fileId=file_id)))
        buf = bytearray(size)
        pos = 0
        while pos < size:
            end = min(pos + self.transfer_chunk, size) - 1

            def ranged(s: Any, start: int = pos, stop: int = end) -> Any:
                request = s.files().get_media(fileId=file_id)
                request.headers["range"] = f"bytes={start}-{stop}"
                return request

            chunk = self.api.call(what, ranged)
            if len(chunk) != end - pos + 1:
                raise StorageError(
                    f"{what} changed while it was downloaded (got {len(chunk)} bytes at "
                    f"offset {pos}); it will be read again on the next arrival"
                )
            buf[pos : end + 1] = chunk
            pos = end + 1
        return buf

    def _list_top(self) -> list[str]:
        names = {str(c["name"]) for c in self._children(self.root_id()) if _owner(c) == self.me}
        q = (
            f"name contains {quote(OUTBOX_PREFIX)} and mimeType = {quote(FOLDER_MIME)} "
            "and trashed = false"
        )
        for folder in self._query(q, "folders shared with me"):
            name, owner = str(folder["name"]), _owner(folder)
            if owner != self.me and name == f"{OUTBOX_PREFIX}{owner}_to_{self.me}":
                names.add(name)
        return sorted(names)

    def delete(self, path: str) -> None:
        _, copies = self._copies(path)
        for copy in copies:
            self._delete_id(str(copy["id"]), path)

    def _delete_id(self, file_id: str, what: str) -> None:
        with contextlib.suppress(DriveNotFoundError):
            self.api.call(f"deleting {what}", lambda s: s.files().delete(fileId=file_id))

    def makedirs(self, folder: str) -> None:
        self.folder_id(folder, create=True)

    def list(self, folder: str) -> list[str]:
        if folder == "":
            return self._list_top()
        fid = self.folder_id(folder)
        if fid is None:
            return []
        owner = self.owner_of(folder)
        try:
            children = self._children(fid)
        except DriveNotFoundError:
            self.forget_folder(folder)
            return []
        return sorted({str(c["name"]) for c in children if _owner(c) == owner})
