"""A small directory transport with switchable faults, to prove the conformance suite
catches what it claims to catch (``tests/test_kit.py``). Registered temporarily, never
installed.

Correct behaviour (``fault = "none"``): requests are published atomically (temp file +
``os.replace``) under ``{root}/{recipient}/{app}/{endpoint}/{id}.req``; a runner polls its
folders, keeps a persisted journal of handled ids in ``state_dir`` and publishes
``{root}/{requester}/{app}/responses/{id}.resp`` atomically. Faults:

* ``torn`` — objects are written in place, piece by piece (no atomic publish);
* ``no-journal`` — handled ids are remembered in memory only (lost on restart);
* ``no-dedup`` — a request is recognised by its file, not its id;
* ``no-checks`` — handlers are called directly, skipping ``BaseEvents.dispatch``;
* ``truncate`` — bodies above 1 MiB lose their tail;
* ``deaf-stop`` — ``run_forever`` ignores ``stop()``;
* ``impostor`` — the client reports another identity;
* ``no-keys`` — the client has no ``key_directory()``: it cannot publish public keys, so
  it cannot run with default settings (encryption on).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from syftflwr import hookimpl
from syftflwr.envelope import Request, Response, decode, encode
from syftflwr.errors import MessageRejectedError
from syftflwr.info import Capabilities, Detection, OptionSpec, TransportContext, TransportInfo
from syftflwr.roles import BaseEvents, BaseRPC, RequestHandle

NAME = "faulty"
CAPS = Capabilities(notifies_arrivals=False, poll_interval=0.01, max_poll_interval=0.02)
FAULTS = ("none", "torn", "no-journal", "no-dedup", "no-checks", "truncate", "deaf-stop",
          "impostor", "no-keys")  # fmt: skip


def write(path: Path, data: bytes, *, torn: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if torn:
        with path.open("wb") as f:
            for start in range(0, max(len(data), 1), 128 * 1024):
                f.write(data[start : start + 128 * 1024])
                f.flush()
                time.sleep(0.002)
        return
    tmp = path.parent / f".{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)


@dataclass
class FaultyClient:
    email: str
    root: Path
    fault: str

    def datasite_url(self, email: str) -> str:
        return str(self.root / email)

    def close(self) -> None:
        pass


class KeyedClient(FaultyClient):
    def key_directory(self) -> Any:
        from syftflwr.crypto.directory import StorageKeyDirectory
        from syftflwr.mailbox import LocalDirStorage

        return StorageKeyDirectory(LocalDirStorage(self.root / "keys"), self.email)


class FaultyRPC(BaseRPC):
    client: FaultyClient

    def _send(self, request: Request) -> None:
        if self.client.fault == "truncate" and request.body_size > 2**20:
            request = replace(request, body=bytes(request.body)[: 2**20])
        folder = self.client.root / request.recipient / request.app / request.endpoint
        write(folder / f"{request.id}.req", encode(request), torn=self.client.fault == "torn")

    def _response(self, handle: RequestHandle) -> Path:
        return self.client.root / self.client.email / handle.app / "responses" / f"{handle.id}.resp"

    def _fetch(self, handle: RequestHandle) -> Response | None:
        try:
            data = self._response(handle).read_bytes()
        except FileNotFoundError:
            return None
        envelope = decode(data, source=str(self._response(handle)))
        return envelope if isinstance(envelope, Response) else None

    def _forget(self, handle: RequestHandle) -> None:
        self._response(handle).unlink(missing_ok=True)
        folder = self.client.root / handle.recipient / handle.app / handle.endpoint
        (folder / f"{handle.id}.req").unlink(missing_ok=True)


class FaultyEvents(BaseEvents):
    client: FaultyClient

    def __init__(self, client: FaultyClient, context: TransportContext) -> None:
        super().__init__(client, context, _caps(context))
        self.fault = client.fault
        self.journal = (
            None if context.state_dir is None else Path(context.state_dir) / "faulty-journal"
        )
        self.handled: set[str] = set()
        if self.journal is not None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
        if self.journal is not None and self.journal.exists() and self.fault != "no-journal":
            self.handled = set(self.journal.read_text().split())
        self.lock = threading.Lock()

    def _key(self, path: Path) -> str:
        if self.fault == "no-dedup":
            return f"{path.name}:{path.stat().st_ino}:{path.stat().st_mtime_ns}"
        return path.stem

    def _serve(self) -> None:
        inbox = self.client.root / self.client.email / self.context.app_name
        while not self.stopped.is_set() or self.fault == "deaf-stop":
            for path in sorted(inbox.glob("*/*.req")) if inbox.exists() else []:
                try:
                    key = self._key(path)
                except FileNotFoundError:
                    continue
                if key in self.handled:
                    continue
                self._handle(path, key)
            time.sleep(0.01)

    def _handle(self, path: Path, key: str) -> None:
        self.handled.add(key)
        if self.journal is not None and self.fault != "no-journal":
            with self.journal.open("a") as f:
                f.write(key + "\n")
        try:
            request = decode(path.read_bytes(), source=str(path))
        except MessageRejectedError as exc:  # like a naive runner: answer the "bad" request
            message_id = path.stem
            sender = self.context.aggregator or self.client.email
            response = Response(
                id=message_id, sender=self.client.email, recipient=sender,
                app=self.context.app_name, endpoint=path.parent.name,
                body=f"rejected: {exc}".encode(), status="error",
            )  # fmt: skip
        except FileNotFoundError:
            return
        else:
            if not isinstance(request, Request):
                return
            if self.fault == "no-checks":
                handler = self.handlers.get(request.endpoint)
                if handler is None:
                    return
                result = handler(request)
                response = result if isinstance(result, Response) else request.reply(result)
            else:
                maybe = self.dispatch(request)
                if maybe is None:
                    return
                response = maybe
        folder = self.client.root / response.recipient / response.app / "responses"
        write(folder / f"{response.id}.resp", encode(response), torn=self.fault == "torn")


def _caps(context: TransportContext) -> Capabilities:
    """CAPS with the declared ``max_object_size`` (this transport never needs chunks)."""
    return replace(CAPS, max_object_size=context.options.get("max_object_size"))


def _fault(context: TransportContext) -> str:
    return str(context.options.get("fault") or "none")


@hookimpl
def syftflwr_transport_info() -> TransportInfo:
    return TransportInfo(
        name=NAME,
        description="Test transport with switchable faults.",
        capabilities=CAPS,
        options=(
            OptionSpec("root", "path", "shared directory"),
            OptionSpec("fault", "str", "which fault", default="none", choices=FAULTS),
            OptionSpec("max_object_size", "int", "declared object limit", default=None),
        ),
    )


@hookimpl
def syftflwr_detect(context: TransportContext) -> Detection:
    return Detection(False, "test transport: never auto-selected")


@hookimpl
def syftflwr_make_client(context: TransportContext) -> FaultyClient:
    email = context.require_email()
    if _fault(context) == "impostor":
        email = "impostor@elsewhere.example"
    client = FaultyClient if _fault(context) == "no-keys" else KeyedClient
    return client(email, Path(str(context.options["root"])), _fault(context))


@hookimpl
def syftflwr_make_rpc(client: FaultyClient, context: TransportContext) -> FaultyRPC:
    return FaultyRPC(client, context, _caps(context))


@hookimpl
def syftflwr_make_events(client: FaultyClient, context: TransportContext) -> Any:
    return FaultyEvents(client, context)
