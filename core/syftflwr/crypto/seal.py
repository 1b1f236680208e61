"""Sealing one envelope for one recipient: authenticated encryption with sender
authentication, in the shape of HPKE's *auth* mode, from ``cryptography`` primitives.

For each message the sender makes an ephemeral X25519 key ``e`` and derives::

    ikm  = X25519(e, R) || X25519(S, R)          # R: recipient, S: sender static keys
    key  = HKDF-SHA256(ikm, info = "syftflwr-seal/1" || e_pub || S_pub || R_pub)

so only the holder of ``R``'s private key can open it, and only the holder of ``S``'s
(or ``R``'s) private key can have made it: the sender is authenticated. The body is
encrypted with AES-256-GCM in segments of up to 1 GiB (one segment for any normal
message, so nothing is copied); each segment's nonce holds its index and a "last" flag,
so dropping, reordering or truncating segments fails authentication. Every other
envelope field — id, sender, recipient, app, endpoint, times, status, headers — is the
associated data: it stays readable for routing but cannot be changed, and a sealed
request cannot be replayed as a response or under another id.

The headers ``seal`` (scheme), ``seal.epk`` (ephemeral public key), ``seal.from``
(sender's public key) and ``seal.to`` (recipient key fingerprint, which selects a
retired key after a rotation) travel in clear.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syftflwr.crypto.keys import KEY_SIZE, KeyPair, fingerprint, raw_public, short
from syftflwr.envelope import Buffer, Envelope, header_fields
from syftflwr.errors import DecryptionError, EncryptionError

SCHEME = "x25519-aesgcm/1"
H_SCHEME = "seal"
H_EPK = "seal.epk"
H_FROM = "seal.from"
H_TO = "seal.to"
SEAL_HEADERS = (H_SCHEME, H_EPK, H_FROM, H_TO)
SEGMENT = 1 << 30
"""Plaintext bytes per AEAD call: 1 GiB, so messages below it are sealed in one call."""
TAG = 16
_INFO = b"syftflwr-seal/1"

E = TypeVar("E", bound=Envelope)


def is_sealed(envelope: Envelope) -> bool:
    return H_SCHEME in envelope.headers


def sender_public(envelope: Envelope) -> bytes:
    """The sender public key a sealed envelope claims (trust is checked by the caller)."""
    return _b64_key(envelope.headers.get(H_FROM), H_FROM, envelope)


def _b64_key(value: str | None, name: str, envelope: Envelope) -> bytes:
    try:
        raw = base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_SIZE:
        raise DecryptionError(
            f"{envelope.kind} {envelope.id} from {envelope.sender}: header {name!r} is not a "
            "32-byte key; the message is damaged or forged"
        )
    return raw


def _associated_data(envelope: Envelope) -> bytes:
    fields = {**header_fields(envelope), "format_version": envelope.format_version}
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


def _key(ikm: bytes, epk: bytes, spk: bytes, rpk: bytes) -> AESGCM:
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + epk + spk + rpk)
    return AESGCM(okm.derive(ikm))


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal(envelope: E, sender: KeyPair, recipient_public: bytes) -> E:
    """``envelope`` with its body sealed for ``recipient_public`` by ``sender``."""
    ephemeral = X25519PrivateKey.generate()
    epk = raw_public(ephemeral.public_key())
    rpk_obj = X25519PublicKey.from_public_bytes(recipient_public)
    ikm = ephemeral.exchange(rpk_obj) + sender.static_secret(recipient_public)
    aead = _key(ikm, epk, sender.public, recipient_public)
    headers = {
        **envelope.headers,
        H_SCHEME: SCHEME,
        H_EPK: base64.b64encode(epk).decode(),
        H_FROM: base64.b64encode(sender.public).decode(),
        H_TO: fingerprint(recipient_public),
    }
    sealed = replace(envelope, headers=headers, body=b"")
    return replace(sealed, body=encrypt_segments(aead, envelope.body, _associated_data(sealed)))


def encrypt_segments(aead: AESGCM, plaintext: Buffer, aad: bytes) -> bytes:
    """``plaintext`` encrypted in :data:`SEGMENT`-sized AEAD calls whose nonces number
    them and flag the last, so dropping, reordering or truncating segments fails."""
    body = memoryview(plaintext).cast("B")
    count = max(1, -(-body.nbytes // SEGMENT))
    pieces = [
        aead.encrypt(_nonce(i, i == count - 1), body[i * SEGMENT : (i + 1) * SEGMENT], aad)
        for i in range(count)
    ]
    return pieces[0] if count == 1 else b"".join(pieces)


def encrypt_parts(key: bytes, parts: Sequence[Buffer], aad: bytes) -> list[memoryview]:
    """:func:`encrypt_segments` of ``parts`` concatenated, under the AES-GCM ``key``,
    without joining them first (a 100 MB model is not copied before it is encrypted):
    the same bytes, written straight into ONE buffer (returned as the only part), so
    nothing downstream has to join pieces either (a join of 100 MB is 50 ms before an
    upload's first byte)."""
    views = [memoryview(part).cast("B") for part in parts]
    total = sum(view.nbytes for view in views)
    count = max(1, -(-total // SEGMENT))
    target = _uninitialized(sealed_size(total))
    at = 0  # where the next ciphertext byte goes
    index, left = 0, min(SEGMENT, total)
    encryptor = _segment_encryptor(key, index, count, aad)
    for view in views:
        pos = 0
        while pos < view.nbytes:
            take = min(left, view.nbytes - pos)
            # GCM writes exactly ``take`` bytes; update_into wants 15 spare, and a tag
            # (16 bytes) always follows the data in ``out``
            at += encryptor.update_into(view[pos : pos + take], target[at:])
            pos, left = pos + take, left - take
            if left == 0 and index < count - 1:  # a segment ends: its tag, the next one
                at = _finish(encryptor, target, at)
                index += 1
                left = min(SEGMENT, total - index * SEGMENT)
                encryptor = _segment_encryptor(key, index, count, aad)
    at = _finish(encryptor, target, at)
    if at != target.nbytes:  # never under -O either: the rest would be stale memory
        raise EncryptionError(f"sealed {at} bytes into a buffer of {target.nbytes}")
    return [target]


def _uninitialized(size: int) -> memoryview:
    """A writable buffer of ``size`` bytes, not zeroed first: numpy's. A ``bytearray``
    zero-fills (and so faults in) every page before the cipher writes it: 45 of the 70 ms
    a 100 MB seal took, before an upload's first byte. The cipher writes every byte of
    it (:func:`encrypt_parts` checks), so no stale memory leaves the process."""
    import numpy as np

    return np.empty(size, dtype=np.uint8).data


def _finish(encryptor: Any, target: memoryview, at: int) -> int:
    """Close a segment at ``at``: its tag written after its data; returns the end."""
    encryptor.finalize()
    target[at : at + TAG] = encryptor.tag
    return at + TAG


def _segment_encryptor(key: bytes, index: int, count: int, aad: bytes) -> Any:
    encryptor = Cipher(algorithms.AES(key), modes.GCM(_nonce(index, index == count - 1)))
    context = encryptor.encryptor()
    context.authenticate_additional_data(aad)
    return context


def sealed_size(size: int) -> int:
    """Bytes of :func:`encrypt_segments` of ``size`` bytes (one tag per segment)."""
    return size + max(1, -(-size // SEGMENT)) * TAG


def decrypt_segments(aead: AESGCM, ciphertext: Buffer, aad: bytes) -> bytes:
    """The inverse of :func:`encrypt_segments`; raises ``InvalidTag``."""
    data = memoryview(ciphertext).cast("B")
    step = SEGMENT + TAG
    count = max(1, -(-data.nbytes // step))
    pieces = [
        aead.decrypt(_nonce(i, i == count - 1), data[i * step : (i + 1) * step], aad)
        for i in range(count)
    ]
    return pieces[0] if count == 1 else b"".join(pieces)


def open_sealed(envelope: E, recipient_pairs: Sequence[KeyPair]) -> E:
    """The plaintext envelope; :class:`DecryptionError` unless it is sealed, intact, and
    for one of ``recipient_pairs``. The caller must already trust :func:`sender_public`."""
    where = f"{envelope.kind} {envelope.id} from {envelope.sender}"
    scheme = envelope.headers.get(H_SCHEME)
    if scheme is None:
        raise DecryptionError(
            f"{where} is not encrypted, but encryption is on for this project: refused "
            "(the sender runs with encryption = false, or the message is forged)"
        )
    if scheme != SCHEME:
        raise DecryptionError(
            f"{where} is sealed with {scheme!r}, this syftflwr reads {SCHEME!r}: upgrade it"
        )
    epk = _b64_key(envelope.headers.get(H_EPK), H_EPK, envelope)
    spk = sender_public(envelope)
    wanted = envelope.headers.get(H_TO)
    pair = next((p for p in recipient_pairs if p.fingerprint == wanted), None)
    if pair is None:
        raise DecryptionError(
            f"{where} was sealed for key {short(wanted or '?')}, which this participant does "
            "not hold (the sender fetched an old or foreign key); the sender must refresh "
            "its copy: `syftflwr keys show` on both sides compares fingerprints"
        )
    ikm = pair.private.exchange(X25519PublicKey.from_public_bytes(epk)) + pair.static_secret(spk)
    aead = _key(ikm, epk, spk, pair.public)
    try:
        body = decrypt_segments(aead, envelope.body, _associated_data(envelope))
    except InvalidTag:
        raise DecryptionError(
            f"{where} failed authentication: it was altered, truncated, re-addressed, or "
            "not sealed by the key it names; it is refused"
        ) from None
    headers = {k: v for k, v in envelope.headers.items() if k not in SEAL_HEADERS}
    return replace(envelope, headers=headers, body=body)
