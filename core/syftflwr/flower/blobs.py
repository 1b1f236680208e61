"""Shared model blobs: a broadcast's arrays stored once for all its datasites (issue 20).

Strategies pass one ``ArrayRecord`` object to every message of a push. The Grid's
:class:`BlobShelf` serializes each distinct one (by identity) at least
``blob_threshold`` bytes large ONCE, stores it with the RPC role's
:meth:`~syftflwr.roles.SharesBlobs.put_blob` for exactly the datasites whose messages
use it, and each message's body carries, instead of the arrays, the blob's ref in the
reserved ConfigRecord :data:`BLOBS_RECORD`. The body is sealed per recipient, so the
content key stays secret; the ref's public part (name and SHA-256) also goes in the
request header :data:`BLOBS_HEADER`, which sealing authenticates as associated data.

The next push with the same ``ArrayRecord`` object (``evaluate(r)`` then
``train(r+1)``) reuses the blob while it is held; a blob is dropped once a push no
longer uses it and every message naming it was answered or expired (and all of them
when the Grid closes). The run journal lists them, so ``--resume`` keeps the blobs its
re-attached requests name.

The datasite's runner calls :func:`resolve_blobs` before the ClientApp: the arrays come
back under their names, read through the events role's
:meth:`~syftflwr.roles.ReadsBlobs.get_blob` (size, SHA-256, and when sealed the key and
plaintext hash checked).
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, cast

from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from syftflwr.deadline import OverrunError, call_all_within
from syftflwr.envelope import Request
from syftflwr.errors import BlobGoneError, MalformedMessageError, TransportError
from syftflwr.flower.serde import array_record_parts, decode_array_record
from syftflwr.roles import BlobRef, HandleLater, ReadsBlobs, RPCRole, SharesBlobs, offers

log = logging.getLogger("syftflwr.flower")

BLOBS_RECORD = "syftflwr.blobs"
"""Reserved record name: a ConfigRecord mapping record name -> the JSON of its blob ref."""
BLOBS_HEADER = "syftflwr.blobs"
"""Request header: the public part (``name:sha256``) of every ref the body carries,
sorted, comma-separated; sealing authenticates it as associated data."""
GRACE = 3.0
"""Seconds a ``put_blob`` may overrun the push's limit before the push goes on without it."""
FIRST_STEP = 0.05
"""A reader asks again for a blob not stored yet after at least this many seconds (a
quarter of its request's age)..."""
WAIT_STEP = 1.0
"""...and at most this: a model uploading for a minute costs its reader ~70 reads."""


class BlobJournal(Protocol):
    """Where the Grid records its blobs so a resumed run keeps them (the run journal)."""

    def blob_used(self, ref: BlobRef, message_ids: Sequence[str]) -> None: ...

    def blob_dropped(self, ref: BlobRef) -> None: ...


def reserved_name_error() -> ValueError:
    return ValueError(
        f"a record of this message is named {BLOBS_RECORD!r}, a name syftflwr reserves for "
        "the shared model blobs a message refers to; rename that record"
    )


# --------------------------------------------------------------------------- refs on the wire
def public_part(ref: BlobRef) -> str:
    return f"{ref.name}:{ref.sha256}"


def header_value(refs: Mapping[str, BlobRef]) -> str:
    return ",".join(sorted(public_part(r) for r in refs.values()))


@dataclass(frozen=True)
class Named:
    """A blob ref as one message carries it: where its record was, and until when its
    reader waits for a blob that is not in storage yet (``ready_by``, the sender's
    clock; None: it was stored before the message was sent)."""

    ref: BlobRef
    at: int
    ready_by: float | None = None


def ref_json(named: Named) -> str:
    """The ref as the sealed body carries it (key base64), where its record was, and
    until when to wait for it."""
    ref = named.ref
    doc: dict[str, object] = {
        "name": ref.name,
        "sha256": ref.sha256,
        "size": ref.size,
        "at": named.at,
    }
    if ref.key is not None:
        doc["key"] = base64.b64encode(ref.key).decode()
        doc["digest"] = ref.digest
    if named.ready_by is not None:
        doc["ready_by"] = named.ready_by
    return json.dumps(doc, sort_keys=True)


