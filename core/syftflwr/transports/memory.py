"""The ``memory`` transport: participants in ONE Python process exchange envelopes
through an in-process broker. Thread-safe; used by tests and ``simulate --threads``.

Written like any plugin (it imports only :mod:`syftflwr.plugin`), it declares itself
``in_process_only``, so it is never picked for ``run`` or for
multi-process work. Bodies are copied on send, as a real transport would, so a caller
mutating its buffer after sending cannot change what the peer receives.

It shares objects (``shares_objects``): a blob is kept once per sender in the broker and
readable by the recipients it was stored for, as a real transport's permissions would
have it (:class:`~syftflwr.plugin.SharesBlobs`, :class:`~syftflwr.plugin.ReadsBlobs`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from syftflwr.plugin import (
    BaseEvents,
    BaseRPC,
    BlobContent,
    BlobRef,
    Buffer,
    Capabilities,
    Detection,
    Drained,
    MessageRejectedError,
    OptionSpec,
    ReportsPickups,
    Request,
    RequestHandle,
    Response,
    TransportContext,
    TransportInfo,
    blob_gone,
    blob_parts,
    check_blob_readable,
    hookimpl,
    new_blob_ref,
)

NAME = "memory"
CAPABILITIES = Capabilities(notifies_arrivals=True, in_process_only=True, shares_objects=True)
OPTIONS = (
    OptionSpec(
        "namespace",
        "str",
        "Brokers are per namespace: participants must share one to see each other.",
        default="default",
    ),
)


@dataclass(frozen=True)
class StoredBlob:
    """One blob in a broker: the stored bytes and who may read them."""

    data: bytes
    readers: frozenset[str]
    expires_at: float | None


class Broker:
    """Mailboxes of one namespace: pending requests per (recipient, app), responses by
    id, blobs by (sender, app, name)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.requests: dict[tuple[str, str], deque[Request]] = {}
        self.responses: dict[str, Response] = {}
        self.public_keys: dict[tuple[str, str, str], bytes] = {}
        """(owner, reader, app) -> published public-key record (see :class:`MemoryKeys`)."""
        self.blobs: dict[tuple[str, str, str], StoredBlob] = {}
        """(sender, app, name) -> a stored blob (tests count them: one per push)."""
        self._rpcs: list[MemoryRPC] = []

    def post_request(self, request: Request) -> None:
        with self.cond:
            self.requests.setdefault((request.recipient, request.app), deque()).append(request)
            self.cond.notify_all()

    def take_request(self, recipient: str, app: str, stopped: threading.Event) -> Request | None:
        with self.cond:
            while not stopped.is_set():
                queue = self.requests.get((recipient, app))
                if queue:
                    request = queue.popleft()
                    listeners = list(self._rpcs)
                    break
                self.cond.wait(0.5)
            else:
                return None
        for rpc in listeners:  # picked up (each RPC role ignores ids it did not send)
            rpc.picked_up(request.id)
        return request

    def post_response(self, response: Response) -> None:
        with self.cond:
            self.responses[response.id] = response
            listeners = list(self._rpcs)
            self.cond.notify_all()
        for rpc in listeners:
            rpc.notify_arrival()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def attach(self, rpc: MemoryRPC) -> None:
        with self.cond:
            self._rpcs.append(rpc)

    def detach(self, rpc: MemoryRPC) -> None:
        with self.cond:
            if rpc in self._rpcs:
                self._rpcs.remove(rpc)


_BROKERS: dict[str, Broker] = {}
_BROKERS_LOCK = threading.Lock()


def broker(namespace: str) -> Broker:
    with _BROKERS_LOCK:
        return _BROKERS.setdefault(namespace, Broker())


def reset(namespace: str | None = None) -> None:
    """Forget every mailbox (of one namespace, or all): test isolation."""
    with _BROKERS_LOCK:
        if namespace is None:
            _BROKERS.clear()
        else:
            _BROKERS.pop(namespace, None)


E = TypeVar("E", Request, Response)


def _copy(envelope: E) -> E:
    return replace(envelope, body=bytes(envelope.body), headers=dict(envelope.headers))


@dataclass
class MemoryKeys:
    """The key directory of one participant (core encryption): records in the broker,
    one slot per owner, reader and app."""

    email: str
    broker: Broker
    app: str = ""

    def for_app(self, app: str) -> MemoryKeys:
        return MemoryKeys(self.email, self.broker, app)

    def publish(self, record: bytes, readers: Sequence[str]) -> None:
        with self.broker.cond:
            for reader in readers:
                self.broker.public_keys[(self.email, reader, self.app)] = bytes(record)

    def fetch(self, email: str) -> bytes | None:
        with self.broker.cond:
            return self.broker.public_keys.get((email, self.email, self.app))


@dataclass
class MemoryClient:
    email: str
    namespace: str

    def datasite_url(self, email: str) -> str:
        return f"memory://{self.namespace}/{email}"

    def key_directory(self) -> MemoryKeys:
        return MemoryKeys(self.email, broker(self.namespace))

    def close(self) -> None:
        pass


