"""The events role over a mailbox: notice ``{id}.request`` in my inboxes, claim it,
read and verify it, hand it to :meth:`BaseEvents.dispatch`, publish the response, and
journal every step — so no request is processed twice and hostile input never stops
the runner.

Per request (a worker thread; serial endpoints one at a time, in arrival order):

1. the file name must parse as ``{valid id}.request`` — anything else is ignored before
   any read (path-shaped or bad ids get one warning);
2. skip it if the journal says it was handled;
3. claim it: ``{id}.claim`` in MY outbox toward the sender (exactly one runner wins,
   across processes and machines); a claim left by a dead runner of this journal on this
   host is taken over (when a runner starts, or at a running one's next sweep), so a
   crash loses nothing — and if that runner had already published its reply, the
   request is marked answered instead of handled again;
4. read it (reassembling chunks, refusing symlinks, FIFOs and oversized objects) and
   decode it — a truncated object gets ``incomplete_grace`` seconds to complete
   (:mod:`~syftflwr.mailbox.incomplete`), then is rejected;
5. the envelope must match its folder: id, sender (the folder's owner), recipient (me),
   app and endpoint — a forged header is rejected;
6. ``dispatch()`` (allowlist, expiry, size, handler errors -> error replies); a handler
   that cannot handle it yet (:class:`~syftflwr.roles.HandleLater`: its shared blob
   still uploads) gets it again after a delay, read again from step 4 — a request
   withdrawn meanwhile is gone, and dropped;
7. publish the response in my outbox toward the sender
   (:mod:`~syftflwr.mailbox.replies`) and journal it.

Every rejection is one warning naming the request and the reason, an ``error`` reply
when the sender may be answered, and a ``rejected`` journal entry.

What a crashed runner left behind is :mod:`~syftflwr.mailbox.recovery`'s.

A request may name a blob its sender stored once for several recipients: the handler
(core's Flower runner) reads it with :meth:`MailboxEvents.get_blob`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import Request, Response
from syftflwr.errors import (
    MalformedMessageError,
    MessageRejectedError,
    MessageTooLargeError,
    StorageError,
    SyftflwrError,
)
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import chunking
from syftflwr.mailbox.arrivals import ArrivalSource, Subscription
from syftflwr.mailbox.blobs import BlobCache, blob_gone, check_blob_readable
from syftflwr.mailbox.claims import Claims
from syftflwr.mailbox.incomplete import IncompleteRequests
from syftflwr.mailbox.journal import InboundEntry, Journal
from syftflwr.mailbox.layout import (
    OUTBOX_PREFIX,
    ObjectKind,
    Route,
    blob_path,
    discover_senders,
    inbox_routes,
    parse_name,
)
from syftflwr.mailbox.layout import outbox as outbox_folder
from syftflwr.mailbox.profile import NATIVE, WireProfile
from syftflwr.mailbox.recovery import Recovery, reply_may_be_lost
from syftflwr.mailbox.replies import Replies
from syftflwr.mailbox.retention import (
    CLOSE_WAIT,
    DEFAULT_INTERVAL,
    ScheduledTask,
    Scheduler,
    shared_scheduler,
    sweep_served,
)
from syftflwr.mailbox.rpc import ENVELOPE_OVERHEAD
from syftflwr.mailbox.storage import Storage
from syftflwr.roles import BaseEvents, BlobRef, ClientRole, Drained, HandleLater, refusal_kind

log = logging.getLogger("syftflwr.mailbox")

DEFAULT_SERIAL_ENDPOINTS = ("messages",)
"""Flower traffic: one request at a time, in arrival order (a ClientApp run is serial)."""

CLAIM_RETRY_DELAY = 0.25
"""Seconds before a request whose claim could not be journaled is tried again (doubling
with each failure, up to :data:`CLAIM_RETRY_MAX`)."""
CLAIM_RETRY_MAX = 5.0

_WAKE = ("", "")


class MailboxEvents(BaseEvents):
    """:class:`~syftflwr.roles.BaseEvents` over a :class:`~syftflwr.mailbox.storage.Storage`.

    :param capabilities: the effective capabilities (``max_object_size`` chunks replies).
    :param arrivals: reports names in my inbox folders.
    :param journal: the participant's journal (default: :meth:`Journal.for_context`).
    :param workers: threads handling requests of concurrent endpoints.
    :param serial_endpoints: endpoints handled one request at a time, in arrival order.
    :param retention_interval: seconds between sweeps of my delivered/expired replies
        and claims, which also resume requests a dead runner of this journal left
        claimed (0 disables).
    :param incomplete_grace: seconds a truncated request may take to complete.
    """

    defers_requests = True
    """A handler's :class:`~syftflwr.roles.HandleLater` puts its request back: handled
    again after the delay (read from storage again: a withdrawn request is dropped)."""

    def __init__(
        self,
        client: ClientRole,
        context: TransportContext,
        capabilities: Capabilities,
        *,
        storage: Storage,
        arrivals: ArrivalSource,
        journal: Journal | None = None,
        workers: int = 4,
        serial_endpoints: Iterable[str] = DEFAULT_SERIAL_ENDPOINTS,
        retention_interval: float = DEFAULT_INTERVAL,
        incomplete_grace: float = 2.0,
        scheduler: Scheduler | None = None,
        profile: WireProfile = NATIVE,
    ) -> None:
        super().__init__(client, context, capabilities)
        self.storage = storage
        self.arrivals = arrivals
        self.profile = profile
        """The wire profile (``syftflwr.profiles.mailbox_profile(context.profile)``)."""
        self._owns_journal = journal is None
        self.journal = journal if journal is not None else Journal.for_context(context)
        self.workers = max(1, workers)
        self.serial_endpoints = frozenset(serial_endpoints)
        self.retention_interval = retention_interval
        self._scheduler = scheduler
        self.stats: Counter[str] = Counter()
        """answered / rejected / skipped / gone / claimed_elsewhere counts, and the crash
        recoveries: recovered (reply found published), republished (lost reply sent
        again), reprocessed (lost reply recomputed) — observability, tests."""
        self.claims = Claims(storage, self.journal, self.stats)
        self.owner = self.claims.owner
        """Written into claim markers; identifies this runner instance."""
        self.replies = Replies(storage, profile, capabilities, client.email, context.app_name)
        self.recovery = Recovery(self.claims, self.replies)
        self.incomplete: IncompleteRequests[Route] = IncompleteRequests(incomplete_grace)
        self._max_read = context.max_message_size + ENVELOPE_OVERHEAD
        self._queue: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._seen: set[str] = set()
        self._inflight: set[str] = set()
        self._retries: dict[str, tuple[Route, float, int]] = {}
        """Requests whose claim could not be journaled: route, when to retry, failures."""
        self._warned: set[str] = set()
        self._sub: Subscription | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._serial: ThreadPoolExecutor | None = None
        self.blob_cache = BlobCache()
        """The last blobs read (:meth:`get_blob`), as stored."""
        self._drain_until: float | None = None
        """Set while :meth:`serve_pending` runs: when it gives up."""
        self._drained = False

    # -- arrivals ------------------------------------------------------------------------
    def _on_arrival(self, folder: str, name: str) -> None:
        self._queue.put((folder, name))

    def _senders(self) -> list[str]:
        me = self.client.email
        allowed = self.allowed_senders()
        if allowed is not None:  # myself only for `syftflwr doctor`'s loopback
            return sorted(s for s in allowed if s != me or self.serves_self)
        found = discover_senders(self.storage.list(""), me)
        return [*found, me] if self.serves_self else found

    def _refresh_routes(self) -> None:
        wire_app = self.profile.wire_app(self.context.app_name)
        routes = inbox_routes(self.client.email, self._senders(), wire_app, self.handlers)
        new = [r for r in routes if r.folder not in self._routes]
        for route in new:
            self.storage.makedirs(route.reverse().folder)  # my outbox: claims and replies
        with self._lock:
            self._routes.update({r.folder: r for r in new})
        if new and self._sub is not None:
            self._sub.watch([r.folder for r in new])

    # -- serving -------------------------------------------------------------------------
    def _serve(self) -> None:
        with self._lock:  # a run after stop() starts from what storage and journal say
            self._seen.clear()
            self._inflight.clear()
            self._retries.clear()
            self._routes.clear()  # and watches every inbox again: its subscription is new
        self.incomplete = IncompleteRequests(self.incomplete.grace)
        prefix = f"syftflwr-{self.client.email}"
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"{prefix}-worker")
        self._serial = ThreadPoolExecutor(1, thread_name_prefix=f"{prefix}-serial")
        self._sub = self.arrivals.subscribe(self._on_arrival)
        task: ScheduledTask | None = None
        try:
            self._refresh_routes()
            if self.retention_interval > 0 and self._drain_until is None:
                task = (self._scheduler or shared_scheduler()).every(
                    self.retention_interval,
                    self.sweep,
                    name=f"retention of {self.client.email}'s replies",
                )
            while not self.stopped.is_set():
                try:
                    item = self._queue.get(timeout=self._next_timeout())
                except queue.Empty:
                    item = _WAKE
                if item != _WAKE:
                    self._consider(*item)
                self._retry_due()
                if self._drain_until is not None and self._drain_done():
                    break
        finally:
            # Handlers in flight publish their replies; queued requests were not claimed
            # yet and stay in the inbox for the next run.
            self._serial.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True, cancel_futures=True)
            if task is not None:  # a sweep in progress ends before the final one
                task.cancel(wait=CLOSE_WAIT)
                self._final_sweep()
            self._sub.close()
            self._sub = None

    def _next_timeout(self) -> float:
        with self._lock:
            at = min((at for _, at, _ in self._retries.values()), default=math.inf)
        at = min(at, self.incomplete.next_check())
        longest = 1.0 if self._drain_until is None else 0.02  # draining: notice idleness
        return max(0.0, min(longest, at - time.monotonic()))

    # -- one pass ------------------------------------------------------------------------
    def serve_pending(self, timeout: float) -> Drained:
        """Handle every request in my inboxes now, then return
        (:class:`~syftflwr.roles.ServesPending`): watching a folder reports what it
        holds before the loop starts, so "nothing queued, nothing in flight" means all
        of it was handled. No retention sweep runs, and no thread outlives the call."""
        self._check_open()
        with self._lock:
            self._drain_until = time.monotonic() + timeout
            self._drained = False
        try:
            self.run_forever()
        finally:
            with self._lock:
                self._drain_until = None
                complete = self._drained
        return Drained(complete, self._unread_senders())

    def _drain_done(self) -> bool:
        with self._lock:
            if self._queue.empty() and not self._busy():
                self._drained = True
                return True
            return self._drain_until is not None and time.monotonic() >= self._drain_until

    def _unread_senders(self) -> dict[str, int]:
        """Senders that are not allowed here with requests for my app's endpoints in
        their outbox to me: listed, never read."""
        allowed = self.allowed_senders()
        if allowed is None:
            return {}
        me = self.client.email
        wire_app = self.profile.wire_app(self.context.app_name)
        found: dict[str, int] = {}
        for sender in discover_senders(self.storage.list(""), me):
            if sender in allowed:
                continue
            count = 0
            for route in inbox_routes(me, [sender], wire_app, self.handlers):
                for name in self.storage.list(route.folder):
                    parsed = parse_name(name)
                    if parsed is not None and parsed.kind is ObjectKind.REQUEST:
                        count += not parsed.is_part
            if count:
                found[sender] = count
        return found

    def _busy(self) -> set[str]:
        """Requests being handled here, incomplete, or waiting to be claimed again (call
        with the lock held)."""
        return self._inflight | self.incomplete.keys() | set(self._retries)

    def stop(self) -> None:
        super().stop()
        self._queue.put(_WAKE)

    def _warn_once(self, key: str, message: str, *args: object) -> bool:
        """Log ``message`` the first time ``key`` comes up; True if it was logged."""
        with self._lock:
            if key in self._warned:
                return False
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add(key)
        log.warning(message, *args)
        return True

    def _consider(self, folder: str, name: str) -> None:
        with self._lock:
            route = self._routes.get(folder)
        if route is None:
            return
        parsed = parse_name(name)
        if parsed is None:
            if ".request" in name and self._warn_once(
                f"{folder}/{name}",
                "rejected %r in %s: not a valid request name ({id}.request, id of "
                "8-128 letters, digits, '_' or '-'); ignoring it",
                name,
                folder,
            ):
                self.count_refusal("misnamed")
            return
        if parsed.kind is not ObjectKind.REQUEST or parsed.is_part:
            return
        with self._lock:
            if parsed.id in self._inflight:
                return
            retry = parsed.id in self.incomplete  # it changed: maybe complete now
            if parsed.id in self._seen and not retry:
                return
            self._seen.add(parsed.id)
        entry = None if retry else self.journal.state_of(parsed.id)
        if entry is not None and entry.finished:
            if reply_may_be_lost(entry):
                self._submit(route, parsed.id, finished=entry)
            else:
                self.stats["skipped"] += 1
                if entry.cleaned and self._warn_once(
                    f"replayed {parsed.id}",
                    "ignored request %s in %s: it was handled (%s) and its reply removed "
                    "once the request was gone; the same id published again is a replay",
                    parsed.id,
                    folder,
                    entry.state.value,
                ):
                    self.count_refusal("replayed")
            return
        self._submit(route, parsed.id)

    def _submit(self, route: Route, message_id: str, finished: InboundEntry | None = None) -> None:
        with self._lock:
            self._inflight.add(message_id)
        pool = self._serial if route.endpoint in self.serial_endpoints else self._pool
        assert pool is not None
        try:
            pool.submit(self._process, route, message_id, finished)
        except RuntimeError:  # shutting down
            with self._lock:
                self._inflight.discard(message_id)
                self._seen.discard(message_id)

    def _retry_due(self) -> None:
        """Re-check the incomplete requests that are due, and retry the claims that
        could not be journaled."""
        now = time.monotonic()
        with self._lock:
            due = self.incomplete.due(skip=self._inflight)
            for mid, (route, at, failures) in list(self._retries.items()):
                if at <= now and mid not in self._inflight:
                    self._retries[mid] = (route, math.inf, failures)  # in progress
                    due.append((mid, route))
        for mid, route in due:
            self._submit(route, mid)

    def _process(self, route: Route, message_id: str, finished: InboundEntry | None) -> None:
        deferred = False
        try:
            if finished is None or self.recovery.answer_again(route, finished):
                deferred = self._handle(route, message_id)
        except Exception as exc:  # never let one request stop the runner
            log.exception("unexpected failure handling request %s in %s", message_id, route.folder)
            self._fail_claimed(route, message_id, exc)
        finally:
            if not deferred:
                self.incomplete.forget(message_id)
            with self._lock:
                self._inflight.discard(message_id)
                retry = self._retries.get(message_id)
                if retry is not None and retry[1] == math.inf:  # tried again, not released
                    del self._retries[message_id]

    # -- one request ---------------------------------------------------------------------
    def _claim(self, route: Route, message_id: str) -> bool | None:
        """:meth:`Claims.claim`, tried again shortly when the storage or the journal
        fails (a claim that could not be journaled has been given back: any runner may
        take it)."""
        try:
            return self.claims.claim(route, message_id, route.claim_path(message_id))
        except StorageError as exc:
            with self._lock:
                failures = self._retries[message_id][2] + 1 if message_id in self._retries else 1
                delay = min(CLAIM_RETRY_MAX, CLAIM_RETRY_DELAY * 2 ** (failures - 1))
                self._retries[message_id] = (route, time.monotonic() + delay, failures)
            self._queue.put(_WAKE)
            log.warning(
                "request %s: %s; trying again in %.2g s",
                message_id,
                exc,
                delay,
            )
            return None

    def _handle(self, route: Route, message_id: str) -> bool:
        """Handle one request; True if it was deferred as incomplete."""
        recovered = self._claim(route, message_id)
        if recovered is None or (
            recovered and self.recovery.answered_before_crash(route, message_id)
        ):
            return False
        path = route.request_path(message_id)
        try:
            data = chunking.read(
                self.storage, path, max_size=self._max_read, check=self.profile.check_head
            )
        except MessageRejectedError as exc:
            self._reject(route, message_id, str(exc), refusal_kind(exc))
            return False
        except Exception as exc:  # a storage error (a plugin's raw one too): tell the sender
            storage = type(self.storage)  # named: the transport plugin's class
            reason = (
                f"the datasite's storage ({storage.__module__}.{storage.__qualname__}) failed "
                f"to read it: {type(exc).__name__}: {exc}"
            )
            self._reject(route, message_id, reason, "other")
            return False
        if data is None:
            self.journal.gone(message_id)
            self.storage.delete(route.claim_path(message_id))
            self.stats["gone"] += 1
            return False
        try:
            envelope = self.profile.decode(
                data,
                source=path,
                kind=ObjectKind.REQUEST,
                route=route,
                message_id=message_id,
                app=self.context.app_name,
            )
        except MessageRejectedError as exc:
            if self.profile.incomplete(data) and self.incomplete.wait(message_id, route):
                self._queue.put(_WAKE)
                log.debug("request %s is incomplete; waiting for it to complete", path)
                return True
            self._reject(route, message_id, str(exc), refusal_kind(exc))
            return False
        problem = self._mismatch(envelope, route, message_id)
        if problem is not None or not isinstance(envelope, Request):
            self._reject(route, message_id, problem or "not a request", "forged")
            return False
        try:
            response = self.dispatch(envelope)
        except HandleLater as later:  # e.g. its model blob still uploads: ask again then
            with self._lock:
                failures = self._retries[message_id][2] + 1 if message_id in self._retries else 1
                self._retries[message_id] = (route, time.monotonic() + later.delay, failures)
            self._queue.put(_WAKE)
            log.debug("request %s: %s; handling it again in %.2g s", message_id, later,
                      later.delay)  # fmt: skip
            return False
        if response is None:
            self._refused(route, message_id, "refused without a reply (see the runner's log)")
            return False
        kept = self.replies.publish(route, response)
        self.journal.answered(
            message_id, status=response.status, expires_at=envelope.expires_at, reply=kept
        )
        self.stats["answered"] += 1
        return False

    def _mismatch(self, envelope: Request | Response, route: Route, message_id: str) -> str | None:
        if not isinstance(envelope, Request):
            return "the file holds a response, not a request"
        if envelope.id != message_id:
            return f"the file is named {message_id} but the envelope's id is {envelope.id}"
        if envelope.sender != route.sender:
            return (
                f"forged sender: the envelope claims {envelope.sender}, the folder belongs "
                f"to {route.sender}"
            )
        if envelope.recipient != self.client.email:
            return f"addressed to {envelope.recipient}, found in {self.client.email}'s inbox"
        if (self.profile.wire_app(envelope.app), envelope.endpoint) != (route.app, route.endpoint):
            return (
                f"for {envelope.app}/{envelope.endpoint}, found in the folder of "
                f"{route.app}/{route.endpoint}"
            )
        return None

    def _fail_claimed(self, route: Route, message_id: str, exc: BaseException) -> None:
        """A request this runner claimed failed unexpectedly: answer it with an error
        (the requester would otherwise wait out its round), unless finished already."""
        try:
            entry = self.journal.state_of(message_id)
            if entry is None or entry.finished or entry.owner != self.owner:
                return
            reason = f"the datasite could not handle it: {type(exc).__name__}: {exc}"
            self._reject(route, message_id, reason, "other")
        except Exception:
            log.warning("could not answer request %s with its error either", message_id,
                        exc_info=True)  # fmt: skip

    def _reject(self, route: Route, message_id: str, reason: str, kind: str) -> None:
        """Refuse a request before dispatch; ``kind``: one of ``REFUSAL_KINDS``."""
        self.count_refusal(kind)
        path = route.request_path(message_id)
        log.warning("rejected request %s (%s): %s", message_id, path, reason)
        replied = False
        allowed = self.allowed_senders()
        if allowed is None or route.sender in allowed:
            try:
                self.replies.refuse(route, message_id, reason)
                replied = True
            except Exception as exc:  # the storage may be what failed
                log.warning("could not publish the error reply to %s: %s", message_id, exc)
        self._refused(route, message_id, reason, replied=replied)

    def _refused(self, route: Route, message_id: str, reason: str, replied: bool = False) -> None:
        """Journal a refusal (``replied``: with an error reply)."""
        self.journal.rejected(
            message_id,
            reason,
            sender=route.sender,
            app=route.app,
            endpoint=route.endpoint,
            owner=self.owner,
            replied=replied,
        )
        self.stats["rejected"] += 1

    # -- shared blobs ----------------------------------------------------------------------
    def get_blob(self, ref: BlobRef, *, sender: str, app: str) -> bytes:
        """The blob ``sender`` stored and ``ref`` names, read from ``sender``'s blob
        folder at most ``ref.size`` bytes (itself at most ``max_message_size``) and
        verified against ``ref``; served from :attr:`blob_cache` when several requests
        name it."""
        self._check_open()
        where = check_blob_readable(ref, sender, self.context)
        cached = self.blob_cache.get(sender, app, ref.sha256)
        if cached is not None and len(cached) == ref.size:
            return cached
        path = blob_path(sender, self.profile.wire_app(app), ref.name)
        try:
            data = chunking.read(self.storage, path, max_size=ref.size)
        except MessageTooLargeError:
            raise MalformedMessageError(
                f"{where} is larger than the {ref.size:,} bytes its message says: refused"
            ) from None
        except MalformedMessageError as exc:  # a damaged chunked blob, or one being dropped
            folder, _, name = path.rpartition("/")
            if name not in self.storage.list(folder):
                raise blob_gone(where) from None
            raise MalformedMessageError(f"{where}: {exc}") from None
        if data is None:
            raise blob_gone(where)
        ref.verify(data, where)
        blob = data if isinstance(data, bytes) else bytes(data)
        self.blob_cache.put(sender, app, ref.sha256, blob)
        return blob

    # -- retention -----------------------------------------------------------------------
    def _final_sweep(self) -> None:
        """On stop: clean up what is already delivered, so a short run leaves little."""
        try:
            self._sweep()
        except SyftflwrError as exc:
            log.warning("final retention sweep of %s failed: %s", self.client.email, exc)

    def sweep(self) -> int:
        """Delete my replies and claims whose request is gone or expired; pick up new
        inboxes (when senders are discovered) and warn once about foreign ones."""
        if self.stopped.is_set():
            return 0
        return self._sweep()

    def _sweep(self) -> int:
        self._resume_orphans()
        self._check_foreign_inboxes()
        if self.allowed_senders() is None:
            self._refresh_routes()
        with self._lock:
            routes = list(self._routes.values())
            busy = self._busy()
        removed = 0
        present: set[str] = set()
        for route in routes:
            outbox = self.storage.list(route.reverse().folder)  # first: see sweep_served
            names = self.storage.list(route.folder)
            present.update(p.id for p in map(parse_name, names) if p is not None)
            removed += sweep_served(
                self.storage,
                route,
                self.journal,
                skew=self.context.clock_skew,
                busy=busy,
                inbox_names=names,
                outbox_names=outbox,
            )
        with self._lock:
            self._seen &= present | busy
        self.claims.prune()
        return removed

    def _resume_orphans(self) -> None:
        """Requests claimed by a runner of this journal that has died since — journaled,
        or seen live and never journaled: queue them again (their arrival was announced
        once, and a runner that backed off from the live claim will not hear of them
        again); ``_claim`` takes them over."""
        with self._lock:
            routes = {(r.sender, r.app, r.endpoint): r for r in self._routes.values()}
            busy = self._busy()
        orphans = self.claims.orphans(routes, busy)
        for message_id, route in orphans:
            with self._lock:
                self._seen.discard(message_id)
            self._queue.put((route.folder, f"{message_id}.{ObjectKind.REQUEST.value}"))

    def _check_foreign_inboxes(self) -> None:
        """Warn once per sender that is not allowed here yet writes to me for this app.
        Its outbox may hold other apps' folders (the jobs endpoint's, another
        federation's): those are not this runner's business."""
        allowed = self.allowed_senders()
        if allowed is None:
            return
        me = self.client.email
        app = self.profile.wire_app(self.context.app_name).split("/")[0]
        for sender in discover_senders(self.storage.list(""), me):
            if sender not in allowed and app in self.storage.list(outbox_folder(sender, me)):
                self._warn_once(
                    f"foreign:{sender}",
                    "ignoring %s%s_to_%s: %s is not an allowed sender for %s (allowed: %s)",
                    OUTBOX_PREFIX,
                    sender,
                    me,
                    sender,
                    me,
                    ", ".join(sorted(allowed)),
                )

    def _close(self) -> None:
        self.claims.close()
        if self._owns_journal:
            self.journal.close()


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
