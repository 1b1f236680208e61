"""A participant's signing key: one Ed25519 key per participant (not per app), for what
it vouches for in its own name — the jobs it submits, the decisions it takes (issue 19).

Per-app keys would make every new app a stranger to trust on first use, so the key lives
in the participant-level state folder, the one of the reserved jobs app
(``<state>/syftflwr-jobs/<email>/keys/ed25519.key``: private, mode 0600 in a 0700 folder,
refused if others can read it, exactly like the X25519 keys of :mod:`.keys`). Its public
half is published beside the jobs endpoint's encryption key (the ``ed25519`` field of the
public-key record) and believed like it (:class:`SignerTrust`): a pin in the
participant's settings file (``signing_keys``), else the first key seen, a changed key
refused until a person accepts it (``syftflwr keys trust-signer``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from syftflwr.config import ParticipantSettings, participant_state_dir, resolve_state_dir
from syftflwr.crypto.keyring import Keyring
from syftflwr.crypto.keys import (
    KEY_SIZE,
    KEYS_FOLDER,
    fingerprint,
    read_private_key,
    short,
    write_private_key,
)
from syftflwr.crypto.trust import TrustStatus, TrustStore
from syftflwr.errors import MissingKeyError, SignatureError, UntrustedKeyError
from syftflwr.names import JOBS_APP, validate_email

SIGNING_KEY = "ed25519.key"
SIGNATURE_SIZE = 64


def identity_dir(state_root: Path, email: str, *, create: bool = True) -> Path:
    """The participant-level state folder (the reserved jobs app's) of ``email``."""
    return participant_state_dir(state_root, JOBS_APP, email, create=create)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class SigningIdentity:
    """One participant's Ed25519 key; ``private`` never leaves this process."""

    email: str
    private: Ed25519PrivateKey = field(repr=False)
    public: bytes
    path: Path
    """The private key's file."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    @classmethod
    def load_or_create(cls, state_root: Path, email: str) -> SigningIdentity:
        """``email``'s signing key under ``state_root``, created on first use."""
        return cls.in_state_dir(identity_dir(state_root, validate_email(email)), email)

    @classmethod
    def in_state_dir(cls, state_dir: Path, email: str) -> SigningIdentity:
        """The signing key in ``email``'s participant-level ``state_dir``
        (:func:`identity_dir`), created on first use (by one process: the others racing
        it load the key it wrote)."""
        path = Path(state_dir) / KEYS_FOLDER / SIGNING_KEY
        try:
            return cls._load(path, email)
        except FileNotFoundError:
            pass
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        if write_private_key(path, raw):
            return cls(email, private, raw_public(private.public_key()), path)
        return cls._load(path, email)

    @classmethod
    def load(cls, state_root: Path, email: str) -> SigningIdentity:
        """``email``'s existing signing key; :class:`MissingKeyError` if it has none."""
        folder = identity_dir(state_root, validate_email(email), create=False)
        path = folder / KEYS_FOLDER / SIGNING_KEY
        try:
            return cls._load(path, email)
        except FileNotFoundError:
            raise MissingKeyError(
                f"{email} has no signing key yet ({path}); it is created the first time "
                "they submit or review a job (`syftflwr submit`, `syftflwr jobs`)"
            ) from None

    @classmethod
    def _load(cls, path: Path, email: str) -> SigningIdentity:
        raw = read_private_key(
            path,
            renew="the next `syftflwr jobs` or `syftflwr submit` makes a new one, which "
            "every peer must then accept (`syftflwr keys trust-signer`)",
        )
        private = Ed25519PrivateKey.from_private_bytes(raw)
        return cls(email, private, raw_public(private.public_key()), path)


def verify_signature(public: bytes, signature: bytes, data: bytes) -> None:
    """Check an Ed25519 ``signature`` of ``data`` by ``public``.

    :raises SignatureError: a malformed key or signature, or one that does not verify.
    """
    if len(public) != KEY_SIZE:
        raise SignatureError(f"a signing key has {KEY_SIZE} bytes, not {len(public)}")
    if len(signature) != SIGNATURE_SIZE:
        raise SignatureError(f"a signature has {SIGNATURE_SIZE} bytes, not {len(signature)}")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except InvalidSignature:
        raise SignatureError(
            f"the signature does not verify with the key {short(fingerprint(public))}: "
            "altered after signing, or signed by another key"
        ) from None


class SignerTrust:
    """The signing keys this participant believes: ``pins`` (email -> fingerprint) first,
    then the first key seen for a peer; a changed key is refused (same rules and store as
    :class:`~syftflwr.crypto.trust.TrustStore`, in the participant-level folder)."""

    def __init__(self, state_root: Path, email: str, pins: Mapping[str, str] | None = None) -> None:
        self.folder = identity_dir(state_root, validate_email(email))
        self.store = TrustStore(self.folder, pins or {}, kind="signing")

    @classmethod
    def of(
        cls, settings: ParticipantSettings, email: str, env: Mapping[str, str] = os.environ
    ) -> SignerTrust:
        """``email``'s trust in its state folder, with the pins of its settings file
        (``signing_keys``)."""
        base, _ = resolve_state_dir(settings, env=env)
        return cls(base, email, settings.signing_keys)

    def check(self, email: str, public: bytes) -> TrustStatus:
        """Believe ``public`` as ``email``'s signing key or raise
        :class:`~syftflwr.errors.UntrustedKeyError` (first sight is remembered)."""
        return self.store.check(validate_email(email), public)

    def status(self, email: str, public: bytes) -> TrustStatus | None:
        """What checking would say, without remembering anything: "pinned", "known",
        "new" (never seen), or None (differs from the pinned or known key)."""
        expected, source = self.store.expected(email)
        if expected is None:
            return "new"
        if expected != fingerprint(public):
            return None
        return "pinned" if source == "pinned" else "known"

    def key_of(
        self, keyring: Keyring, email: str, presented: bytes | None = None
    ) -> tuple[bytes, TrustStatus]:
        """``email``'s signing key as published beside its key of ``keyring``'s app,
        believed by these rules; when a statement carries its signer's key
        (``presented``), it must be that same key.

        :raises UntrustedKeyError: none published, another key presented, or a key that
            differs from the pinned or known one.
        """
        record = keyring.fetch_record(email)
        if record is None or record.signing is None:
            raise UntrustedKeyError(
                f"{email} publishes no signing key yet, so nothing signed in its name can "
                "be checked: refused. It is published when they run `syftflwr submit` or "
                "`syftflwr jobs`"
            )
        if presented is not None and presented != record.signing:
            raise UntrustedKeyError(
                f"signed with the key {short(fingerprint(presented))}, but {email} "
                f"publishes the signing key {short(fingerprint(record.signing))}: refused "
                "(signed by someone else, or with a key they replaced since)"
            )
        return record.signing, self.check(email, record.signing)

    def accept(self, email: str, fp: str) -> None:
        """A person accepted ``fp`` as ``email``'s signing key (it changed)."""
        self.store.trust(validate_email(email), fp)
