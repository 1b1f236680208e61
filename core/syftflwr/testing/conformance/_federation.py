"""A small federation over the transport under test: contexts, roles, serving threads,
and handlers that record what they saw. Every conformance test builds on it."""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from syftflwr.envelope import Buffer, Request, Response
from syftflwr.info import Capabilities, TransportContext
from syftflwr.registry import Transport
from syftflwr.roles import ClientRole, EventsRole, Handler, RequestHandle, RPCRole

AGGREGATOR = "aggregator@conformance.example"
DATASITES = ("ds1@conformance.example", "ds2@conformance.example")
DS1, DS2 = DATASITES
STRANGER = "stranger@conformance.example"
"""Not part of the federation: its requests must never reach a handler."""
APP = "conformance"
ENDPOINT = "echo"

ContextFactory = Callable[[str], TransportContext]
"""What a transport author provides: ``email -> TransportContext`` for this transport.
The suite then sets ``app_name``, ``aggregator`` and ``datasites`` (and per-test fields
such as ``clock_skew``) with :func:`dataclasses.replace`."""


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes: reordered or repeated chunks show up."""
    return random.Random(seed).randbytes(size)


class Recorder:
    """A handler wrapper that records every request it was given (thread-safe)."""

    def __init__(self, reply: Callable[[Request], Response | Buffer] | None = None) -> None:
        self._reply = reply or (lambda request: bytes(request.body))
        self._lock = threading.Lock()
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Response | Buffer:
        with self._lock:
            # keep a private copy: the body may be a view into a transport's buffer
            self.requests.append(dataclasses.replace(request, body=bytes(request.body)))
        return self._reply(request)

    @property
    def ids(self) -> Counter[str]:
        with self._lock:
            return Counter(r.id for r in self.requests)

    def count(self, message_id: str) -> int:
        return self.ids[message_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self.requests)


@dataclasses.dataclass
class Server:
    """One events role serving in a thread."""

    email: str
    events: EventsRole
    thread: threading.Thread
    handlers: Mapping[str, Handler]
    errors: list[BaseException] = dataclasses.field(default_factory=list)

    def stop(self, timeout: float) -> None:
        """Stop serving and close the role; the thread must end."""
        self.events.stop()
        self.thread.join(timeout)
        self.events.close()
        if self.thread.is_alive():
            raise AssertionError(
                f"the events role of {self.email} kept running {timeout:g}s after stop(): "
                "run_forever() must return promptly once stop() is called (from any thread)"
            )


class Federation:
    """The aggregator, two datasites and a stranger over the transport under test."""

    def __init__(
        self,
        transport: Transport,
        make_context: ContextFactory,
        *,
        timeout: float,
        settle: float,
    ) -> None:
        self.transport = transport
        self.make_context = make_context
        self.timeout = timeout
        self.settle = settle
        self._closables: list[Any] = []
        self._servers: list[Server] = []
        self._rpcs: dict[str, RPCRole] = {}

    # -- building --------------------------------------------------------------------------
    def context(self, email: str | None, **overrides: Any) -> TransportContext:
        base = self.make_context(email or AGGREGATOR)
        fields: dict[str, Any] = {
            "app_name": APP,
            "aggregator": AGGREGATOR,
            "datasites": DATASITES,
            "email": email,
        }
        return dataclasses.replace(base, **{**fields, **overrides})

    def client(self, email: str, **overrides: Any) -> ClientRole:
        context = self.context(email, **overrides)
        client = self.transport.make_client(context)
        self._closables.append(client)
        return client

    def new_rpc(self, email: str = AGGREGATOR, **overrides: Any) -> RPCRole:
        """A fresh RPC role (closed with the federation)."""
        context = self.context(email, **overrides)
        client = self.transport.make_client(context)
        self._closables.append(client)
        rpc = self.transport.make_rpc(client, context)
        self._closables.append(rpc)
        return rpc

    def rpc(self, email: str = AGGREGATOR) -> RPCRole:
        """The shared RPC role of ``email`` (built on first use)."""
        if email not in self._rpcs:
            self._rpcs[email] = self.new_rpc(email)
        return self._rpcs[email]

    def events(self, email: str, **overrides: Any) -> EventsRole:
        context = self.context(email, **overrides)
        client = self.transport.make_client(context)
        self._closables.append(client)
        events = self.transport.make_events(client, context)
        self._closables.append(events)
        return events

    def serve(
        self,
        email: str,
        handlers: Handler | Mapping[str, Handler],
        **overrides: Any,
    ) -> Server:
        """Serve ``handlers`` (one for :data:`ENDPOINT`, or ``{endpoint: handler}``) for
        ``email`` in a background thread until the federation closes."""
        table = dict(handlers) if isinstance(handlers, Mapping) else {ENDPOINT: handlers}
        events = self.events(email, **overrides)
        for endpoint, handler in table.items():
            events.on_request(endpoint, handler)
        server = Server(email, events, threading.Thread(), table)

        def run() -> None:
            try:
                events.run_forever()
            except BaseException as exc:  # surfaced by check_servers()
                server.errors.append(exc)

        server.thread = threading.Thread(target=run, name=f"conformance-{email}", daemon=True)
        server.thread.start()
        self._servers.append(server)
        return server

    # -- exchanging --------------------------------------------------------------------------
    def request(
        self,
        recipient: str,
        body: Buffer = b"ping",
        *,
        sender: str = AGGREGATOR,
        endpoint: str = ENDPOINT,
        app: str = APP,
        ttl: float | None = 300.0,
        headers: Mapping[str, str] | None = None,
    ) -> Request:
        return Request.new(
            sender=sender,
            recipient=recipient,
            app=app,
            endpoint=endpoint,
            body=body,
            ttl=ttl,
            headers=headers,
        )

    def collect(
        self, rpc: RPCRole, handles: Sequence[RequestHandle], timeout: float | None = None
    ) -> dict[str, Response]:
        """Wait until every handle has a response (or ``timeout``); ``{id: response}``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        wanted = {h.id: h for h in handles}
        found: dict[str, Response] = {}
        while len(found) < len(wanted):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pending = [h for i, h in wanted.items() if i not in found]
            for response in rpc.wait(pending, timeout=remaining):
                if response.id not in wanted:
                    raise AssertionError(
                        f"wait() returned a response to {response.id}, which was not among "
                        "the handles it was given"
                    )
                found[response.id] = response
        return found

    def roundtrip(
        self, recipient: str, body: Buffer = b"ping", rpc: RPCRole | None = None, **kw: Any
    ) -> Response:
        """Send one request and return its response (fails after the suite's timeout)."""
        rpc = rpc or self.rpc()
        handle = rpc.send(self.request(recipient, body, **kw))
        responses = self.collect(rpc, [handle])
        if handle.id not in responses:
            raise AssertionError(
                f"no response from {recipient} within {self.timeout:g}s (request {handle.id}, "
                f"{memoryview(body).nbytes:,} bytes); is its events role serving?"
            )
        return responses[handle.id]

    def settle_after(self, recipient: str, rpc: RPCRole | None = None) -> None:
        """Let earlier requests to ``recipient`` be processed before a negative assertion:
        a fresh request is answered (so the runner got that far), then a short grace."""
        self.roundtrip(recipient, b"sentinel", rpc=rpc)
        time.sleep(self.settle)

    def check_servers(self) -> None:
        for server in self._servers:
            if server.errors:
                raise AssertionError(
                    f"run_forever() of {server.email} raised {server.errors[0]!r}: an events "
                    "role must keep serving (bad requests become rejections, not crashes)"
                ) from server.errors[0]

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        for server in self._servers:
            server.events.stop()
        for server in self._servers:
            server.thread.join(self.timeout)
        for obj in reversed(self._closables):
            with contextlib.suppress(Exception):  # teardown must not hide the test's failure
                obj.close()
        self._servers.clear()
        self._closables.clear()
        self._rpcs.clear()


def effective_capabilities(role: object, transport: Transport) -> Capabilities:
    """The capabilities a built role works with (a root may differ from the defaults a
    listing shows), else the transport's declared ones."""
    caps = getattr(role, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else transport.capabilities


def distinct(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
