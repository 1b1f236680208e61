"""Sealing one envelope: round trips, and every tampering the threat model names —
flipped bytes, changed routing fields, swapped senders, replays under another id or kind,
a key the recipient does not hold, plaintext where a sealed message is expected."""

from __future__ import annotations

import base64
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.crypto import seal as seal_module
from syftflwr.crypto.keys import KeyPair
from syftflwr.crypto.seal import H_FROM, is_sealed, open_sealed, seal
from syftflwr.envelope import Request, Response, decode, encode
from syftflwr.errors import DecryptionError

AGG, DS = "agg@example.org", "ds@example.org"
A, B, MALLORY = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()


def request(body: bytes = b"weights " * 128) -> Request:
    return Request.new(
        sender=AGG, recipient=DS, app="quickstart", endpoint="messages", body=body, ttl=60
    )


@pytest.mark.parametrize("size", [0, 1, 1024, 3 * 1024 * 1024 + 7])
def test_round_trip_keeps_every_field(size: int) -> None:
    original = request(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    sealed = seal(original, A, B.public)
    assert is_sealed(sealed) and bytes(sealed.body) != bytes(original.body)
    opened = open_sealed(decode(encode(sealed)), [B])
    assert bytes(opened.body) == bytes(original.body)
    assert replace(opened, body=b"") == replace(original, body=b"")


def test_response_with_error_status_round_trips() -> None:
    response = request().error_reply("handler failed: secret detail")
    opened = open_sealed(seal(response, B, A.public), [A])
    assert isinstance(opened, Response) and opened.error_text == "handler failed: secret detail"


def test_several_segments_are_bound_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seal_module, "SEGMENT", 100)
    original = request(bytes(range(250)))
    sealed = seal(original, A, B.public)
    assert len(sealed.body) == 250 + 3 * 16
    assert bytes(open_sealed(sealed, [B]).body) == bytes(original.body)
    body = bytes(sealed.body)
    for tampered in (body[:116], body[116:232] + body[:116] + body[232:], body[:-1]):
        with pytest.raises(DecryptionError, match="failed authentication"):
            open_sealed(replace(sealed, body=tampered), [B])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_body_bit_is_refused(data: st.DataObject) -> None:
    sealed = seal(request(b"model update"), A, B.public)
    body = bytearray(sealed.body)
    index = data.draw(st.integers(0, len(body) - 1))
    body[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionError):
        open_sealed(replace(sealed, body=bytes(body)), [B])


@pytest.mark.parametrize(
    "change",
    [
        {"id": "0" * 32},  # replayed under another id
        {"sender": "mallory@example.org"},
        {"recipient": "other@example.org"},
        {"endpoint": "other"},
        {"app": "other-app"},
        {"expires_at": 9e12},  # an expired message made fresh again
        {"created_at": 1.0},
    ],
)
def test_routing_fields_cannot_be_changed(change: dict[str, object]) -> None:
    sealed = seal(request(), A, B.public)
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_sealed(replace(sealed, **change), [B])  # type: ignore[arg-type]


def test_a_request_cannot_be_replayed_as_a_response() -> None:
    sealed = seal(request(), A, B.public)
    as_response = Response(**{f: getattr(sealed, f) for f in ("id", "sender", "recipient",
        "app", "endpoint", "body", "created_at", "expires_at", "headers")})  # fmt: skip
    with pytest.raises(DecryptionError):
        open_sealed(as_response, [B])


def test_headers_are_authenticated() -> None:
    sealed = seal(replace(request(), headers={"x-round": "3"}), A, B.public)
    with pytest.raises(DecryptionError):
        open_sealed(replace(sealed, headers={**sealed.headers, "x-round": "4"}), [B])


def test_swapped_sender_key_fails_authentication() -> None:
    """Mallory re-labels A's message as coming from her own key (or vice versa): the
    static-static part of the key agreement no longer matches."""
    sealed = seal(request(), A, B.public)
    import base64

    forged = replace(
        sealed, headers={**sealed.headers, H_FROM: base64.b64encode(MALLORY.public).decode()}
    )
    with pytest.raises(DecryptionError, match="failed authentication"):
        open_sealed(forged, [B])


def test_sealed_for_someone_else_names_the_key() -> None:
    sealed = seal(request(), A, MALLORY.public)
    with pytest.raises(DecryptionError, match="does not hold"):
        open_sealed(sealed, [B])


def test_plaintext_is_refused_when_sealing_is_expected() -> None:
    with pytest.raises(DecryptionError, match="is not encrypted"):
        open_sealed(request(), [B])


def test_a_retired_key_still_opens_what_was_sealed_to_it() -> None:
    sealed = seal(request(), A, B.public)
    assert bytes(open_sealed(sealed, [KeyPair.generate(), B]).body).startswith(b"weights")


SEAL_HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode()),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["seal", "seal.epk", "seal.from", "seal.to"]), SEAL_HEADER_VALUES
    ),
    st.binary(max_size=64),
)
def test_hostile_seal_headers_only_ever_fail_as_decryption_errors(
    headers: dict[str, str], body: bytes
) -> None:
    """Whatever a writer of the shared storage puts in the clear headers, opening fails
    cleanly (one exception type, with a message) — never a crash from a key parser."""
    sealed = seal(request(b"secret"), A, B.public)
    forged = replace(sealed, headers={**sealed.headers, **headers}, body=body or sealed.body)
    try:
        opened = open_sealed(forged, [B])
    except DecryptionError as exc:
        assert str(exc)
    else:  # only an untouched envelope may open
        assert bytes(opened.body) == b"secret" and forged.headers == sealed.headers


def test_sealing_keeps_no_private_key_alive() -> None:
    """The static X25519 secret was cached process-wide by private key (``lru_cache``,
    up to 1,024 keys alive after their owners dropped them); now it lives with the pair."""
    sender, recipient = KeyPair.generate(), KeyPair.generate()
    before = sys.getrefcount(sender.private), sys.getrefcount(recipient.private)
    sealed = seal(request(), sender, recipient.public)
    assert open_sealed(sealed, [recipient]).body == request().body
    assert (sys.getrefcount(sender.private), sys.getrefcount(recipient.private)) == before
