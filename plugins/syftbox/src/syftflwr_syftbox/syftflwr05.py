"""The ``syft-flwr-0.5`` wire profile on SyftBox: syft-flwr 0.5's own request format and
endpoint, through the real syft-rpc (messages) and syft-event (the watcher), so a
syftflwr aggregator and syft-flwr 0.5 datasites on one SyftBox interoperate.

Where the files are (what syft-rpc's ``send``/``reply_to`` use)::

    datasites/{recipient}/app_data/flwr/{app}/rpc/messages/{sender}/{uuid}.request
    datasites/{recipient}/app_data/flwr/{app}/rpc/messages/{sender}/{uuid}.response

Each file is a syft-rpc ``SyftRequest``/``SyftResponse`` as JSON, the body (a Flower
``Message`` protobuf) in base64; encrypted (below) unless ``encrypt = false``. The
libraries' known holes are guarded here rather than inherited:

* every file is published whole (temp file + rename through core's
  :class:`~syftflwr.mailbox.LocalDirStorage`; syft-rpc's ``dump`` writes in place), and a
  file read while its writer is still writing is waited for, never answered (a request
  within ``incomplete_grace``, re-checked and then refused by core's
  :class:`~syftflwr.mailbox.incomplete.IncompleteRequests`, as every events role does);
* a reply is waited for through core's watcher on the response's folder (no 100 ms
  polling of ``SyftFuture.wait``), requests are sent with ``cache=False`` semantics
  (a fresh id each time);
* the events role uses syft-event's ``SyftEvents`` watcher on the ``messages`` endpoint
  with its own callback: any error in it is caught, a dead watcher thread is noticed and
  restarted (or ``run_forever`` raises), and pending files are re-scanned;
* replies go only to ``{own rpc folder}/{sender}/{uuid}.response`` built from the
  validated folder and file name, never from the request's ``url``/``sender``;
* two runners on one datasite never both handle a request: each claims it first through
  core's :class:`~syftflwr.mailbox.claims.Claims` — an exclusive marker in the data dir's
  local state (``.syftflwr/claims/...``) and the participant's journal — so a request
  whose runner died is taken over by exactly one other runner, and one the journal says
  was answered or refused is not handled again.

Encryption (``encrypt = true``, the default) is syft-flwr 0.5's own on SyftBox, so its
datasites (syft-event's auto-decrypt, ``encrypt_reply``) read what is sent and are read:
the body is base64 of the protobuf, sealed by syft-crypto's ``encrypt_message`` (X3DH to
the recipient's DID) and written as its ``EncryptedPayload`` JSON; replies are opened by
``decrypt_message``. Keys and DIDs are read from the local (synced) files only, through
:class:`~syftflwr_syftbox.keys.KeyRing` (never syft-crypto's ``ensure_bootstrap``, which
asks the server). Fail closed: no peer DID within ``key_wait`` -> nothing is written; a
body that is not a payload from that peer to this participant, or does not decrypt, is
refused, never handed on or answered in plaintext. With ``encrypt = false`` an encrypted
payload that arrives is refused the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import queue
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syftflwr.plugin import (
    SYFTFLWR05_ENDPOINT as ENDPOINT,
)
from syftflwr.plugin import (
    SYFTFLWR05_PROFILE as NAME,
)
from syftflwr.plugin import (
    BaseEvents,
    BaseRPC,
    Buffer,
    Capabilities,
    Claims,
    EncryptionError,
    IncompleteRequests,
    Journal,
    LocalArrivals,
    MalformedMessageError,
    MessageRejectedError,
    Request,
    RequestHandle,
    Response,
    Route,
    StorageError,
    TransportContext,
    TransportError,
    is_valid_email,
    read_object,
    refusal_kind,
    refuse_oversized,
    validate_email,
    validate_identifier,
)
from syftflwr.plugin import (
    syftflwr05_wire_app as wire_app,
)

from syftflwr_syftbox.datasite_storage import DATASITES, LOCAL_STATE

if TYPE_CHECKING:
    from syftflwr_syftbox.client import SyftBoxClient
    from syftflwr_syftbox.keys import KeyRing

log = logging.getLogger("syftflwr.syftbox.syftflwr05")

REQUEST_SUFFIX = ".request"
RESPONSE_SUFFIX = ".response"
CLAIMS = f"{LOCAL_STATE}/claims"
"""Claims of requests being handled: local state, never synced or watched."""
RESCAN_INTERVAL = 1.0
"""Seconds between the events role's checks of its watcher and re-scans of pending files
(a safety net: arrivals are normally reported by the watcher at once)."""
SWEEP_INTERVAL = 60.0
"""Seconds between sweeps of the claims of requests their senders have removed."""
MAX_RESTARTS = 5
"""Watcher restarts tolerated within :data:`RESTART_WINDOW` before ``run_forever`` raises."""
RESTART_WINDOW = 60.0
_UUID_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.request$")
_ENCRYPTED_KEYS = {"ek", "ciphertext", "sender", "receiver"}
"""Fields of syft-crypto's ``EncryptedPayload`` JSON."""
SEALED_SIZE = 3
"""A sealed body's file is at most this many times the body (base64 of base64 of base64),
plus :data:`FILE_SLACK`."""
FILE_SLACK = 65536


