"""The roles: ``<root>/<recipient>/<app>/requests/<id>.req`` and
``<root>/<requester>/<app>/responses/<id>.resp``, published with temp file + os.replace,
claimed with an atomic rename, polled (no notification)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from syftflwr.plugin import (
    BaseEvents,
    BaseRPC,
    MessageRejectedError,
    Request,
    RequestHandle,
    Response,
    decode,
    encode,
)

log = logging.getLogger(__name__)


def publish(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / name)


@dataclass
class TinyClient:
    email: str
    root: Path

    def datasite_url(self, email: str) -> str:
        return str(self.root / email)

    def mailbox(self, email: str, app: str) -> Path:
        return self.root / email / app

    def close(self) -> None:
        pass


class TinyRPC(BaseRPC):
    client: TinyClient

    def _send(self, request: Request) -> None:
        folder = self.client.mailbox(request.recipient, request.app) / "requests"
        publish(folder, f"{request.id}.req", encode(request))

    def _response_path(self, handle: RequestHandle) -> Path:
        return (
            self.client.mailbox(self.client.email, handle.app) / "responses" / f"{handle.id}.resp"
        )

    def _fetch(self, handle: RequestHandle) -> Response | None:
        try:
            data = self._response_path(handle).read_bytes()
        except FileNotFoundError:
            return None
        envelope = decode(data, source=str(self._response_path(handle)))
        return envelope if isinstance(envelope, Response) else None

    def _forget(self, handle: RequestHandle) -> None:
        self._response_path(handle).unlink(missing_ok=True)


class TinyEvents(BaseEvents):
    client: TinyClient

    def _serve(self) -> None:
        inbox = self.client.mailbox(self.client.email, self.context.app_name) / "requests"
        inbox.mkdir(parents=True, exist_ok=True)
        while not self.stopped.is_set():
            for path in sorted(inbox.glob("*.req")):
                self._handle(path)
            self.stopped.wait(self.capabilities.poll_interval)

    def _handle(self, path: Path) -> None:
        claimed = path.with_suffix(".claimed")
        try:
            path.rename(claimed)  # atomic: one runner wins
        except FileNotFoundError:
            return
        try:
            request = decode(claimed.read_bytes(), source=str(path))
            if not isinstance(request, Request):
                raise MessageRejectedError(f"{path} holds a response, not a request")
        except MessageRejectedError as exc:
            log.warning("dropped %s: %s", path, exc)
            claimed.unlink(missing_ok=True)
            return
        response = self.dispatch(request)
        if response is not None:
            folder = self.client.mailbox(request.sender, request.app) / "responses"
            publish(folder, f"{request.id}.resp", encode(response))
        claimed.unlink(missing_ok=True)
