"""A participant's key pairs on disk, and the public-key record peers fetch.

One X25519 key pair per participant and app, in the participant's private state
directory (``<state>/keys/``, mode 0700; private keys 0600, refused if anyone else can
read them). Rotation keeps the previous private keys so messages sealed to them while
peers still had the old public key can be opened; only the current one is published.

The public record is a small JSON document::

    {"format": "syftflwr-public-key/1", "email": "...", "x25519": "<base64>",
     "fingerprint": "sha256:<hex>", "created_at": 1700000000.0,
     "ed25519": "<base64>", "signing_fingerprint": "sha256:<hex>"}

The last two are optional: the participant's signing key (:mod:`syftflwr.crypto.signing`),
published beside the encryption key of the jobs endpoint. Readers that predate them
ignore them, so the format tag stays the same.

It carries no authority of its own: whether a record is believed is the trust store's
decision (:mod:`syftflwr.crypto.trust`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from syftflwr.atomic import atomic_write
from syftflwr.envelope import Buffer
from syftflwr.errors import EncryptionError, MissingKeyError
from syftflwr.names import validate_email

RECORD_FORMAT = "syftflwr-public-key/1"
KEY_SIZE = 32
KEYS_FOLDER = "keys"
CURRENT = "x25519.key"
RETIRED_SUFFIX = ".retired.key"
MAX_RECORD_SIZE = 4096
MAX_PEERS = 4096
"""Static secrets one key pair keeps (a federation has fewer peers)."""


def fingerprint(public: bytes) -> str:
    """``sha256:`` + the hex SHA-256 of the raw public key: what users compare and pin."""
    return "sha256:" + hashlib.sha256(public).hexdigest()


def short(fp: str) -> str:
    """A fingerprint shortened for log lines and tables (still 64 bits)."""
    return fp.removeprefix("sha256:")[:16]


def raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class KeyPair:
    """One X25519 key pair; ``private`` never leaves this process."""

    private: X25519PrivateKey
    public: bytes
    _static: dict[bytes, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def static_secret(self, peer_public: bytes) -> bytes:
        """X25519 with a peer's static key: the same for every message between two
        participants, so computed once per peer (a 1 KB message then costs 3 key
        agreements, not 5). Kept with the pair, so it goes when the pair does (a
        process-wide cache kept every private key it had seen alive)."""
        secret = self._static.get(peer_public)
        if secret is None:
            if len(self._static) >= MAX_PEERS:
                self._static.clear()
            peer = X25519PublicKey.from_public_bytes(peer_public)
            secret = self._static[peer_public] = self.private.exchange(peer)
        return secret

    @classmethod
    def generate(cls) -> KeyPair:
        private = X25519PrivateKey.generate()
        return cls(private, raw_public(private.public_key()))

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> KeyPair:
        private = X25519PrivateKey.from_private_bytes(raw)
        return cls(private, raw_public(private.public_key()))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def private_bytes(self) -> bytes:
        return self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@dataclass(frozen=True)
class PublicKeyRecord:
    """A peer's published public key, as read from the key directory."""

    email: str
    public: bytes
    created_at: float
    signing: bytes | None = None
    """The participant's Ed25519 signing key, when published beside this key."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def encode(self) -> bytes:
        doc: dict[str, object] = {
            "format": RECORD_FORMAT,
            "email": self.email,
            "x25519": base64.b64encode(self.public).decode(),
            "fingerprint": self.fingerprint,
            "created_at": self.created_at,
        }
        if self.signing is not None:
            doc["ed25519"] = base64.b64encode(self.signing).decode()
            doc["signing_fingerprint"] = fingerprint(self.signing)
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def decode(cls, data: Buffer, *, expected_email: str, source: str) -> PublicKeyRecord:
        """Parse and check a record; anything odd is an :class:`EncryptionError` naming
        ``source`` (a record is input from shared storage, so it is hostile until checked)."""
        raw = bytes(data)
        if len(raw) > MAX_RECORD_SIZE:
            raise EncryptionError(f"{source}: public-key record is {len(raw)} bytes, too big")
        try:
            doc = json.loads(raw)
            if doc["format"] != RECORD_FORMAT:
                raise ValueError(f"unknown format {doc['format']!r}")
            public = base64.b64decode(doc["x25519"], validate=True)
            email = validate_email(doc["email"])
            created_at = float(doc["created_at"])
            signing = doc.get("ed25519")
            if signing is not None:
                signing = base64.b64decode(signing, validate=True)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EncryptionError(
                f"{source}: unreadable public-key record ({exc}); the owner can publish a "
                "fresh one by running `syftflwr keys publish`"
            ) from None
        if len(public) != KEY_SIZE:
            raise EncryptionError(f"{source}: public key has {len(public)} bytes, not 32")
        if signing is not None and len(signing) != KEY_SIZE:
            raise EncryptionError(f"{source}: signing key has {len(signing)} bytes, not 32")
        if email != expected_email:
            raise EncryptionError(
                f"{source}: the record names {email}, but it was published for "
                f"{expected_email}; it was put there by mistake or by an attacker"
            )
        return cls(email, public, created_at, signing)


class KeyStore:
    """The key pairs of one participant in its private state directory."""

    def __init__(self, state_dir: Path, email: str) -> None:
        self.email = validate_email(email)
        self.folder = Path(state_dir) / KEYS_FOLDER

    @property
    def current_path(self) -> Path:
        return self.folder / CURRENT

    def exists(self) -> bool:
        return self.current_path.exists()

    def load_or_create(self) -> KeyPair:
        """The current key pair, created on first use (private key mode 0600)."""
        try:
            return self._load(self.current_path)
        except FileNotFoundError:
            pass
        pair = KeyPair.generate()
        if self._write_new(self.current_path, pair):
            return pair
        return self._load(self.current_path)  # another process created it first

    def current(self) -> KeyPair:
        """The current key pair; :class:`MissingKeyError` if there is none yet."""
        try:
            return self._load(self.current_path)
        except FileNotFoundError:
            raise MissingKeyError(
                f"{self.email} has no key pair yet in {self.folder}; run `syftflwr keys "
                "publish` (creates and publishes it) or start `syftflwr run` once"
            ) from None

    def retired(self) -> list[KeyPair]:
        """Previous key pairs, newest first (kept to open messages sealed before a rotation)."""
        if not self.folder.is_dir():
            return []
        paths = sorted(
            self.folder.glob(f"*{RETIRED_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        return [self._load(p) for p in paths]

    def all_pairs(self) -> list[KeyPair]:
        """Current first, then retired ones."""
        return [self.load_or_create(), *self.retired()]

    def rotate(self) -> tuple[KeyPair, KeyPair]:
        """Retire the current key pair and create a new one; returns ``(old, new)``."""
        old = self.load_or_create()
        retired = self.folder / f"{short(old.fingerprint)}{RETIRED_SUFFIX}"
        self.current_path.replace(retired)
        new = KeyPair.generate()
        if not self._write_new(self.current_path, new):  # pragma: no cover - raced rotate
            new = self._load(self.current_path)
        return old, new

    # -- files ------------------------------------------------------------------
    def _write_new(self, path: Path, pair: KeyPair) -> bool:
        return write_private_key(path, pair.private_bytes())

    def _load(self, path: Path) -> KeyPair:
        return KeyPair.from_private_bytes(
            read_private_key(path, renew="run `syftflwr keys rotate` to make a new one")
        )

    def record(self, signing: bytes | None = None) -> PublicKeyRecord:
        """The public record of the current key (what gets published), with the
        participant's public ``signing`` key beside it when given."""
        pair = self.load_or_create()
        created = self.current_path.stat().st_mtime
        return PublicKeyRecord(self.email, pair.public, created, signing)


def write_private_key(path: Path, raw: bytes) -> bool:
    """Create ``path`` exclusively with mode 0600 from the start (never readable by
    others, not even for an instant) in a folder of mode 0700; False if it already
    exists (another process created it first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.parent.stat().st_mode) != 0o700:
        path.parent.chmod(0o700)
    try:
        atomic_write(path, raw, mode=0o600, exclusive=True)
    except FileExistsError:
        return False
    return True


def read_private_key(path: Path, *, renew: str) -> bytes:
    """The raw private key in ``path``, refused if other users can read it or if it is
    damaged (``renew`` says how to make a new one). :class:`FileNotFoundError` if absent."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise EncryptionError(
            f"private key {path} can be read by other users (mode {mode:o}); "
            f"fix it with `chmod 600 {path}` (and replace the key if someone may have "
            f"copied it: {renew})"
        )
    raw = path.read_bytes()
    if len(raw) != KEY_SIZE:
        raise EncryptionError(
            f"private key {path} is damaged ({len(raw)} bytes, expected {KEY_SIZE}); "
            f"move it away and {renew}"
        )
    return raw
