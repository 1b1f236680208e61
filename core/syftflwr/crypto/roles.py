"""Sealed roles: core envelope encryption wrapped around ANY transport's RPC and events
roles, so a transport only ever sees (and stores, journals, chunks) sealed bodies.

Fail closed, both ways:

* the RPC side never sends a request it could not seal (a missing or untrusted recipient
  key raises before anything is written), and turns a reply it cannot authenticate into a
  local ``error`` response that says why — it never hands unauthenticated bytes to Flower;
* the events side refuses (with an error reply) a request it cannot open, and seals every
  answer, including a failing handler's error text.

A refusal is sealed too, to the key its claimed sender held before (the only one that
can open it, so an unauthenticated request learns nothing), so the requester reads the
datasite's reason authenticated. Only when no such key is known (a runner restarted
after the requester rotated its key) is the refusal plain text; the requester then
shows that text first and says it is unauthenticated.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import cast

from syftflwr.crypto.blob import SealedBlob, open_blob, seal_blob
from syftflwr.crypto.keyring import Keyring
from syftflwr.crypto.seal import is_sealed, sealed_size
from syftflwr.envelope import Buffer, Request, Response
from syftflwr.errors import EncryptionError
from syftflwr.mailbox.blobs import blob_where
from syftflwr.mailbox.storage import total_size
from syftflwr.roles import (
    BlobContent,
    BlobRef,
    EventsRole,
    HandleLater,
    Handler,
    ReadsBlobs,
    RequestHandle,
    RPCRole,
    SharesBlobs,
    blob_parts,
)

log = logging.getLogger("syftflwr.crypto")


class SealedRPC:
    """An :class:`~syftflwr.roles.RPCRole` that seals requests and opens responses."""

    def __init__(self, inner: RPCRole, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    def send(self, request: Request) -> RequestHandle:
        return self.inner.send(self.keyring.seal_for(request))

    def send_notice(self, request: Request) -> RequestHandle:
        """Send a request whose content is NO secret (a stop flagged ``refused``) sealed
        to the key its recipient publishes now, even one this participant refuses to
        trust: it reaches the genuine recipient whose key changed (which still
        authenticates the sender), and tells an impostor nothing worth knowing."""
        public = self.keyring.published_key(request.recipient)
        if public is None:
            raise EncryptionError(f"{request.recipient} publishes no key to seal a notice to")
        return self.inner.send(self.keyring.seal_for(request, public))

    def fetch(self, handle: RequestHandle) -> Response | None:
        response = self.inner.fetch(handle)
        return None if response is None else self._open(response)

    def wait(self, handles: Sequence[RequestHandle], timeout: float | None) -> list[Response]:
        return [self._open(r) for r in self.inner.wait(handles, timeout)]

    def forget(self, handle: RequestHandle) -> None:
        self.inner.forget(handle)

    def put_blob(
        self,
        data: Sequence[Buffer] | BlobContent,
        *,
        app: str,
        recipients: Sequence[str],
        expires_at: float | None,
        on_named: Callable[[BlobRef], None] | None = None,
    ) -> BlobRef:
        """Seal ``data`` once under a fresh content key and store the ciphertext once
        (:mod:`syftflwr.crypto.blob`); the ref carries the key, for the sealed messages
        (``on_named`` too, when the transport names the blob while it uploads). The
        sealing is the transport's :class:`BlobContent`: it runs while the transport
        readies the blob's place (a Drive folder: a round trip)."""
        plaintext = blob_parts(data)
        sealed: list[SealedBlob] = []

        def seal() -> Sequence[Buffer]:
            sealed.append(seal_blob(plaintext))
            return sealed[-1].parts

        def keyed(ref: BlobRef) -> BlobRef:
            if len(sealed) != 1:
                raise EncryptionError(
                    f"{type(self.inner).__name__}.put_blob stored a blob without making its "
                    "content exactly once (BlobContent.produce): its ciphertext is unknown"
                )
            return dataclasses.replace(ref, key=sealed[0].key, digest=sealed[0].digest)

        def named(ref: BlobRef) -> None:
            assert on_named is not None
            on_named(keyed(ref))

        size = sealed_size(total_size(plaintext))
        inner = cast(SharesBlobs, self.inner)
        stored = inner.put_blob(
            BlobContent(size, seal),
            app=app,
            recipients=recipients,
            expires_at=expires_at,
            on_named=None if on_named is None else named,
        )
        return keyed(stored)

    def drop_blob(self, ref: BlobRef, *, app: str) -> None:
        cast(SharesBlobs, self.inner).drop_blob(ref, app=app)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:  # transport extras (outstanding, sweep...)
        return getattr(self.inner, name)

    def _open(self, response: Response) -> Response:
        try:
            return self.keyring.open(response)
        except EncryptionError as exc:
            # Unauthenticated: whatever it says cannot be trusted, but its text helps a
            # person diagnose (e.g. "the datasite cannot decrypt: key changed").
            log.warning("refused the reply to %s from %s: %s", response.id, response.sender, exc)
            if not response.ok and not is_sealed(response):
                # a refusal the datasite could not seal: its reason first, flagged
                text = (
                    f"{response.error_text[:2000]} (unauthenticated: {response.sender}'s "
                    "error reply is not sealed; it could not seal it to this participant's "
                    "key, or someone else wrote it)"
                )
            else:
                said = f"; it said: {response.error_text[:500]}" if not response.ok else ""
                text = f"refused reply from {response.sender}: {exc}{said}"
            return Response(
                id=response.id,
                sender=response.sender,
                recipient=response.recipient,
                app=response.app,
                endpoint=response.endpoint,
                expires_at=response.expires_at,
                status="error",
                body=text.encode(),
            )


