"""FAB signatures in Flower's verification-record format (``syftflwr.jobs.fabsig``): ours
verify with Flower's own SuperNode code (``--trusted-entities`` parsing and ``_verify_fab``,
flwr 1.26.1 and 1.42), and a flipped byte or another key is refused by both."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from _bundle_apps import stored_fab
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flwr.supernode import start_client_internal as supernode
from syftflwr.crypto.keys import fingerprint
from syftflwr.jobs.bundle import BundleRefused
from syftflwr.jobs.fabsig import (
    flower_verifications,
    sign_fab,
    trusted_entities,
    verify_fab,
)

flower_supernode = importlib.import_module("flwr.supernode.cli.flower_supernode")
"""The module (the package exports a function of that name)."""
SIGNED_AT = 1_796_000_000
FAB = stored_fab("1.42.0")


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _flower_format_verification(items: list[dict[str, Any]]) -> dict[str, str]:
    """Flower's own conversion of the hub's records into ``Fab.verifications`` (it moved
    from control_servicer in 1.26 to control_handlers in 1.42)."""
    for module in ("control_handlers", "control_servicer"):
        try:
            found = importlib.import_module(f"flwr.superlink.servicer.control.{module}")
        except ImportError:
            continue
        if hasattr(found, "_format_verification"):
            return found._format_verification(items)  # type: ignore[no-any-return]
    raise AssertionError("this flwr has no _format_verification")


def _flower_accepts(data: bytes, record: bytes, trusted: dict[str, str]) -> bool:
    """What a SuperNode started with ``--trusted-entities`` decides for this FAB."""
    verifications = _flower_format_verification([json.loads(record)])
    fab = supernode.Fab(hashlib.sha256(data).hexdigest(), data, verifications)
    return bool(supernode._verify_fab(fab, trusted))


def _trusted_file(tmp_path: Path, *publics: bytes) -> dict[str, str]:
    """Our trusted entities written as the YAML file and read back by Flower's CLI code."""
    path = tmp_path / "trusted-entities.yaml"
    path.write_text(json.dumps(trusted_entities(publics)))
    parsed = flower_supernode._try_obtain_trusted_entities(path)
    assert parsed is not None
    flower_supernode._validate_public_keys_ed25519(parsed)
    return parsed


def test_the_record_is_flowers_hub_format() -> None:
    key = Ed25519PrivateKey.generate()
    record = json.loads(sign_fab(FAB, key, signed_at=SIGNED_AT))

    assert set(record) == {"public_key_id", "signature", "signed_at"}
    assert record["public_key_id"] == fingerprint(_raw(key))
    assert record["signed_at"] == SIGNED_AT and "=" not in record["signature"]
    message = SIGNED_AT.to_bytes(8, "big") + hashlib.sha256(FAB).digest()
    key.public_key().verify(base64.urlsafe_b64decode(record["signature"] + "=="), message)


def test_flowers_supernode_accepts_our_signature(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    record = sign_fab(FAB, key, signed_at=SIGNED_AT)
    trusted = _trusted_file(tmp_path, _raw(key))

    assert _flower_accepts(FAB, record, trusted)
    verify_fab(FAB, record, _raw(key))
    assert flower_verifications([record]) == {
        k: v
        for k, v in _flower_format_verification([json.loads(record)]).items()
        if k != "valid_license"
    }


def test_a_flipped_byte_is_refused_by_flower_and_by_us(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    record = sign_fab(FAB, key, signed_at=SIGNED_AT)
    trusted = _trusted_file(tmp_path, _raw(key))
    for at in (0, len(FAB) // 2, len(FAB) - 1):
        flipped = bytearray(FAB)
        flipped[at] ^= 0x01

        assert not _flower_accepts(bytes(flipped), record, trusted)
        with pytest.raises(BundleRefused, match="does not verify"):
            verify_fab(bytes(flipped), record, _raw(key))


def test_another_key_is_refused_by_flower_and_by_us(tmp_path: Path) -> None:
    pinned, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    record = sign_fab(FAB, other, signed_at=SIGNED_AT)

    assert not _flower_accepts(FAB, record, _trusted_file(tmp_path, _raw(pinned)))
    with pytest.raises(BundleRefused, match="not by the submitter's key"):
        verify_fab(FAB, record, _raw(pinned))

    # the other key's signature relabelled with the pinned key's id
    forged = json.loads(record) | {"public_key_id": fingerprint(_raw(pinned))}
    forged_record = json.dumps(forged).encode()
    assert not _flower_accepts(FAB, forged_record, _trusted_file(tmp_path, _raw(pinned)))
    with pytest.raises(BundleRefused, match="does not verify"):
        verify_fab(FAB, forged_record, _raw(pinned))


def test_a_changed_signing_time_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    record = json.loads(sign_fab(FAB, key, signed_at=SIGNED_AT))
    record["signed_at"] += 1
    with pytest.raises(BundleRefused, match="does not verify"):
        verify_fab(FAB, json.dumps(record).encode(), _raw(key))


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"public_key_id": "x", "signature": "AA"}',
        b'{"public_key_id": "x", "signature": "AA", "signed_at": true}',
        b'{"public_key_id": "x", "signature": "AA", "signed_at": -1}',
        b'{"public_key_id": "x", "signature": 5, "signed_at": 1}',
        b'{"public_key_id": "x", "signature": "A", "signed_at": 1}',
        b" " * 5000,
    ],
)
def test_a_malformed_record_is_refused_in_one_line(record: bytes) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(BundleRefused) as refused:
        verify_fab(FAB, record, _raw(key))
    assert str(refused.value).startswith("FAB signature:") and "\n" not in str(refused.value)


def test_signed_at_must_be_a_unix_time() -> None:
    with pytest.raises(ValueError, match="unix time"):
        sign_fab(FAB, Ed25519PrivateKey.generate(), signed_at=-1)