def parse_ref(text: object, record: str) -> Named:
    """The ref of ``record``; MalformedMessageError naming what is wrong."""
    where = f"the blob ref of record {record!r}"
    try:
        doc = json.loads(cast(str, text))
        key = doc.get("key")
        ref = BlobRef(
            name=str(doc["name"]),
            sha256=str(doc["sha256"]),
            size=int(doc["size"]),
            key=base64.b64decode(key, validate=True) if key is not None else None,
            digest=str(doc["digest"]) if key is not None else None,
        )
        ready_by = doc.get("ready_by")
        named = Named(ref, int(doc["at"]), None if ready_by is None else float(ready_by))
    except (TypeError, ValueError, KeyError, AttributeError, binascii.Error) as exc:
        raise MalformedMessageError(f"{where} is unreadable ({exc})") from None
    return named


def with_refs(content: RecordDict, refs: Mapping[str, Named]) -> RecordDict:
    """``content`` with the records in ``refs`` replaced by :data:`BLOBS_RECORD`."""
    out = RecordDict()
    for key, record in content.items():
        if key not in refs:
            out[key] = record
    out[BLOBS_RECORD] = ConfigRecord({k: ref_json(n) for k, n in refs.items()})
    return out


# --------------------------------------------------------------------------- datasite side
def resolve_blobs(
    content: RecordDict,
    request: Request,
    events: object,
    *,
    clock_skew: float = 30.0,
) -> RecordDict:
    """``content`` with every blob ref replaced by its ArrayRecord, in its place.

    A blob its sender named while it still uploaded (the ref's ``ready_by``) and not
    stored yet raises :class:`~syftflwr.roles.HandleLater` until then (at most until the
    request expires, ``clock_skew`` allowed): the events role hands the request back
    after :data:`FIRST_STEP` to :data:`WAIT_STEP` seconds, unless it was withdrawn.

    :raises MalformedMessageError: (or the sealed role's EncryptionError/DecryptionError)
        a ref that is unreadable, not the one the authenticated header names, gone,
        altered, or sealed while this datasite runs without encryption — the text names
        the blob and the reason.
    """
    record = content[BLOBS_RECORD]
    if not isinstance(record, ConfigRecord):
        raise MalformedMessageError(f"record {BLOBS_RECORD!r} is not a ConfigRecord")
    refs = {name: parse_ref(text, name) for name, text in record.items()}
    twice = sorted(set(refs) & set(content.keys()))
    if twice:
        raise MalformedMessageError(
            f"record {twice[0]!r} is both in the message and in a shared blob: refused"
        )
    if request.headers.get(BLOBS_HEADER, "") != header_value({k: n.ref for k, n in refs.items()}):
        raise MalformedMessageError(
            f"the blob refs of request {request.id} do not match its {BLOBS_HEADER!r} header: "
            "altered in storage; refused"
        )
    if not offers(events, ReadsBlobs):
        raise MalformedMessageError(
            "this message names shared blobs, but this datasite's transport cannot read them "
            "(its events role has no get_blob)"
        )
    reader = cast(ReadsBlobs, events)
    arrays: dict[str, ArrayRecord] = {}
    for name, named in refs.items():
        until = named.ready_by
        if until is not None and request.expires_at is not None:
            until = min(until, request.expires_at)
        if until is not None:
            until += clock_skew
        data = _read_blob(reader, named.ref, request, until)
        try:
            arrays[name] = decode_array_record(data)
        except MalformedMessageError as exc:
            raise MalformedMessageError(
                f"blob {named.ref.name} from {request.sender}: {exc}"
            ) from None
    rest = [(k, v) for k, v in content.items() if k != BLOBS_RECORD]
    order = sorted(refs, key=lambda k: refs[k].at)
    out = RecordDict()
    for name in order:  # each back at its position among the others
        rest.insert(min(refs[name].at, len(rest)), (name, arrays[name]))
    for key, value in rest:
        out[key] = value
    return out


