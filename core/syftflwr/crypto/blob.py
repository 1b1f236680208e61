"""Sealing a blob once for several recipients: a fresh random content key per blob.

A broadcast's model is encrypted once, with AES-256-GCM under a key ``K`` made for that
blob alone (:func:`seal_blob`), and stored once. ``K``, the ciphertext's SHA-256 and the
plaintext's SHA-256 travel in each recipient's own message, sealed to that recipient
and authenticated as the sender's (:mod:`syftflwr.crypto.seal`); the ciphertext hash is
also in that message's headers, hence in its associated data.

Authenticity never comes from ``K``: every co-recipient knows it and could encrypt other
content under it. A reader therefore checks the stored bytes against the hash in its own
authenticated message *before* decrypting (:meth:`BlobRef.verify`, done by the events
role that read them), and the plaintext hash *after* (:func:`open_blob`: AES-GCM does
not commit to its key, so without that check a sender could give two recipients keys
that open one ciphertext to two models).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syftflwr.crypto.seal import decrypt_segments, encrypt_parts
from syftflwr.envelope import Buffer
from syftflwr.errors import DecryptionError
from syftflwr.mailbox.blobs import blob_sha256
from syftflwr.roles import BlobRef

KEY_BYTES = 32
_AAD = b"syftflwr-blob/1"


@dataclass(frozen=True, slots=True)
class SealedBlob:
    parts: list[memoryview]
    """The ciphertext, as one buffer (:func:`~syftflwr.crypto.seal.encrypt_parts`;
    concatenated: :attr:`ciphertext`)."""
    key: bytes
    hashing: Future[str]
    """The plaintext's hash, still running when :func:`seal_blob` returns: an upload's
    first byte waits for the ciphertext only (100 MB: 25 ms), not for this (55 ms)."""

    @property
    def digest(self) -> str:
        """hex SHA-256 of the plaintext"""
        return self.hashing.result()

    @property
    def ciphertext(self) -> bytes:
        return b"".join(self.parts)


def seal_blob(plaintext: Sequence[Buffer]) -> SealedBlob:
    """``plaintext`` (parts, concatenated) encrypted under a fresh content key; its hash
    runs on another core meanwhile (hashlib releases the GIL) and after."""
    key = os.urandom(KEY_BYTES)
    hashing: Future[str] = Future()

    def digest() -> None:
        try:
            hashing.set_result(blob_sha256(plaintext))
        except BaseException as exc:  # handed to whoever asks for the digest
            hashing.set_exception(exc)

    threading.Thread(target=digest, name="syftflwr-blob-hash", daemon=True).start()
    return SealedBlob(parts=encrypt_parts(key, plaintext, _AAD), key=key, hashing=hashing)


def open_blob(ciphertext: Buffer, ref: BlobRef, where: str) -> bytes:
    """The plaintext of a sealed blob whose stored bytes were already verified against
    ``ref``; :class:`DecryptionError` says which check failed."""
    if ref.key is None or ref.digest is None:
        raise DecryptionError(f"{where} is not sealed, but encryption is on: refused")
    try:
        plaintext = decrypt_segments(AESGCM(ref.key), ciphertext, _AAD)
    except InvalidTag:
        raise DecryptionError(f"{where} failed authentication under its content key") from None
    if hashlib.sha256(plaintext).hexdigest() != ref.digest:
        raise DecryptionError(
            f"{where} opened to other content than its message commits to: refused"
        )
    return plaintext
