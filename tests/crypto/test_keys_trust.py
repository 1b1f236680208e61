"""Key pairs on disk (owner-only, created once, rotated with the old one kept), public
records (hostile input), and trust: pins first, then trust on first use, changes refused."""

from __future__ import annotations

import json
import stat
from multiprocessing import get_context
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.crypto.keys import KeyPair, KeyStore, PublicKeyRecord, fingerprint
from syftflwr.crypto.trust import TrustStore
from syftflwr.errors import EncryptionError, MissingKeyError, UntrustedKeyError

ME, PEER = "me@example.org", "peer@example.org"


def test_private_key_is_created_once_owner_only(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, ME)
    with pytest.raises(MissingKeyError, match="keys publish"):
        store.current()
    first = store.load_or_create()
    assert store.load_or_create().public == first.public
    assert stat.S_IMODE(store.current_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert not [p for p in store.folder.iterdir() if p.name.endswith(".tmp")]


def _create(folder: str) -> bytes:
    return KeyStore(Path(folder), ME).load_or_create().public


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    with get_context("spawn").Pool(4) as pool:
        keys = pool.map(_create, [str(tmp_path)] * 8)
    assert len(set(keys)) == 1


def test_a_readable_private_key_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, ME)
    store.load_or_create()
    store.current_path.chmod(0o644)
    with pytest.raises(EncryptionError, match="chmod 600"):
        store.current()


def test_a_damaged_private_key_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, ME)
    store.load_or_create()
    store.current_path.write_bytes(b"short")
    with pytest.raises(EncryptionError, match="damaged"):
        store.current()


def test_rotation_keeps_the_old_pair_for_opening(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, ME)
    old, new = store.rotate()
    assert old.public != new.public
    assert store.current().public == new.public
    assert [p.public for p in store.retired()] == [old.public]
    assert [p.public for p in store.all_pairs()] == [new.public, old.public]


def test_record_round_trip_and_hostile_records() -> None:
    pair = KeyPair.generate()
    record = PublicKeyRecord(ME, pair.public, 1.0)
    assert PublicKeyRecord.decode(record.encode(), expected_email=ME, source="t") == record
    with pytest.raises(EncryptionError, match="published for"):
        PublicKeyRecord.decode(record.encode(), expected_email=PEER, source="t")
    for garbage in (b"", b"{", b"[]", b'{"format": "x"}', b"\xff" * 10, b" " * 5000):
        with pytest.raises(EncryptionError):
            PublicKeyRecord.decode(garbage, expected_email=ME, source="t")
    short_key = record.encode().replace(record.encode().split(b'"x25519": "')[1][:44], b"AAAA")
    with pytest.raises(EncryptionError):
        PublicKeyRecord.decode(short_key, expected_email=ME, source="t")


def test_trust_on_first_use_then_changes_are_refused(tmp_path: Path) -> None:
    trust = TrustStore(tmp_path, {})
    first, second = KeyPair.generate(), KeyPair.generate()
    assert trust.check(PEER, first.public) == "new"
    assert trust.check(PEER, first.public) == "known"
    assert TrustStore(tmp_path, {}).check(PEER, first.public) == "known"  # persisted
    with pytest.raises(UntrustedKeyError, match=f"keys trust {PEER}"):
        trust.check(PEER, second.public)
    trust.trust(PEER, fingerprint(second.public))
    assert trust.check(PEER, second.public) == "known"


def test_pins_override_first_use(tmp_path: Path) -> None:
    pinned, other = KeyPair.generate(), KeyPair.generate()
    trust = TrustStore(tmp_path, {PEER: fingerprint(pinned.public)}, project="pyproject.toml")
    assert trust.check(PEER, pinned.public) == "pinned"
    with pytest.raises(UntrustedKeyError, match=r"pyproject\.toml pins"):
        trust.check(PEER, other.public)
    assert TrustStore(tmp_path, {}).known() == {}  # a refused key is never remembered


def test_known_keys_of_earlier_versions_are_imported_once(tmp_path: Path) -> None:
    first = KeyPair.generate()
    legacy = {"keys": {PEER: fingerprint(first.public), ME: "sha256:" + "0" * 64}}
    (tmp_path / "known_keys.json").write_text(json.dumps(legacy))
    trust = TrustStore(tmp_path, {})
    assert trust.check(PEER, first.public) == "known"  # not "new": no first-use warning
    assert not (tmp_path / "known_keys.json").exists()
    assert trust.known() == legacy["keys"]
    with pytest.raises(UntrustedKeyError):
        trust.check(PEER, KeyPair.generate().public)


def test_unreadable_known_keys_file_says_how_to_fix(tmp_path: Path) -> None:
    (tmp_path / "known_keys.json").write_text("{nope")
    with pytest.raises(EncryptionError, match="fix or delete"):
        TrustStore(tmp_path, {}).check(PEER, KeyPair.generate().public)


def test_fingerprints_are_stable() -> None:
    assert fingerprint(bytes(32)) == (
        "sha256:66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=5000), st.builds(
    lambda fields: json.dumps(fields).encode(),
    st.dictionaries(st.sampled_from(["format", "email", "x25519", "fingerprint", "created_at"]),
                    st.one_of(st.text(max_size=60), st.integers(), st.floats(), st.none())),
)))  # fmt: skip
def test_hostile_public_key_records_only_ever_fail_as_encryption_errors(data: bytes) -> None:
    """A record is read from shared storage: any bytes fail as one clean error type."""
    try:
        PublicKeyRecord.decode(data, expected_email=PEER, source="test")
    except EncryptionError as exc:
        assert "test" in str(exc)