class MemoryRPC(ReportsPickups, BaseRPC):
    def __init__(self, client: MemoryClient, context: TransportContext) -> None:
        super().__init__(client, context, CAPABILITIES)
        self.broker = broker(client.namespace)
        self._sent: set[str] = set()
        self.broker.attach(self)

    def _send(self, request: Request) -> None:
        with self.broker.cond:
            self._sent.add(request.id)
        self.broker.post_request(_copy(request))

    def picked_up(self, request_id: str) -> None:
        with self.broker.cond:
            mine = request_id in self._sent
            self._sent.discard(request_id)
        if mine:
            self._report_pickup(request_id)

    def _fetch(self, handle: RequestHandle) -> Response | None:
        with self.broker.cond:
            return self.broker.responses.get(handle.id)

    def _forget(self, handle: RequestHandle) -> None:
        with self.broker.cond:
            self.broker.responses.pop(handle.id, None)
            self._sent.discard(handle.id)

    def put_blob(
        self,
        data: Sequence[Buffer] | BlobContent,
        *,
        app: str,
        recipients: Sequence[str],
        expires_at: float | None,
        on_named: Callable[[BlobRef], None] | None = None,
    ) -> BlobRef:
        """Keep one copy of ``data`` for ``recipients`` (and this participant); stored
        at once, so it is never named before it is stored (``on_named`` unused)."""
        self._check_open()
        data = blob_parts(data)
        ref = new_blob_ref(data, self.context, recipients)
        me = self.client.email
        blob = StoredBlob(b"".join(data), frozenset({*recipients, me}), expires_at)
        with self.broker.cond:
            self.broker.blobs[(me, app, ref.name)] = blob
        return ref

    def drop_blob(self, ref: BlobRef, *, app: str) -> None:
        self._check_open()
        with self.broker.cond:
            self.broker.blobs.pop((self.client.email, app, ref.name), None)

    def _close(self) -> None:
        self.broker.detach(self)


class MemoryEvents(BaseEvents):
    def __init__(self, client: MemoryClient, context: TransportContext) -> None:
        super().__init__(client, context, CAPABILITIES)
        self.broker = broker(client.namespace)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            request = self.broker.take_request(
                self.client.email, self.context.app_name, self.stopped
            )
            if request is None:
                continue
            response = self.dispatch(request)
            if response is not None:
                self.broker.post_response(_copy(response))

    def stop(self) -> None:
        super().stop()
        self.broker.wake()

    def serve_pending(self, timeout: float) -> Drained:
        """Dispatch the requests waiting for this participant now, then return
        (``ServesPending``); those of senders not allowed here stay unread."""
        self._check_open()
        deadline = time.monotonic() + timeout
        allowed = self.allowed_senders()
        key = (self.client.email, self.context.app_name)
        with self.broker.cond:
            waiting = self.broker.requests.pop(key, deque())
        unread: deque[Request] = deque()
        ignored: Counter[str] = Counter()
        while waiting:
            if time.monotonic() >= deadline:
                unread.extend(waiting)
                break
            request = waiting.popleft()
            if allowed is not None and request.sender not in allowed:
                unread.append(request)
                ignored[request.sender] += 1
                continue
            response = self.dispatch(request)
            if response is not None:
                self.broker.post_response(_copy(response))
        with self.broker.cond:
            later = self.broker.requests.get(key, deque())
            self.broker.requests[key] = unread + later
        return Drained(not waiting, dict(ignored))

    def get_blob(self, ref: BlobRef, *, sender: str, app: str) -> bytes:
        """The blob ``sender`` stored for this participant, checked against ``ref``."""
        self._check_open()
        where = check_blob_readable(ref, sender, self.context)
        with self.broker.cond:
            blob = self.broker.blobs.get((sender, app, ref.name))
        if blob is None:
            raise blob_gone(where)
        if self.client.email not in blob.readers:  # what a storage permission would say
            raise MessageRejectedError(f"{where} is not shared with {self.client.email}: refused")
        ref.verify(blob.data, where)
        return blob.data


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="In-process broker for tests and single-process simulation.",
        capabilities=CAPABILITIES,
        options=OPTIONS,
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    return Detection(
        usable=True,
        reason="always available, but only inside one process (simulate --threads, tests)",
        preference=-100,
    )


@hookimpl
def syftflwr_make_client(context: TransportContext) -> MemoryClient:
    return MemoryClient(email=context.require_email(), namespace=str(context.options["namespace"]))


@hookimpl
def syftflwr_make_rpc(client: MemoryClient, context: TransportContext) -> MemoryRPC:
    return MemoryRPC(client, context)


@hookimpl
def syftflwr_make_events(client: MemoryClient, context: TransportContext) -> MemoryEvents:
    return MemoryEvents(client, context)