class SealedEvents:
    """An :class:`~syftflwr.roles.EventsRole` whose handlers see opened requests and whose
    answers are sealed for the (authenticated) requester."""

    def __init__(self, inner: EventsRole, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    def on_request(self, endpoint: str, handler: Handler) -> None:
        self.inner.on_request(endpoint, self._sealing(handler))

    def run_forever(self) -> None:
        self.inner.run_forever()

    def stop(self) -> None:
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()

    def get_blob(self, ref: BlobRef, *, sender: str, app: str) -> bytes:
        """Read the stored bytes (verified against ``ref`` by the inner role), then open
        them with the ref's content key and check the plaintext hash."""
        where = blob_where(ref, sender)
        if ref.key is None:
            raise EncryptionError(f"{where} is not sealed, but encryption is on: refused")
        plain = dataclasses.replace(ref, key=None, digest=None)
        ciphertext = cast(ReadsBlobs, self.inner).get_blob(plain, sender=sender, app=app)
        return open_blob(ciphertext, ref, where)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def _sealing(self, handler: Handler) -> Handler:
        keyring = self.keyring

        def handle(request: Request) -> Response:
            try:
                opened = keyring.open(request)
                requester = keyring.sender_key(request)
            except EncryptionError as exc:  # not sealed, tampered, untrusted key
                return self._refusal(request, exc)
            try:
                result: Response | Buffer = handler(opened)
            except HandleLater:  # the events role asks again later
                raise
            except Exception as exc:
                summary = "".join(traceback.format_exception_only(exc)).strip()
                log.exception("handler for %s failed on request %s", request.endpoint, request.id)
                result = opened.error_reply(f"handler failed: {summary}")
            response = result if isinstance(result, Response) else opened.reply(result)
            return keyring.seal_for(response, requester)

        return handle

    def _refusal(self, request: Request, exc: EncryptionError) -> Response:
        """The error reply to a request that could not be authenticated, sealed to the key
        its claimed sender held before; without one, re-raise so the events role answers
        in plain text (its text carries no user data)."""
        public = self.keyring.trusted_key(request.sender)
        if public is None:
            raise exc  # the events role counts and answers it
        count = getattr(self.inner, "count_refusal", None)
        if callable(count):
            count("unauthenticated")
        log.warning("refused request %s from %s: %s", request.id, request.sender, exc)
        return self.keyring.seal_for(request.error_reply(f"refused: {exc}"), public)
