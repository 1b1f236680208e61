"""The RPC role over a mailbox: publish ``{id}.request`` into my outbox toward the
recipient, learn from an arrival source when ``{id}.response`` appears in the
recipient's outbox toward me, read and verify it, and delete my request when done.
On a transport that shares objects it also stores blobs once for several recipients
(:meth:`MailboxRPC.put_blob`, in a blob folder of mine shared with exactly them).

Costs stay flat as the federation grows: waiting is driven by arrival reports, and a
fetch for a request this process sent touches storage only after its response was
reported, so an aggregator polling N handles does no I/O for the N-1 still pending.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import MAX_HEADER_SIZE, Buffer, Request, Response
from syftflwr.errors import (
    MalformedMessageError,
    MessageRejectedError,
    StorageError,
    TransportError,
    UnsafeNameError,
)
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import chunking
from syftflwr.mailbox.arrivals import ArrivalSource
from syftflwr.mailbox.blobs import blob_sha256, check_new_blob
from syftflwr.mailbox.journal import Journal
from syftflwr.mailbox.layout import ObjectKind, Route, blob_folder, blob_path, parse_name
from syftflwr.mailbox.profile import NATIVE, WireProfile, refuse_oversized
from syftflwr.mailbox.retention import (
    CLOSE_WAIT,
    DEFAULT_INTERVAL,
    JOURNAL_KEEP,
    Scheduler,
    delete_blob,
    shared_scheduler,
    sweep_blobs,
    sweep_sent,
)
from syftflwr.mailbox.storage import SharesFolders, Storage
from syftflwr.names import new_message_id, validate_message_id
from syftflwr.roles import (
    BaseRPC,
    BlobContent,
    BlobRef,
    ClientRole,
    ReportsPickups,
    RequestHandle,
    blob_parts,
    offers,
)

log = logging.getLogger("syftflwr.mailbox")
T = TypeVar("T")

ENVELOPE_OVERHEAD = 9 + MAX_HEADER_SIZE
"""Bytes an encoded envelope may add to its body (prefix + largest header)."""


@dataclass(frozen=True, slots=True)
class _Sent:
    route: Route
    parts: int


class MailboxRPC(ReportsPickups, BaseRPC):
    """:class:`~syftflwr.roles.BaseRPC` over a :class:`~syftflwr.mailbox.storage.Storage`.

    :param capabilities: the *effective* capabilities for this storage (a remote root
        does not notify, so ``BaseRPC.wait`` polls at its ``poll_interval``).
    :param arrivals: reports ``{id}.response`` names in the folders this role watches
        (the response folder of every recipient with a request in flight).
    :param journal: the participant's journal (default: :meth:`Journal.for_context`).
    :param retention_interval: seconds between sweeps of my expired/forgotten requests;
        0 disables the sweep.
    :param profile: the wire profile (``syftflwr.profiles.mailbox_profile(context.profile)``).
    """

    def __init__(
        self,
        client: ClientRole,
        context: TransportContext,
        capabilities: Capabilities,
        *,
        storage: Storage,
        arrivals: ArrivalSource,
        journal: Journal | None = None,
        retention_interval: float = DEFAULT_INTERVAL,
        scheduler: Scheduler | None = None,
        profile: WireProfile = NATIVE,
    ) -> None:
        super().__init__(client, context, capabilities)
        self.storage = storage
        self.profile = profile
        self._owns_journal = journal is None
        self.journal = journal if journal is not None else Journal.for_context(context)
        self._max_read = context.max_message_size + ENVELOPE_OVERHEAD
        self._lock = threading.Lock()
        self._watch_locks: dict[str, threading.RLock] = {}
        """One per reply folder (a peer and app): watching a new one costs round trips
        on a remote store, which hold up sends to that peer only."""
        self._outstanding: dict[str, _Sent] = {}
        self._by_folder: dict[str, set[str]] = {}
        self._ready: set[str] = set()
        self._blobs: dict[str, int] = {}
        """Blobs stored by this process and not dropped (name -> parts): retention
        leaves them alone."""
        self._sub = arrivals.subscribe(self._on_arrival)
        # A notifying source keeps a peer's response folder watched between rounds
        # (a watch is cheap; re-watching would re-list the folder every round). A
        # polling source stops listing folders with nothing in flight.
        self._linger = capabilities.notifies_arrivals
        self._task = None
        if retention_interval > 0:
            self._task = (scheduler or shared_scheduler()).every(
                retention_interval, self.sweep, name=f"retention of {client.email}'s requests"
            )

    # -- arrivals ------------------------------------------------------------------------
    def _on_arrival(self, folder: str, name: str) -> None:
        parsed = parse_name(name)
        if parsed is not None and parsed.kind is ObjectKind.CLAIM:
            with self._lock:
                tracked = parsed.id in self._outstanding
            if tracked:  # the recipient took my request: it is alive (on_picked_up)
                self._report_pickup(parsed.id)
            return
        if parsed is None or parsed.kind is not ObjectKind.RESPONSE or parsed.is_part:
            return  # parts and foreign files never wake a waiter
        with self._lock:
            tracked = parsed.id in self._outstanding
            if tracked:
                self._ready.add(parsed.id)
        if not tracked:  # a stray, a forgery, or a reply to an earlier run: never read
            log.debug("ignoring %s in %s: no request of this process awaits it", name, folder)
            return
        self.notify_arrival()

    def attach(self, handle: RequestHandle) -> None:
        """Await the response to a request an earlier process of this participant sent
        (a resumed aggregator): tracked and watched as if sent here, and read at once
        by the next ``fetch`` in case it arrived meanwhile."""
        sent = self.journal.sent_state(handle.id)
        self._track(handle.id, self._route(handle), sent.parts if sent else 0, ready=True)

    def _track(self, message_id: str, route: Route, parts: int, *, ready: bool = False) -> str:
        """Await the response to ``message_id``: its folder is watched before the
        request is published, so the response cannot slip past. Returns that folder."""
        back = route.reverse().folder
        with self._watch_lock(back):
            with self._lock:
                self._outstanding[message_id] = _Sent(route, parts)
                if ready:
                    self._ready.add(message_id)
                first = back not in self._by_folder
                self._by_folder.setdefault(back, set()).add(message_id)
            if first:
                self._sub.watch([back])
        return back

    def _watch_lock(self, back: str) -> threading.RLock:
        """Orders the watch and unwatch of ``back`` (a send never publishes before its
        reply folder is watched, a drop never unwatches a folder a send still needs)."""
        with self._lock:
            return self._watch_locks.setdefault(back, threading.RLock())

    def _route(self, handle: RequestHandle | Request) -> Route:
        wire_app = self.profile.wire_app(handle.app)
        return Route(self.client.email, handle.recipient, wire_app, handle.endpoint)

    # -- BaseRPC -------------------------------------------------------------------------
    def _send(self, request: Request) -> None:
        route = self._route(request)
        encoded = self.profile.encode(request)
        size = sum(memoryview(b).nbytes for b in encoded)
        parts = chunking.part_count(size, self.capabilities.max_object_size)
        if parts and not self.profile.chunking:
            refuse_oversized(
                size, self.capabilities.max_object_size, f"request {request.id}", self.profile.name
            )
        back = self._track(request.id, route, parts)
        new = self.journal.sent_state(request.id) is None  # never published by me (PutsNew)
        self.journal.sending(
            request.id,
            recipient=request.recipient,
            app=request.app,
            endpoint=request.endpoint,
            expires_at=request.expires_at,
            parts=parts,
        )
        try:
            published = chunking.publish(
                self.storage,
                route.request_path(request.id),
                encoded,
                max_object_size=self.capabilities.max_object_size,
                exclusive=True,
                new=new,
            )
        except BaseException:
            self._drop(request.id, back)
            self.journal.forgotten(request.id)
            raise
        if not published:
            self._drop(request.id, back)
            raise StorageError(
                f"a request with id {request.id} already exists in {route.folder}; "
                "every request needs a fresh id (build requests with Request.new)"
            )
        if parts:
            self.journal.sent(request.id)
        self._sub.poke()

    def _fetch(self, handle: RequestHandle) -> Response | None:
        with self._lock:
            tracked = handle.id in self._outstanding
            if tracked and handle.id not in self._ready:
                return None  # not reported yet: no I/O
        path = self._route(handle).response_path(handle.id)
        data = None
        try:
            data = chunking.read(
                self.storage, path, max_size=self._max_read, check=self.profile.check_head
            )
            if data is None:
                envelope = None
            else:
                envelope = self.profile.decode(
                    data,
                    source=path,
                    kind=ObjectKind.RESPONSE,
                    route=self._route(handle).reverse(),
                    message_id=handle.id,
                    app=handle.app,
                )
                if not isinstance(envelope, Response):
                    raise MalformedMessageError(f"{path} holds a request, not a response")
        except MessageRejectedError as exc:
            self._ignored(handle)
            partial = data is not None and self.profile.incomplete(data)
            if isinstance(exc, MalformedMessageError) and partial:  # a writer still at work
                log.debug("response %s is incomplete; waiting for the rest", path)
                return None
            raise
        if envelope is None:
            self._ignored(handle)
            return None
        assert isinstance(envelope, Response)
        return envelope

    def _ignored(self, handle: RequestHandle) -> None:
        with self._lock:  # re-read only when a new arrival is reported
            self._ready.discard(handle.id)

    def _forget(self, handle: RequestHandle) -> None:
        route = self._route(handle)
        with self._lock:
            sent = self._outstanding.get(handle.id)
        chunking.delete(
            self.storage, route.request_path(handle.id), parts=None if sent is None else sent.parts
        )
        self.journal.forgotten(handle.id)
        self._drop(handle.id, route.reverse().folder)

    def _drop(self, message_id: str, back: str) -> None:
        with self._watch_lock(back):
            with self._lock:
                self._outstanding.pop(message_id, None)
                self._ready.discard(message_id)
                ids = self._by_folder.get(back)
                last = ids is not None and ids == {message_id} and not self._linger
                if ids is not None:
                    ids.discard(message_id)
                    if last:
                        del self._by_folder[back]
            if last:
                self._sub.unwatch([back])

    # -- shared blobs ------------------------------------------------------------------------
    def put_blob(
        self,
        data: Sequence[Buffer] | BlobContent,
        *,
        app: str,
        recipients: Sequence[str],
        expires_at: float | None,
        on_named: Callable[[BlobRef], None] | None = None,
    ) -> BlobRef:
        """Store ``data`` once in a new blob folder of mine, shared with ``recipients``
        (:class:`SharesFolders`), and journal it first so retention deletes it after a
        crash. The folder is made (and on a storage that does not ``shares_while_writing``,
        shared) while a :class:`BlobContent` is made — sealed — and the hash and, on a
        storage that ``shares_while_writing``, the grants run while it uploads.

        The blob is named (``on_named``) as soon as its hash is known, while it uploads:
        the messages naming it travel beside the upload, and their readers wait for it
        (:class:`~syftflwr.errors.BlobGoneError`). On failure the blob is deleted and
        this raises; its caller withdraws those messages."""
        self._check_open()
        if not self.capabilities.shares_objects:
            raise TransportError(
                f"the {self.context.transport or 'this'} transport cannot share one stored "
                "object with several recipients (its capabilities do not declare "
                "shares_objects): send each recipient its own copy"
            )
        size = check_new_blob(data, self.context, recipients)
        name = new_message_id()
        me = self.client.email
        wire_app = self.profile.wire_app(app)
        folder = blob_folder(me, wire_app, name)
        parts = chunking.part_count(size, self.capabilities.max_object_size)
        with self._lock:  # held before it is journaled: a sweep never sees it unheld
            self._blobs[name] = parts
        self.journal.blob_storing(name, app=app, expires_at=expires_at, parts=parts)
        share = None
        if offers(self.storage, SharesFolders):
            share = partial(cast(SharesFolders, self.storage).share_folder, folder,
                            sorted(set(recipients) - {me}))  # fmt: skip
        beside = getattr(self.storage, "shares_while_writing", False) is True
        try:
            with ThreadPoolExecutor(3, thread_name_prefix="syftflwr-blob") as pool:

                def later(call: Callable[[], T]) -> Future[T]:
                    return pool.submit(contextvars.copy_context().run, call)

                def ready_folder() -> Future[None] | None:
                    self.storage.makedirs(folder)
                    if share is not None and beside:  # grants overlap making and upload
                        return later(share)
                    if share is not None:  # e.g. SyftBox: the permission file first
                        share()
                    return None

                def named_ref(content: Sequence[Buffer]) -> BlobRef:
                    named = BlobRef(name=name, sha256=blob_sha256(content), size=size)
                    if on_named is not None:
                        on_named(named)
                    return named

                readied = later(ready_folder)
                content = blob_parts(data)  # leaving the pool waits for the others
                hashed = later(partial(named_ref, content))
                shared = readied.result()
                published = chunking.publish(
                    self.storage,
                    blob_path(me, wire_app, name),
                    content,
                    max_object_size=self.capabilities.max_object_size,
                    exclusive=True,
                )
                if shared is not None:  # a failed grant fails the blob, as an upload does
                    shared.result()
                ref = hashed.result()
            if not published:  # a random 128-bit name: only a storage fault gets here
                raise StorageError(f"{folder} already holds a blob: not overwritten")
        except BaseException:
            try:
                self._drop_blob(name, app)
            except Exception as exc:  # retention tries again: the journal says forgotten
                log.warning("could not delete the unfinished blob %s: %s", folder, exc)
            raise
        self.journal.blob_stored(ref.name)
        return ref

    def drop_blob(self, ref: BlobRef, *, app: str) -> None:
        """Delete one of my blobs (its parts and everything in its folder); idempotent,
        and works for a blob an earlier process of mine stored (a resumed aggregator)."""
        self._check_open()
        self._drop_blob(validate_message_id(ref.name), app)

    def _drop_blob(self, name: str, app: str) -> None:
        """Journaled as forgotten before the delete: if the delete fails, retention
        tries again."""
        with self._lock:
            parts: int | None = self._blobs.pop(name, None)
        if parts is None:
            entry = self.journal.blob_state(name)
            parts = None if entry is None else entry.parts
        self.journal.blob_forgotten(name)
        delete_blob(self.storage, self.client.email, self.profile.wire_app(app), name, parts)
        self.journal.blob_deleted(name)

    def _close(self) -> None:
        if self._task is not None:  # a sweep in progress ends before the journal closes
            self._task.cancel(wait=CLOSE_WAIT)
        self._sub.close()
        if self._owns_journal:
            self.journal.close()

    # -- retention -----------------------------------------------------------------------
    def sweep(self) -> int:
        """Delete my requests and blobs the journal says are forgotten, expired or
        abandoned."""
        if self._closed:
            return 0
        with self._lock:
            busy = set(self._outstanding)
            held = set(self._blobs)
        removed = 0
        for recipient, app, endpoint in self.journal.outbound_routes():
            try:
                route = Route(self.client.email, recipient, self.profile.wire_app(app), endpoint)
            except UnsafeNameError:
                continue
            removed += sweep_sent(
                self.storage, route, self.journal, skew=self.context.clock_skew, busy=busy
            )
        removed += sweep_blobs(
            self.storage,
            self.client.email,
            self.journal,
            self.profile.wire_app,
            skew=self.context.clock_skew,
            busy=held,
        )
        self.journal.prune(time.time() - JOURNAL_KEEP)
        if removed:
            log.debug("retention removed %d of %s's objects", removed, self.client.email)
        return removed


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