def syft_url(recipient: str, app: str, endpoint: str) -> str:
    """``syft://{recipient}/app_data/flwr/{app}/rpc/{endpoint}`` (``rpc.make_url``)."""
    validate_identifier(endpoint, "endpoint")
    return f"syft://{validate_email(recipient)}/app_data/{wire_app(app)}/rpc/{endpoint}"


def check_head(head: Buffer, *, source: str) -> None:
    """Refuse a file whose first bytes cannot start a JSON object, before reading it."""
    start = bytes(memoryview(head).cast("B")).lstrip(b" \t\r\n")
    if start and not start.startswith(b"{"):
        raise MalformedMessageError(
            f"{source}: not a syft-rpc JSON message (starts with {start[:8]!r})"
        )


def incomplete(data: Buffer) -> bool:
    """Empty, or JSON cut short: syft-rpc and SyftBox clients write files in place, so a
    reader may see one half-written (as opposed to garbage, refused at once)."""
    view = memoryview(data).cast("B")
    if not view.nbytes:
        return True
    if view[0] != ord("{"):
        return False
    try:
        text = bytes(view).decode("utf-8")
    except UnicodeDecodeError as exc:  # cut inside a character: only at the very end
        return exc.start >= view.nbytes - 3 and exc.reason == "unexpected end of data"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:  # cut short: the parser wanted more at the end
        return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
    except (ValueError, RecursionError):
        return False
    return False


def seal(keys: KeyRing, recipient: str, body: bytes) -> bytes:
    """What syft-flwr 0.5 sends: ``encrypt_message(base64(body))`` as JSON. Waits up to
    ``key_wait`` for the recipient's synced DID, then fails closed (nothing written)."""
    from syft_crypto import encrypt_message

    keys.recipient_key(recipient)  # verified local DID, or MissingPeerKeysError
    try:
        payload = encrypt_message(base64.b64encode(body).decode(), to=recipient, client=keys.client)
    except (OSError, ValueError) as exc:
        raise EncryptionError(f"cannot encrypt for {recipient}: {exc}") from None
    return str(payload.model_dump_json()).encode()


def unseal(keys: KeyRing, sender: str, body: bytes, what: str) -> bytes:
    """The plaintext of a body sealed by :func:`seal` (or upstream) from ``sender`` to this
    participant; anything else is refused (:class:`MessageRejectedError`)."""
    from syft_crypto import EncryptedPayload, decrypt_message

    try:
        payload = EncryptedPayload.model_validate_json(body)
    except ValueError:  # pydantic's ValidationError is one
        raise MessageRejectedError(
            f"{what}: not encrypted (no syft-crypto payload) and encryption is on; refused"
        ) from None
    if payload.sender != sender or payload.receiver != keys.email:
        raise MessageRejectedError(
            f"{what}: sealed by {payload.sender} for {payload.receiver}, expected "
            f"{sender} for {keys.email}; refused"
        )
    try:
        keys.peer_key(sender)  # the sender's DID must be there and signed
    except EncryptionError as exc:
        raise MessageRejectedError(f"{what}: {exc}") from None
    try:
        text = decrypt_message(payload, keys.client)
    except Exception as exc:  # InvalidTag and whatever else the decryption raises
        raise MessageRejectedError(
            f"{what}: does not decrypt ({type(exc).__name__}); refused"
        ) from None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MessageRejectedError(f"{what}: the sealed body is not base64; refused") from None


