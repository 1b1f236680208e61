"""Multi-recipient blob sealing (issue 20): the construction, its test vector, and each
refusal the issue names at the crypto layer (the end-to-end refusals are in tests/flower)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from syftflwr.crypto.blob import open_blob, seal_blob
from syftflwr.crypto.seal import SEGMENT, encrypt_parts, encrypt_segments, sealed_size
from syftflwr.errors import DecryptionError, EncryptionError, MalformedMessageError
from syftflwr.roles import BlobRef

MODEL = b"model weights " * 4096


def _stored(plaintext: bytes = MODEL) -> tuple[bytes, BlobRef]:
    sealed = seal_blob([plaintext])
    ref = BlobRef(
        name="0" * 32,
        sha256=hashlib.sha256(sealed.ciphertext).hexdigest(),
        size=len(sealed.ciphertext),
        key=sealed.key,
        digest=sealed.digest,
    )
    return sealed.ciphertext, ref


def test_a_sealed_blob_opens_to_its_plaintext_and_hides_it() -> None:
    ciphertext, ref = _stored()
    assert b"model weights" not in ciphertext
    assert len(ciphertext) == len(MODEL) + 16  # one AEAD segment: the tag only
    ref.verify(ciphertext, "blob")
    assert open_blob(ciphertext, ref, "blob") == MODEL


def test_each_blob_gets_a_fresh_content_key() -> None:
    first, second = seal_blob([MODEL]), seal_blob([MODEL])
    assert first.key != second.key and first.ciphertext != second.ciphertext
    assert first.digest == second.digest == hashlib.sha256(MODEL).hexdigest()


def test_vector_pins_the_construction() -> None:
    """AES-256-GCM, nonce = 11-byte segment index + last flag, AAD "syftflwr-blob/1":
    computed here straight from the primitive, so a change of the format fails."""
    key = bytes(range(32))
    expected = AESGCM(key).encrypt(b"\x00" * 11 + b"\x01", b"abc", b"syftflwr-blob/1")
    assert encrypt_segments(AESGCM(key), b"abc", b"syftflwr-blob/1") == expected
    assert expected.hex() == "74b4dc938708d795452296ab058adb085f6ec8"
    ref = BlobRef("0" * 32, hashlib.sha256(expected).hexdigest(), len(expected), key,
                  hashlib.sha256(b"abc").hexdigest())  # fmt: skip
    assert open_blob(expected, ref, "vector") == b"abc"


def test_a_flipped_byte_in_the_stored_blob_is_refused_before_decrypting() -> None:
    ciphertext, ref = _stored()
    damaged = bytearray(ciphertext)
    damaged[100] ^= 1
    with pytest.raises(MalformedMessageError, match="SHA-256 differs"):
        ref.verify(bytes(damaged), "blob b1 from agg@x.org")
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_blob(bytes(damaged), ref, "blob")  # and the AEAD would catch it anyway


def test_a_co_recipient_substitute_under_the_same_key_is_refused() -> None:
    """A co-recipient knows K and encrypts its own model under it: the stored bytes no
    longer match the hash in the honest recipient's authenticated message."""
    _, ref = _stored()
    assert ref.key is not None
    forged = encrypt_segments(AESGCM(ref.key), b"poisoned model" * 4096, b"syftflwr-blob/1")
    with pytest.raises(MalformedMessageError, match="not the blob its message names"):
        ref.verify(forged, "blob")


def test_an_earlier_blob_put_back_under_this_name_is_refused() -> None:
    old, _ = _stored(b"round 1 model" * 1000)
    _, ref = _stored(b"round 2 model" * 1000)
    with pytest.raises(MalformedMessageError):
        ref.verify(old, "blob")


def test_a_size_mismatch_is_refused_before_hashing() -> None:
    ciphertext, ref = _stored()
    with pytest.raises(MalformedMessageError, match="its message says"):
        ref.verify(ciphertext[:-1], "blob")


def test_keys_that_open_one_ciphertext_to_other_content_are_caught_by_the_digest() -> None:
    """The plaintext commitment: a ref whose digest is not the plaintext's is refused
    after decrypting (what a key-committing attack would produce)."""
    ciphertext, ref = _stored()
    lying = dataclasses.replace(ref, digest=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(DecryptionError, match="other content than its message commits to"):
        open_blob(ciphertext, lying, "blob")


def test_a_wrong_key_fails_authentication_and_a_plain_ref_is_refused() -> None:
    ciphertext, ref = _stored()
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_blob(ciphertext, dataclasses.replace(ref, key=b"\x01" * 32), "blob")
    with pytest.raises(DecryptionError, match="not sealed, but encryption is on"):
        open_blob(ciphertext, dataclasses.replace(ref, key=None), "blob")


def test_segments_cannot_be_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("syftflwr.crypto.seal.SEGMENT", 1000)
    ciphertext, ref = _stored(b"x" * 2500)  # three segments
    assert len(ciphertext) == 2500 + 3 * 16 and SEGMENT > 1000
    assert open_blob(ciphertext, ref, "blob") == b"x" * 2500
    short = ciphertext[: 2 * 1016]  # the last segment dropped
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_blob(short, dataclasses.replace(ref, size=len(short)), "blob")


@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
    segment=st.sampled_from([1, 7, 1000, 1 << 30]),
)
def test_encrypting_parts_is_encrypting_them_joined(
    data: bytes, cuts: list[int], segment: int
) -> None:
    """A model's parts are sealed without being joined first (no copy of 100 MB before
    the first byte is encrypted): the same ciphertext, split anywhere, any segment size."""
    key = bytes(range(32))
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    parts = [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("syftflwr.crypto.seal.SEGMENT", segment)
        joined = encrypt_segments(AESGCM(key), data, b"aad")
        sealed = encrypt_parts(key, parts, b"aad")
        assert len(sealed) == 1, "sealed into one buffer (nothing downstream joins pieces)"
        assert sealed[0] == joined
        assert sealed_size(len(data)) == len(joined)


def test_a_seal_that_does_not_fill_its_buffer_ships_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ciphertext buffer is not zeroed first (100 MB zeroed: 45 ms before an
    upload's first byte): were the sizes ever to disagree, the stale rest of it must not
    leave the process, with or without ``python -O``."""
    import syftflwr.crypto.seal as seal_module

    real = seal_module.sealed_size
    monkeypatch.setattr(seal_module, "sealed_size", lambda size: real(size) + 1)
    with pytest.raises(EncryptionError, match=r"sealed \d+ bytes into a buffer of \d+"):
        encrypt_parts(bytes(range(32)), [MODEL], b"aad")
