"""FAB signatures in Flower's verification-record format, so the FAB a datasite approved
also verifies with ``flower-supernode --trusted-entities`` (flwr 1.26.1 and 1.42 share it).

Flower's record, one per signer, is the JSON object Flower's hub hands out with a FAB::

    {"public_key_id": "<id>", "signature": "<base64url, unpadded>", "signed_at": <unix s>}

where the signature is Ed25519 over ``signed_at`` as 8 big-endian bytes followed by the
raw SHA-256 digest of the FAB (``flwr.supercore.primitives.asymmetric_ed25519.
create_message_to_sign``). A SuperNode keeps the records as ``Fab.verifications``
(``public_key_id`` -> the rest, as JSON: :func:`flower_verifications`) and accepts the FAB
when one record's id is in its trusted-entities YAML (id -> OpenSSH public key:
:func:`trusted_entities`) and the signature verifies with that key. Our ``public_key_id``
is the signer's fingerprint (``sha256:`` + hex SHA-256 of the raw public key), the one
``syftflwr keys`` shows and pins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from syftflwr.crypto.keys import fingerprint
from syftflwr.jobs.bundle import BundleRefused

MAX_RECORD = 4096
"""Bytes a verification record may have (ours are ~180)."""
_SIGNED_AT_MAX = 2**64 - 1


def signed_message(data: bytes, signed_at: int) -> bytes:
    """What the signature covers: ``signed_at`` (8 bytes, big-endian) + SHA-256(FAB)."""
    return signed_at.to_bytes(8, "big") + hashlib.sha256(data).digest()


def sign_fab(data: bytes, key: Ed25519PrivateKey, *, signed_at: int) -> bytes:
    """Flower's verification record of ``data`` signed by ``key`` at ``signed_at`` (unix
    seconds), as canonical JSON bytes."""
    if not 0 <= signed_at <= _SIGNED_AT_MAX:
        raise ValueError(f"signed_at {signed_at} is not a unix time in seconds")
    signature = key.sign(signed_message(data, signed_at))
    record = {
        "public_key_id": fingerprint(_raw(key.public_key())),
        "signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
        "signed_at": signed_at,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")


def verify_fab(data: bytes, record: bytes, public_key: bytes) -> None:
    """Check that ``record`` is a valid signature of ``data`` by the raw Ed25519
    ``public_key`` (the pinned/known one of the submitter).

    :raises BundleRefused: a malformed record, one by another key, or a signature that does
        not verify (the FAB or the record was altered).
    """
    key_id, signature, signed_at = _parse(record)
    expected = fingerprint(public_key)
    if key_id != expected:
        raise BundleRefused(
            f"FAB signature: signed by key {key_id}, not by the submitter's key {expected}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, signed_message(data, signed_at)
        )
    except (InvalidSignature, ValueError):
        raise BundleRefused(
            f"FAB signature: does not verify with key {expected} (the bundle or its "
            "signature was altered)"
        ) from None


def flower_verifications(records: Iterable[bytes]) -> dict[str, str]:
    """Records as a SuperNode keeps them (``Fab.verifications``): ``public_key_id`` -> the
    record's other fields as JSON. (A SuperNode started with ``--trusted-entities`` also
    wants Flower hub's ``"valid_license"`` entry, which only the hub vouches for.)"""
    verifications: dict[str, str] = {}
    for record in records:
        key_id, _, _ = _parse(record)
        fields = {k: v for k, v in json.loads(record).items() if k != "public_key_id"}
        verifications[key_id] = json.dumps(fields)
    return verifications


def trusted_entities(public_keys: Iterable[bytes]) -> dict[str, str]:
    """The mapping of a SuperNode's ``--trusted-entities`` YAML file that trusts these raw
    Ed25519 keys: fingerprint -> OpenSSH public key (JSON of it is valid YAML)."""
    return {
        fingerprint(public): Ed25519PublicKey.from_public_bytes(public)
        .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        .decode("ascii")
        for public in public_keys
    }


def _parse(record: bytes) -> tuple[str, bytes, int]:
    if len(record) > MAX_RECORD:
        raise BundleRefused(
            f"FAB signature: a record of {len(record)} bytes (at most {MAX_RECORD})"
        )
    try:
        fields = json.loads(record)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleRefused("FAB signature: the record is not JSON") from None
    key_id = fields.get("public_key_id") if isinstance(fields, dict) else None
    encoded = fields.get("signature") if isinstance(fields, dict) else None
    signed_at = fields.get("signed_at") if isinstance(fields, dict) else None
    if (
        not isinstance(key_id, str)
        or not isinstance(encoded, str)
        or not isinstance(signed_at, int)
        or isinstance(signed_at, bool)
        or not 0 <= signed_at <= _SIGNED_AT_MAX
    ):
        raise BundleRefused(
            "FAB signature: the record is not Flower's {public_key_id, signature, signed_at}"
        )
    try:
        signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise BundleRefused("FAB signature: the signature is not base64url") from None
    return key_id, signature, signed_at


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