def rpc_folder(owner: str, app: str, sender: str) -> str:
    """``datasites/{owner}/app_data/flwr/{app}/rpc/messages/{sender}`` (data-dir relative)."""
    return f"{endpoint_folder(owner, app)}/{sender}"


def endpoint_folder(owner: str, app: str) -> str:
    return f"{DATASITES}/{owner}/app_data/{wire_app(app)}/rpc/{ENDPOINT}"


def _looks_encrypted(body: bytes) -> bool:
    """A syft-crypto ``EncryptedPayload`` (JSON with its ciphertext fields)."""
    if not body.startswith(b"{"):
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.keys() >= _ENCRYPTED_KEYS


def _capabilities(client: SyftBoxClient) -> Capabilities:
    settings = client.settings
    return Capabilities(
        notifies_arrivals=settings.watch != "poll",
        poll_interval=settings.poll_interval,
        max_poll_interval=max(settings.max_poll_interval, settings.poll_interval),
        native_encryption=settings.encrypt,
        max_object_size=settings.max_object_size,
        profiles=client.capabilities.profiles,
    )


# --------------------------------------------------------------------------- RPC
class SyftRpc05(BaseRPC):
    """The aggregator's side: syft-rpc requests in the recipients' datasites, replies
    awaited through core's watcher."""

    def __init__(self, client: SyftBoxClient, context: TransportContext) -> None:
        super().__init__(client, context, _capabilities(client))
        self.me = client.email
        self.storage = client.base
        self.keys = client.keys
        self.arrivals = LocalArrivals(
            self.storage,
            mode=client.settings.watch,
            poll_interval=client.settings.poll_interval,
            max_poll_interval=max(client.settings.max_poll_interval, client.settings.poll_interval),
            create_folders=False,
            poller_name=f"syftflwr-syftbox05-poller-{self.me}",
        )
        self._sub = self.arrivals.subscribe(self._arrived)

    def _arrived(self, folder: str, name: str) -> None:
        if name.endswith(RESPONSE_SUFFIX):
            self.notify_arrival()

    def _paths(self, recipient: str, app: str, message_id: str) -> tuple[str, str]:
        stem = str(uuid.UUID(message_id))
        folder = rpc_folder(recipient, app, self.me)
        return f"{folder}/{stem}{REQUEST_SUFFIX}", f"{folder}/{stem}{RESPONSE_SUFFIX}"

    def _send(self, request: Request) -> None:
        from syft_core.url import SyftBoxURL
        from syft_rpc.protocol import SyftMethod
        from syft_rpc.protocol import SyftRequest as WireRequest

        validate_identifier(request.endpoint, "endpoint")
        created = request.created_at
        expires = request.expires_at if request.expires_at is not None else created + 900.0
        body = bytes(memoryview(request.body))
        if self.keys is not None:
            body = seal(self.keys, request.recipient, body)
        wire = WireRequest(
            id=uuid.UUID(request.id),
            sender=self.me,
            url=SyftBoxURL(syft_url(request.recipient, request.app, request.endpoint)),
            body=body or None,
            headers=dict(request.headers),
            created=datetime.fromtimestamp(created, UTC),
            expires=datetime.fromtimestamp(expires, UTC),
            method=SyftMethod.GET,
        )
        data = wire.dumps().encode()
        limit = self.capabilities.max_object_size
        refuse_oversized(len(data), limit, f"request {request.id}", NAME)
        path, _ = self._paths(request.recipient, request.app, request.id)
        # Watch first: a reply written between the publish and the watch is not missed.
        self._sub.watch([path.rpartition("/")[0]])
        self.storage.put(path, [data])

    def _fetch(self, handle: RequestHandle) -> Response | None:
        from pydantic import ValidationError
        from syft_rpc.protocol import SyftResponse as WireResponse

        _, path = self._paths(handle.recipient, handle.app, handle.id)
        limit = SEALED_SIZE * self.context.max_message_size + FILE_SLACK
        data = read_object(self.storage, path, max_size=limit, check=check_head)
        if data is None or incomplete(data):
            return None  # not there yet, or still being written in place
        try:
            wire = WireResponse.loads(bytes(memoryview(data)))
        except (ValidationError, ValueError) as exc:
            raise MalformedMessageError(f"{path}: not a syft-rpc response ({exc})") from None
        body = wire.body or b""
        expected = syft_url(handle.recipient, handle.app, handle.endpoint)
        if str(wire.url) != expected:
            raise MalformedMessageError(f"{path}: reply for {wire.url}, expected {expected}")
        status = int(wire.status_code)
        if self.keys is not None:
            what = f"{path} (status {status})"
            body = unseal(self.keys, handle.recipient, body, what)
        elif _looks_encrypted(body):
            raise MessageRejectedError(
                f"{path}: an encrypted (syft-crypto) reply, and encrypt = false here; "
                "refused rather than handed on unverified"
            )
        response = Response(
            id=wire.id.hex,
            sender=wire.sender,
            recipient=self.me,
            app=handle.app,
            endpoint=handle.endpoint,
            body=body,
            created_at=wire.created.timestamp(),
            expires_at=wire.expires.timestamp(),
            headers=dict(wire.headers),
            status="ok" if status < 400 else "error",
        )
        response.validate()
        return response

    def _forget(self, handle: RequestHandle) -> None:
        """Removes the request (it is this participant's); the reply belongs to the
        datasite that wrote it and stays, as upstream leaves it."""
        request, _ = self._paths(handle.recipient, handle.app, handle.id)
        try:
            self.storage.delete(request)
        except TransportError as exc:
            log.debug("could not remove %s: %s", request, exc)

    def _close(self) -> None:
        self._sub.close()
        self.arrivals.close()