def _read_blob(reader: ReadsBlobs, ref: BlobRef, request: Request, until: float | None) -> bytes:
    """``reader.get_blob``; a blob not stored yet while ``until`` (wall clock) has not
    passed: :class:`~syftflwr.roles.HandleLater`, sooner for a young request."""
    try:
        return reader.get_blob(ref, sender=request.sender, app=request.app)
    except BlobGoneError:
        now = time.time()
        if until is None or now >= until:
            raise
    age = now - request.created_at if request.created_at is not None else 0.0
    delay = min(WAIT_STEP, max(FIRST_STEP, age / 4))
    raise HandleLater(f"blob {ref.name} from {request.sender} is not stored yet (its sender "
                      f"named it while it uploads; waiting up to {until - now:.0f}s)",
                      delay)  # fmt: skip


# --------------------------------------------------------------------------- aggregator side
@dataclass(eq=False)
class _Held:
    """A blob this Grid stored and has not dropped."""

    ref: BlobRef
    record: ArrayRecord | None
    """The ArrayRecord stored (kept, so its identity stays valid); None: from a stopped run."""
    recipients: frozenset[str]
    expires_at: float
    users: set[str] = field(default_factory=set)
    """Pending messages naming it."""
    current: bool = True
    """Used by the latest push."""
    ready_by: float | None = None
    """Still uploading: until when its readers wait for it (a push reusing it says so)."""


@dataclass
class Use:
    """One message of a push: which datasite, until when, and its content."""

    message_id: str
    email: str
    content: RecordDict
    expires_at: float


@dataclass
class Planned:
    """What :meth:`BlobShelf.plan` decided for one message."""

    refs: dict[str, Named] = field(default_factory=dict)
    error: Exception | None = None
    """Storing one of its blobs failed: the message cannot be sent."""


@dataclass(eq=False)
class _Put:
    """One blob a push stores: named (the transport's ``on_named``, or the ref
    ``put_blob`` returns: the same by contract) while it uploads or once it is stored,
    finished when ``put_blob`` returns or raises."""

    rid: int
    recipients: frozenset[str]
    expires: float
    named: BlobRef | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class _Uploads:
    """The puts of one push still uploading after :meth:`BlobShelf.plan` returned."""

    puts: list[_Put]
    users: dict[int, list[str]]
    """rid -> ids of the messages naming it."""
    thread: threading.Thread


@dataclass
class PushPlan:
    """What :meth:`BlobShelf.plan` decided for one push: a :class:`Planned` per use, and
    the blobs still uploading (for :meth:`BlobShelf.settle`, once the messages went)."""

    planned: list[Planned]
    uploads: _Uploads | None = None


