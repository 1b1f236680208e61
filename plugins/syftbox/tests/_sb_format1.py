"""TEST HELPER: the syftbox plugin's OWN encryption before wire format 2 — the real
old construction, ``plugins/syftbox/src/syftflwr_syftbox/sealing.py`` as it was at
ae519c4 (``git show ae519c4:plugins/syftbox/src/syftflwr_syftbox/sealing.py``), copied
verbatim below the line, so the tests can write exactly what a peer still on syftbox
wire format 1 writes ("SFXE" 0x01 frames over syft-crypto X3DH keys). Not shipped;
:class:`Format1Keys` at the end gives it the key pair the plugin's ``KeyRing`` held then.

Its own docstring, kept::

    Each request, response, manifest and chunk is sealed before it reaches the disk: a
    random AES-256-GCM content key encrypts the object, and the key is wrapped twice with
    X3DH — for the recipient, and for the sender itself.

    Frame (binary, no base64)::

        "SFXE" 0x01 | u64 plaintext size | 2 x (ephemeral pub 32 | iv 12 | wrapped key 48)
        | iv 12 | ciphertext | tag 16
"""

# ------------------------------------------- verbatim from ae519c4 from here to the end mark
from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from syftflwr.plugin import (
    OUTBOX_PREFIX,
    Buffer,
    EncryptionError,
    MalformedMessageError,
    ObjectKind,
    StorageWrapper,
    parse_name,
    split_path,
    views,
)
from syftflwr_syftbox.datasite_storage import LOCAL_STATE, DatasiteStorage
from syftflwr_syftbox.keys import KeyRing

MAGIC = b"SFXE\x01"
_HEAD = struct.Struct(">5sQ")
_EK, _IV, _KEY, _TAG = 32, 12, 32, 16
_WRAP = _EK + _IV + _KEY + _TAG
PREAMBLE = _HEAD.size + 2 * _WRAP + _IV
OVERHEAD = PREAMBLE + _TAG
"""Bytes a sealed object adds to its plaintext."""
_INFO = b"X3DH-SyftBox"


class DecryptionError(EncryptionError, MalformedMessageError):
    """A stored object that does not open: refused, never handled as plaintext."""


