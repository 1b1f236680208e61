"""Helpers of the mailbox tests: a local directory storage, a poller, and real mailbox
roles wired the way a file-based transport wires them (no plugin involved)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syftflwr.envelope import Request
from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox import Journal, LocalDirStorage, MailboxEvents, MailboxRPC, Poller
from syftflwr.roles import Handler

AGG = "agg@example.org"
DS1 = "ds1@example.org"
DS2 = "ds2@example.org"
APP = "app"


@dataclass
class Client:
    """The client role of a storage without identity of its own."""

    email: str

    def datasite_url(self, email: str) -> str:
        return email

    def close(self) -> None:
        pass


def context(email: str, state_dir: Path | None = None, **kw: object) -> TransportContext:
    return TransportContext(
        transport="test-mailbox",
        app_name=APP,
        email=email,
        aggregator=AGG,
        datasites=(DS1, DS2),
        state_dir=state_dir,
        **kw,  # type: ignore[arg-type]
    )


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true (a test helper, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@dataclass
class Mailbox:
    """One root, one poller, an aggregator RPC and datasite runners on threads."""

    root: Path
    max_object_size: int | None = None
    grace: float = 0.3
    shares_objects: bool = False
    storage: LocalDirStorage = field(init=False)
    poller: Poller = field(init=False)
    caps: Capabilities = field(init=False)
    events: dict[str, MailboxEvents] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    rpcs: list[MailboxRPC] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.storage = self.make_storage()
        self.poller = Poller(self.storage, interval=0.01, max_interval=0.05)
        self.caps = Capabilities(
            notifies_arrivals=True,
            max_object_size=self.max_object_size,
            shares_objects=self.shares_objects,
        )

    def make_storage(self) -> LocalDirStorage:
        return LocalDirStorage(self.root)

    def rpc(self, email: str = AGG, state_dir: Path | None = None, **kw: object) -> MailboxRPC:
        rpc = MailboxRPC(
            Client(email),
            context(email, state_dir, **kw),
            self.caps,
            storage=self.storage,
            arrivals=self.poller,
            retention_interval=0,
        )
        self.rpcs.append(rpc)
        return rpc

    def serve(
        self,
        email: str,
        handler: Handler,
        *,
        endpoint: str = "echo",
        state_dir: Path | None = None,
        journal: Journal | None = None,
        **kw: object,
    ) -> MailboxEvents:
        events = MailboxEvents(
            Client(email),
            context(email, state_dir),
            self.caps,
            storage=self.storage,
            arrivals=self.poller,
            journal=journal,
            retention_interval=0,
            incomplete_grace=self.grace,
            **kw,  # type: ignore[arg-type]
        )
        events.on_request(endpoint, handler)
        thread = threading.Thread(target=events.run_forever, daemon=True)
        thread.start()
        self.events[f"{email}#{len(self.events)}"] = events
        self.threads.append(thread)
        return events

    def request(self, to: str = DS1, body: bytes = b"ping", endpoint: str = "echo",
                ttl: float = 60, sender: str = AGG) -> Request:  # fmt: skip
        return Request.new(
            sender=sender, recipient=to, app=APP, endpoint=endpoint, body=body, ttl=ttl
        )

    def close(self) -> None:
        for events in self.events.values():
            events.close()
        for thread in self.threads:
            thread.join(10)
        for rpc in self.rpcs:
            rpc.close()
        self.poller.close()