class BlobShelf:
    """The blobs of one Grid: stores, reuses and drops them (see the module docstring).

    :param later: runs housekeeping (a drop) off the ServerApp's thread.
    """

    def __init__(
        self,
        rpc: RPCRole,
        *,
        app: str,
        threshold: int,
        later: Callable[[Callable[[], None]], None],
        journal: BlobJournal | None = None,
        transport: str = "the transport",
    ) -> None:
        if not offers(rpc, SharesBlobs):
            raise TypeError(f"{transport} declares shares_objects but its RPC role has no "
                            "put_blob/drop_blob")  # fmt: skip
        self._rpc = cast(SharesBlobs, rpc)
        self.app = app
        self.threshold = threshold
        self._later = later
        self._journal = journal
        self._transport = transport
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._held: dict[str, _Held] = {}
        self.stored = 0
        """Blobs stored by this Grid (reuses not counted)."""
        self.stored_bytes = 0

    def resumed(self, blobs: Sequence[tuple[BlobRef, Sequence[str]]]) -> None:
        """Hold the blobs a stopped run left (never reused: their ArrayRecord is gone)
        until the messages naming them are done or the Grid closes."""
        with self._lock:
            for ref, message_ids in blobs:
                self._held[ref.name] = _Held(ref, None, frozenset(), float("inf"),
                                             set(message_ids), current=False)  # fmt: skip

    def plan(self, uses: Sequence[Use], limit: float | None) -> PushPlan:
        """Store (or reuse) the blobs of one push; one :class:`Planned` per use.

        Returns once every new blob is named (its messages may go while it uploads:
        their refs say until when to wait for it) or stored or failed; call
        :meth:`settle` with the plan after sending them (pushes may run concurrently:
        each settles its own)."""
        plans = [Planned() for _ in uses]
        records: dict[int, ArrayRecord] = {}
        users: dict[int, list[tuple[int, str]]] = {}  # id(record) -> (use index, key)
        sizes: dict[int, tuple[list[bytes | memoryview], int]] = {}
        for index, use in enumerate(uses):
            for key, record in use.content.items():
                if not isinstance(record, ArrayRecord):
                    continue
                rid = id(record)
                if rid not in sizes:
                    sizes[rid] = cast(tuple[list[bytes | memoryview], int],
                                      array_record_parts(record))  # fmt: skip
                if sizes[rid][1] >= self.threshold:
                    records[rid] = record
                    users.setdefault(rid, []).append((index, key))
        refs: dict[int, tuple[BlobRef, float | None]] = {}
        puts: list[_Put] = []
        with self._lock:
            for rid, record in records.items():
                recipients = frozenset(uses[i].email for i, _ in users[rid])
                until = max(uses[i].expires_at for i, _ in users[rid])
                held = self._reusable(record, recipients, until)
                if held is not None:  # still uploading for an earlier push: wait as it does
                    refs[rid] = (held.ref, held.ready_by)
                else:  # kept one TTL past its first messages, so the next phase reuses it
                    puts.append(_Put(rid, recipients, until + max(0.0, until - time.time())))
        bound = None if limit is None else limit + GRACE
        ready_by = None if bound is None else time.time() + bound
        thread = self._start(puts, sizes, bound) if puts else None
        failed: dict[int, Exception] = {}
        uploading: list[_Put] = []
        with self._changed:  # until each is named, stored or failed
            self._changed.wait_for(lambda: all(p.named or p.done for p in puts))
            for put in puts:
                ref = put.named
                if ref is not None and put.error is None:
                    waits = not put.done  # its messages go while it uploads
                    until_ready = (ready_by or put.expires) if waits else None
                    refs[put.rid] = (ref, until_ready)
                    self._held[ref.name] = _Held(ref, records[put.rid], put.recipients,
                                                 put.expires, ready_by=until_ready)  # fmt: skip
                    if waits:
                        uploading.append(put)
                    else:
                        self.stored += 1
                        self.stored_bytes += ref.size
                else:
                    failed[put.rid] = self._failure(put.error)
        uploads = None
        if uploading:
            assert thread is not None
            uploads = _Uploads(uploading, {p.rid: [uses[i].message_id for i, _ in users[p.rid]]
                                           for p in uploading}, thread)  # fmt: skip
        for rid, pairs in users.items():
            for index, key in pairs:
                if rid in failed:
                    plans[index].error = failed[rid]
                else:
                    ref, until_ = refs[rid]
                    position = list(uses[index].content.keys()).index(key)
                    plans[index].refs[key] = Named(ref, position, until_)
        self._mark(uses, plans)
        return PushPlan(plans, uploads)

    def settle(self, plan: PushPlan) -> dict[str, Exception]:
        """Wait for the blobs :meth:`plan` named while they uploaded; the messages whose
        blob failed after all (the caller withdraws them), with the reason."""
        uploads = plan.uploads
        if uploads is None:
            return {}
        uploads.thread.join()
        failed: dict[str, Exception] = {}
        for put in uploads.puts:  # each named, none finished when plan returned
            ref = put.named
            assert ref is not None and put.done
            with self._lock:
                if put.error is None:
                    self.stored += 1
                    self.stored_bytes += ref.size
                    if ref.name in self._held:
                        self._held[ref.name].ready_by = None
                    continue
                held = self._held.pop(ref.name, None)
            reason = self._failure(put.error)
            log.debug("blob %s failed after it was named: %s", ref.name, reason)
            for message_id in uploads.users.get(put.rid, ()):
                failed[message_id] = reason
            if held is not None and self._journal is not None:  # the transport deleted it
                self._journal.blob_dropped(ref)
        return failed

    def _start(
        self,
        puts: Sequence[_Put],
        sizes: Mapping[int, tuple[list[bytes | memoryview], int]],
        bound: float | None,
    ) -> threading.Thread:
        """Run the ``put_blob`` calls of ``puts`` (within ``bound``) on a thread of
        their own, each recording when it is named and finished."""

        def record(put: _Put, **changes: object) -> None:
            with self._changed:
                for name, value in changes.items():
                    setattr(put, name, value)
                self._changed.notify_all()

        def store(put: _Put) -> BlobRef:
            try:
                ref = self._rpc.put_blob(
                    sizes[put.rid][0],
                    app=self.app,
                    recipients=sorted(put.recipients),
                    expires_at=put.expires,
                    on_named=partial(lambda p, r: record(p, named=r), put),
                )
            except BaseException as exc:
                record(put, error=exc, done=True)
                raise
            record(put, named=ref, done=True)
            return ref

        def run() -> None:
            outcomes = call_all_within([partial(store, p) for p in puts], bound,
                                       name="put_blob", late=self._drop_late)  # fmt: skip
            for put, outcome in zip(puts, outcomes, strict=True):
                if isinstance(outcome.error, OverrunError) and not put.done:
                    record(put, error=outcome.error, done=True)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(run,),
                                  name="syftflwr-blobs", daemon=True)  # fmt: skip
        thread.start()
        return thread

    def _failure(self, error: BaseException | None) -> Exception:
        """What a message whose blob failed is reported with (``BaseException``s that are
        not ``Exception``: re-raised, as before the blob)."""
        if isinstance(error, OverrunError):
            return OverrunError(
                f"{self._transport} did not return from storing the model blob in time"
            )
        if isinstance(error, Exception):
            return error
        if error is not None:
            raise error
        return TransportError(f"{self._transport} neither stored nor named the model blob")

    def _reusable(
        self, record: ArrayRecord, recipients: frozenset[str], until: float
    ) -> _Held | None:
        for held in self._held.values():
            if held.record is record and recipients <= held.recipients and until <= held.expires_at:
                return held
        return None

    def _mark(self, uses: Sequence[Use], plans: Sequence[Planned]) -> None:
        """Note which messages name which blob; drop the ones nothing needs any more."""
        used: dict[str, list[str]] = {}
        for use, plan in zip(uses, plans, strict=True):
            if plan.error is None:
                for entry in plan.refs.values():
                    used.setdefault(entry.ref.name, []).append(use.message_id)
        if not used:  # no model in this push (a query, the stop messages): not a broadcast
            return
        drops: list[_Held] = []
        with self._lock:
            for name, held in self._held.items():
                held.current = name in used
                held.users.update(used.get(name, ()))
            for held in list(self._held.values()):
                if not held.current and not held.users:
                    drops.append(self._held.pop(held.ref.name))
            named = [(self._held[name].ref, ids) for name, ids in used.items()]
        if self._journal is not None:  # before the messages go: a resumed run keeps them
            for ref, ids in named:
                self._journal.blob_used(ref, ids)
        for held in drops:
            self._drop(held.ref)

    def done(self, message_id: str) -> None:
        """``message_id`` was answered, expired or failed: it no longer needs its blobs."""
        drops: list[BlobRef] = []
        with self._lock:
            for held in list(self._held.values()):
                if message_id in held.users:
                    held.users.discard(message_id)
                    if not held.users and not held.current:
                        drops.append(self._held.pop(held.ref.name).ref)
        for ref in drops:
            self._drop(ref)

    def close(self) -> None:
        """Drop every blob still held (the run is over)."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        for h in held:
            self._drop(h.ref)

    @property
    def held(self) -> list[BlobRef]:
        with self._lock:
            return [h.ref for h in self._held.values()]

    def _drop(self, ref: BlobRef) -> None:
        def drop() -> None:
            self._rpc.drop_blob(ref, app=self.app)
            if self._journal is not None:
                self._journal.blob_dropped(ref)

        self._later(drop)

    def _drop_late(self, _index: int, ref: BlobRef) -> None:
        """A put that returned after its push gave up on it: its messages were withdrawn
        (or never sent)."""
        try:
            self._rpc.drop_blob(ref, app=self.app)
        except Exception:
            log.debug("could not drop blob %s", ref.name, exc_info=True)