def _kek(dh1: bytes, dh2: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(dh1 + dh2)


def _pub(raw: bytes) -> x25519.X25519PublicKey:
    return x25519.X25519PublicKey.from_public_bytes(raw)


class SealedStorage(StorageWrapper):
    """A :class:`DatasiteStorage` whose message objects are sealed on write and opened
    on read (see the module docstring)."""

    inner: DatasiteStorage

    def __init__(self, inner: DatasiteStorage, keys: KeyRing) -> None:
        super().__init__(inner)
        self.keys = keys
        self.owner = inner.owner
        self._static: dict[bytes, bytes] = {}

    def _static_dh(self, peer: x25519.X25519PublicKey) -> bytes:
        """DH(own signed prekey, peer's signed prekey): the same for every object
        between two key pairs, so computed once per peer key (a third of the X25519
        work of a small message)."""
        raw = peer.public_bytes_raw()
        shared = self._static.get(raw)
        if shared is None:
            shared = self._static[raw] = self.keys.private_key.exchange(peer)
        return shared

    # -- which objects, between whom ------------------------------------------------------
    def _parties(self, path: str) -> tuple[str, str] | None:
        """``(sender, recipient)`` of a message object; None for what is stored as is."""
        parts = split_path(path)
        if parts[0] == LOCAL_STATE:
            return None
        parsed = parse_name(parts[-1])
        if parsed is not None and parsed.kind is ObjectKind.CLAIM:
            return None
        sender = self.inner.owner_of(parts[0])
        recipient = parts[0][len(f"{OUTBOX_PREFIX}{sender}_to_") :]
        return sender, recipient

    @staticmethod
    def _aad(path: str, sender: str, recipient: str) -> bytes:
        return b"\0".join((MAGIC, path.encode(), sender.encode(), recipient.encode()))

    # -- sealing ------------------------------------------------------------------------
    def seal(self, path: str, sender: str, recipient: str, parts: Sequence[Buffer]) -> list[Buffer]:
        peer = self.keys.recipient_key(recipient)  # waits; then refuses, never plaintext
        data = b"".join(views(parts)) if len(parts) != 1 else parts[0]
        size = memoryview(data).nbytes
        aad = self._aad(path, sender, recipient)
        key = AESGCM.generate_key(256)
        head = [_HEAD.pack(MAGIC, size)]
        for target in (peer, self.keys.public_key):
            ephemeral = x25519.X25519PrivateKey.generate()
            kek = _kek(self._static_dh(target), ephemeral.exchange(target))
            iv = os.urandom(_IV)
            ek = ephemeral.public_key().public_bytes_raw()
            head += [ek, iv, AESGCM(kek).encrypt(iv, key, aad)]
        iv = os.urandom(_IV)
        header = b"".join(head) + iv
        return [header, AESGCM(key).encrypt(iv, cast(bytes, data), aad + header)]

    def open(self, path: str, sender: str, recipient: str, data: Buffer) -> Buffer:
        view = memoryview(data).cast("B")
        if view.nbytes < _HEAD.size:
            if MAGIC.startswith(bytes(view)):
                return b""  # still being written: the mailbox waits for it to complete
            raise self._refuse(path, "it is not encrypted (encryption is on)")
        magic, size = _HEAD.unpack_from(view)
        if magic != MAGIC:
            raise self._refuse(path, "it is not encrypted (encryption is on)")
        if view.nbytes < size + OVERHEAD:
            return b""  # a sync client still writing it in place
        if view.nbytes != size + OVERHEAD:
            raise self._refuse(path, "its length does not match its header")
        if self.owner == recipient:
            slot, peer = 0, self.keys.peer_key(sender)
        elif self.owner == sender:
            slot, peer = 1, self.keys.public_key
        else:
            raise self._refuse(path, f"it is sealed for {recipient}, not {self.owner}")
        aad = self._aad(path, sender, recipient)
        at = _HEAD.size + slot * _WRAP
        ek = _pub(bytes(view[at : at + _EK]))
        iv = bytes(view[at + _EK : at + _EK + _IV])
        wrapped = bytes(view[at + _EK + _IV : at + _WRAP])
        header = bytes(view[:PREAMBLE])
        try:
            kek = _kek(self._static_dh(peer), self.keys.private_key.exchange(ek))
            key = AESGCM(kek).decrypt(iv, wrapped, aad)
            return AESGCM(key).decrypt(header[-_IV:], cast(bytes, view[PREAMBLE:]), aad + header)
        except (InvalidTag, ValueError):
            raise self._refuse(
                path, f"it does not authenticate as {sender}'s message to {recipient}"
            ) from None

    @staticmethod
    def _refuse(path: str, why: str) -> DecryptionError:
        return DecryptionError(
            f"refusing {path}: {why}; it was tampered with, written by another tool, or "
            "sealed with keys that were since replaced (check both parties' DIDs)"
        )

    # -- Storage -------------------------------------------------------------------------
    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        who = self._parties(path)
        if who is not None:
            parts = self.seal(path, *who, parts)
        return self.inner.put_if_absent(path, parts)

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        who = self._parties(path)
        if who is not None:
            parts = self.seal(path, *who, parts)
        self.inner.put(path, parts)

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        who = self._parties(path)
        if who is None:
            return self.inner.get(path, max_size=max_size)
        limit = None if max_size is None else max_size + OVERHEAD
        found = self.inner.read_head(path, _HEAD.size)
        if found is None:
            return None
        head, total = found  # garbage is refused from its first bytes, unread
        if memoryview(head).nbytes == _HEAD.size:
            magic, size = _HEAD.unpack_from(head)
            if magic != MAGIC:
                raise self._refuse(path, "it is not encrypted (encryption is on)")
            if total > size + OVERHEAD:
                raise self._refuse(path, "its length does not match its header")
        data = self.inner.get(path, max_size=limit)
        return None if data is None else self.open(path, *who, data)


# ------------------------------------------------------- end of the copy from ae519c4
class Format1Keys:
    """What the format-1 ``KeyRing`` offered ``SealedStorage``: the participant's X3DH
    signed prekey (syft-crypto's key store, its DID published) and its peers' keys."""

    def __init__(self, keys: KeyRing) -> None:
        from syft_crypto import load_private_keys

        self.keys = keys
        _, self.private_key = load_private_keys(keys.client)
        self.public_key = self.private_key.public_key()

    def recipient_key(self, email: str) -> x25519.X25519PublicKey:
        return self.keys.recipient_key(email)

    def peer_key(self, email: str) -> x25519.X25519PublicKey:
        return self.keys.peer_key(email)