# --------------------------------------------------------------------------- events
class SyftEvents05(BaseEvents):
    """A datasite's side: syft-event's watcher on ``messages``, guarded (module docstring)."""

    def __init__(self, client: SyftBoxClient, context: TransportContext) -> None:
        super().__init__(client, context, _capabilities(client))
        from syft_event import SyftEvents

        self.me = client.email
        self.storage = client.base
        self.keys = client.keys
        self.app = context.app_name
        self.endpoint_folder = endpoint_folder(self.me, self.app)
        self.box = SyftEvents(wire_app(self.app), publish_schema=False, client=client.syft_client())
        self.incomplete: IncompleteRequests[tuple[str, str]] = IncompleteRequests(
            client.settings.incomplete_grace
        )
        """Requests still being written: (sender, name) by ``sender/name``."""
        self._queue: queue.Queue[str] = queue.Queue()
        self._skipped: set[str] = set()  # paths refused for good (warned once)
        self._restarts: list[float] = []
        self.journal = Journal.for_context(context)
        self.claims = Claims(self.storage, self.journal)
        self._next_sweep = 0.0
        self.watcher_restarts = 0

    # -- the watcher ---------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        """syft-event's handler callback: only queues the path; never raises (an error
        escaping here would end the watcher's thread)."""
        try:
            path = event.dest_path or event.src_path
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            self._queue.put(str(path))
        except Exception:
            log.exception("ignored a file event the watcher could not read")

    def _start_watcher(self) -> None:
        from syft_event.handlers import PatternMatchingHandler
        from watchdog.events import (
            FileClosedEvent,
            FileCreatedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )
        from watchdog.observers import Observer

        self.box.obs = Observer()
        self.box.obs.daemon = True
        on_event = self._on_event

        class Handler(PatternMatchingHandler):
            """syft-event's ``RpcRequestHandler`` (``**/*.request``) without its DEBUG
            line per file event (loguru prints it to stderr by default)."""

            def dispatch(self, event: Any) -> None:
                try:  # its pattern matching runs first: nothing may escape into the thread
                    super().dispatch(event)
                except Exception:
                    log.exception("ignored a file event syft-event could not match")

            def on_any_event(self, event: Any) -> None:
                on_event(event)

        self.box.obs.schedule(
            Handler(["**/*.request"]),
            path=str(self.storage.local_path(self.endpoint_folder)),
            recursive=True,
            # a file written in place is complete only at a later modify/close
            event_filter=[FileCreatedEvent, FileMovedEvent, FileModifiedEvent, FileClosedEvent],
        )
        self.box.obs.start()

    def _stop_watcher(self) -> None:
        obs = self.box.obs
        try:
            obs.stop()
            if obs.is_alive():
                obs.join(timeout=5)
        except Exception as exc:  # a watcher that died may not stop cleanly
            log.debug("stopping the watcher: %s", exc)

    def watcher_alive(self) -> bool:
        obs = self.box.obs
        return bool(obs.is_alive() and all(e.is_alive() for e in obs.emitters))

    def _restart_watcher(self) -> None:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            raise TransportError(
                f"syft-event's watcher of {self.endpoint_folder} died {len(self._restarts)} "
                f"times within {RESTART_WINDOW:.0f} s; the datasite stops serving instead of "
                "silently ignoring requests"
            )
        log.error("syft-event's watcher of %s died; restarting it", self.endpoint_folder)
        self._stop_watcher()
        self._start_watcher()
        self.watcher_restarts += 1
        self._scan()

    # -- serving -------------------------------------------------------------------------
    def _serve(self) -> None:
        from syft_event.server2 import PERMS

        self.storage.makedirs(self.endpoint_folder)
        # syft-event's permission file (what ``SyftEvents.init`` writes in place): each
        # sender may write its own requests here once SyftBox syncs; published whole.
        perms = f"{self.endpoint_folder.rpartition('/')[0]}/syft.pub.yaml"
        current = self.storage.get(perms, max_size=1 << 16)
        if current is None or bytes(memoryview(current)) != PERMS.encode():
            self.storage.put(perms, [PERMS.encode()])
        self.incomplete = IncompleteRequests(self.incomplete.grace)  # a run starts afresh
        self._start_watcher()
        try:
            self._scan()  # what arrived before the watch (and pending after a restart)
            next_check = time.monotonic() + RESCAN_INTERVAL
            while not self.stopped.is_set():
                wake = min(next_check, self.incomplete.next_check())
                try:
                    path = self._queue.get(timeout=max(0.0, wake - time.monotonic()))
                except queue.Empty:
                    path = None
                if path is not None:
                    self._handle_local(path)
                for _, (sender, name) in self.incomplete.due():
                    self._handle(sender, name)
                if time.monotonic() >= next_check:
                    if not self.watcher_alive():
                        self._restart_watcher()
                    else:
                        self._scan()
                    next_check = time.monotonic() + RESCAN_INTERVAL
        finally:
            self._stop_watcher()

    def _scan(self) -> None:
        """Queue every request without a response (a listing of this datasite's own
        endpoint folder: one per sender); every :data:`SWEEP_INTERVAL`, sweep claims."""
        sweep = time.monotonic() >= self._next_sweep
        for sender in self.storage.list(self.endpoint_folder):
            folder = f"{self.endpoint_folder}/{sender}"
            try:
                names = set(self.storage.list(folder))
            except (TransportError, ValueError):
                continue
            for name in names:
                if name.endswith(REQUEST_SUFFIX) and (
                    name.removesuffix(REQUEST_SUFFIX) + RESPONSE_SUFFIX not in names
                ):
                    self._handle(sender, name)
            if sweep and is_valid_email(sender):
                self._sweep(sender, names)
        if sweep:
            self.claims.prune()
            self._next_sweep = time.monotonic() + SWEEP_INTERVAL

    def _sweep(self, sender: str, names: set[str]) -> None:
        """Claims of finished requests their sender removed (answered and forgotten, as
        syft-rpc's requester does) go, so markers and journal entries do not pile up."""
        folder = f"{CLAIMS}/{self.me}/{wire_app(self.app)}/{sender}"
        for stem in self.storage.list(folder):
            entry = self.journal.state_of(stem)
            if stem + REQUEST_SUFFIX not in names and entry is not None and entry.finished:
                self.claims.clean(f"{folder}/{stem}", stem)

    def _handle_local(self, path: str) -> None:
        root = self.storage.local_path(self.endpoint_folder)
        try:
            rel = Path(path).relative_to(root)
        except ValueError:
            return
        if len(rel.parts) != 2:
            self._skip(path, "not at messages/{sender}/{uuid}.request", "misnamed")
            return
        self._handle(*rel.parts)

    def _skip(self, key: str, reason: str, kind: str) -> None:
        """Ignore a file for good (warned and counted once); ``kind``: a refusal kind."""
        if key not in self._skipped:
            self._skipped.add(key)
            self.count_refusal(kind)
            log.warning("ignored request file %r: %s", key, reason)  # %r: a hostile name

    def _handle(self, sender: str, name: str) -> None:
        """Validate, claim, dispatch and answer one request file; nothing in it can
        stop the serve loop."""
        key = f"{sender}/{name}"
        try:
            if self._handle_checked(sender, name, key):
                return  # its writer is still writing: re-checked when due, or on its next event
        except Exception as exc:
            log.exception("request %s could not be handled: %s", key, exc)
        self.incomplete.forget(key)

    def _handle_checked(self, sender: str, name: str, key: str) -> bool:
        """True if the request is incomplete and waited for."""
        if key in self._skipped:
            return False
        if not is_valid_email(sender):
            self._skip(key, f"folder {sender!r} is not a sender's email", "misnamed")
            return False
        if not _UUID_NAME.match(name):
            self._skip(key, "the name is not {uuid}.request", "misnamed")
            return False
        allowed = self.allowed_senders()
        if allowed is not None and sender not in allowed:
            self._skip(key, f"sender {sender} is not allowed", "not allowed")
            return False
        folder = rpc_folder(self.me, self.app, sender)
        stem = name.removesuffix(REQUEST_SUFFIX)
        if os.path.lexists(self.storage.local_path(self._response(sender, stem))):
            return False  # answered (by us or another runner)
        limit = SEALED_SIZE * self.context.max_message_size + FILE_SLACK
        try:  # garbage is refused from its first bytes, unread
            data = read_object(self.storage, f"{folder}/{name}", max_size=limit, check=check_head)
        except MalformedMessageError as exc:
            if self._claim(sender, stem):
                self._refuse(sender, stem, key, exc, refusal_kind(exc))
            return False
        if data is None:
            return False
        if incomplete(data) and self.incomplete.wait(key, (sender, name)):
            return True
        if not self._claim(sender, stem):
            return False
        request, problem, kind = self._parse(bytes(memoryview(data)), sender, stem)
        if request is None:
            self._refuse(sender, stem, key, problem, kind)
            return False
        response = self.dispatch(request)
        if response is None:
            self.journal.rejected(stem, "refused without a reply (see the runner's log)",
                                  sender=sender, app=wire_app(self.app), endpoint=ENDPOINT,
                                  owner=self.claims.owner)  # fmt: skip
            return False
        self._reply(sender, stem, response, status=200 if response.ok else 500)
        self.journal.answered(stem, status=response.status, expires_at=request.expires_at)
        return False

    def _claim(self, sender: str, stem: str) -> bool:
        """Claim a request (:class:`Claims`); False if another runner has it, or it was
        found answered by a runner that died before journaling its reply."""
        route = Route(sender, self.me, wire_app(self.app), ENDPOINT)
        marker = f"{CLAIMS}/{self.me}/{route.app}/{sender}/{stem}"
        try:
            recovered = self.claims.claim(route, stem, marker)
        except StorageError as exc:  # the next scan retries
            log.warning("request %s: %s; retrying", stem, exc)
            return False
        if recovered and os.path.lexists(self.storage.local_path(self._response(sender, stem))):
            self.claims.recovered(stem)
            return False
        return recovered is not None

    def _response(self, sender: str, stem: str) -> str:
        return f"{rpc_folder(self.me, self.app, sender)}/{stem}{RESPONSE_SUFFIX}"

    def _refuse(self, sender: str, stem: str, key: str, problem: object, kind: str) -> None:
        """Answer a claimed request 400 (as syft-event does) and journal the refusal."""
        self.count_refusal(kind)
        log.warning("refused request %s: %s", key, problem)
        self._reply(sender, stem, None, status=400, body=f"Error loading request: {problem}")
        self.journal.rejected(stem, str(problem), sender=sender, app=wire_app(self.app),
                              endpoint=ENDPOINT, owner=self.claims.owner, replied=True)  # fmt: skip

    def _parse(self, data: bytes, sender: str, stem: str) -> tuple[Request | None, str, str]:
        from pydantic import ValidationError
        from syft_rpc.protocol import SyftRequest as WireRequest

        try:
            wire = WireRequest.loads(data)
        except (ValidationError, ValueError) as exc:
            return None, f"not a syft-rpc request ({type(exc).__name__})", "unreadable"
        if str(wire.id) != stem:
            return None, f"its id {wire.id} is not its file name {stem}", "forged"
        if wire.sender != sender:
            return (
                None,
                f"it claims to be from {wire.sender!r}, but is in {sender}'s folder",
                "forged",
            )
        expected = syft_url(self.me, self.app, ENDPOINT)
        if str(wire.url) != expected:
            return None, f"its url {wire.url} is not {expected}", "forged"
        body = wire.body or b""
        if self.keys is not None:
            try:
                body = unseal(self.keys, sender, body, "the request")
            except (EncryptionError, MessageRejectedError) as exc:  # incl. a missing DID
                return None, str(exc), refusal_kind(exc)
        elif _looks_encrypted(body):
            problem = (
                "an encrypted (syft-crypto) request, and encrypt = false on this datasite "
                "(set it the same on every participant)"
            )
            return None, problem, "unauthenticated"
        request = Request(
            id=wire.id.hex,
            sender=sender,
            recipient=self.me,
            app=self.app,
            endpoint=ENDPOINT,
            body=body,
            created_at=wire.created.timestamp(),
            expires_at=wire.expires.timestamp(),
            headers=dict(wire.headers),
        )
        try:
            request.validate()
        except (MalformedMessageError, ValueError) as exc:
            return None, str(exc), "unreadable"
        return request, "", ""

    def _reply(
        self, sender: str, stem: str, response: Response | None, *, status: int, body: str = ""
    ) -> None:
        """Publish a ``SyftResponse`` (as syft-event's ``reply_to`` builds it) at the one
        place derived from the validated folder and name."""
        from syft_core.url import SyftBoxURL
        from syft_rpc.protocol import SyftResponse as WireResponse
        from syft_rpc.protocol import SyftStatus

        payload = bytes(memoryview(response.body)) if response is not None else body.encode()
        if response is not None and payload and self.keys is not None:
            payload = seal(self.keys, sender, payload)  # as syft-event's encrypt_reply
        expires = (
            response.expires_at
            if response is not None and response.expires_at is not None
            else time.time() + timedelta(days=1).total_seconds()
        )
        wire = WireResponse(
            id=uuid.UUID(stem),
            sender=self.me,
            url=SyftBoxURL(syft_url(self.me, self.app, ENDPOINT)),
            body=payload or None,
            headers=dict(response.headers) if response is not None else {},
            expires=datetime.fromtimestamp(expires, UTC),
            status_code=SyftStatus(status),
        )
        data = wire.dumps().encode()
        try:
            refuse_oversized(
                len(data), self.capabilities.max_object_size, f"the reply to {stem}", NAME
            )
        except MessageRejectedError as exc:
            log.warning("%s", exc)
            wire.body, wire.status_code = str(exc).encode(), SyftStatus(500)  # server error
            data = wire.dumps().encode()
        self.storage.put(self._response(sender, stem), [data])

    def stop(self) -> None:
        super().stop()
        self._queue.put("")  # wake the serve loop

    def _close(self) -> None:
        self._stop_watcher()
        self.claims.close()
        self.journal.close()
