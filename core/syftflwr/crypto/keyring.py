"""One participant's view of keys: its own pairs, its peers' trusted public keys, and the
transport's key directory — what the sealed roles need, nothing more."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TypeVar, cast

from syftflwr.crypto.keys import KeyStore, PublicKeyRecord, fingerprint, short
from syftflwr.crypto.seal import is_sealed, open_sealed, seal, sender_public
from syftflwr.crypto.trust import TrustStatus, TrustStore
from syftflwr.deadline import remaining
from syftflwr.envelope import Envelope
from syftflwr.errors import EncryptionError, MissingKeyError, StorageError
from syftflwr.names import validate_email
from syftflwr.roles import ExplainsMissingKeys, KeyDirectory, offers

log = logging.getLogger("syftflwr.crypto")
E = TypeVar("E", bound=Envelope)

DEFAULT_KEY_WAIT = 60.0
"""Seconds a first send waits for a peer's public key to appear (peers publish it when
they start); then it fails closed with :class:`MissingKeyError`."""


class Keyring:
    """Own key pairs + trust decisions + the transport's key directory."""

    def __init__(
        self,
        email: str,
        store: KeyStore,
        trust: TrustStore,
        directory: KeyDirectory | None,
        *,
        peers: Sequence[str] = (),
        key_wait: float = DEFAULT_KEY_WAIT,
        signing: bytes | None = None,
    ) -> None:
        self.email = validate_email(email)
        self.signing = signing
        """The participant's public signing key, published beside its encryption key
        (:mod:`syftflwr.crypto.signing`; the jobs endpoint's keyring has it)."""
        self.store = store
        self.trust = trust
        self.directory = directory
        self.peers = tuple(dict.fromkeys(p for p in peers if p != self.email))
        """Who reads this participant's key (it never needs its own: it holds it)."""
        self.key_wait = key_wait
        self.own = store.load_or_create()
        self._pairs = [self.own, *store.retired()]
        self._peer_keys: dict[str, bytes] = {self.email: self.own.public}
        self._lock = threading.Lock()
        self._trust_lock = threading.Lock()
        """One trust decision at a time in this process: sends go out in parallel (a round
        seals to every datasite at once) and each first use of a key is a write."""

    # -- publishing ---------------------------------------------------------------
    def publish(self) -> None:
        """Publish the current public key to the peers that read it."""
        if self.directory is None:
            raise MissingKeyError(
                "this transport cannot publish public keys, so core encryption cannot be "
                "used with it; set encryption = false in [tool.syftflwr] (messages are then "
                "not encrypted) or choose a transport that supports it"
            )
        self.directory.publish(self.store.record(self.signing).encode(), self.peers)

    # -- peers' keys ----------------------------------------------------------------
    def recipient_key(self, email: str, *, wait: float | None = None) -> bytes:
        """``email``'s trusted public key, fetched (and waited for) on first use; the
        wait also ends at the caller's deadline (:mod:`syftflwr.deadline`: a round's)."""
        with self._lock:
            cached = self._peer_keys.get(email)
        if cached is not None:
            return cached
        deadline = time.monotonic() + remaining(self.key_wait if wait is None else wait)
        delay, announced = 0.05, False
        while True:
            record = self.fetch_record(email)
            if record is not None:
                with self._trust_lock:
                    status = self.trust.check(email, record.public)
                self._note(email, record.public, status)
                with self._lock:
                    self._peer_keys[email] = record.public
                return record.public
            if time.monotonic() >= deadline:
                raise MissingKeyError(self._no_key(email))
            if not announced:
                log.info("waiting up to %.0fs for the public key of %s", self.key_wait, email)
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _no_key(self, email: str) -> str:
        """Why the wait for ``email``'s key ended: the directory's reason when it can
        tell (:class:`~syftflwr.roles.ExplainsMissingKeys`)."""
        reason = (
            cast(ExplainsMissingKeys, self.directory).explain_missing(email)
            if offers(self.directory, ExplainsMissingKeys)
            else None
        )
        if reason:
            return f"{reason}; nothing is sent to it (never in plaintext)"
        return (
            f"no public key of {email} was found, so nothing can be sent to it "
            "encrypted (and nothing is sent in plaintext). It is published when "
            f"{email} starts `syftflwr run` (or runs `syftflwr keys publish`); check "
            "that they use the same project and transport"
        )

    def published_key(self, email: str) -> bytes | None:
        """The key ``email`` publishes now, trusted or NOT: only for sealing what is no
        secret (a stop that tells a refused datasite the run is over)."""
        record = self.fetch_record(email)
        return None if record is None else record.public

    def fetch_record(self, email: str) -> PublicKeyRecord | None:
        """``email``'s published record as found now (None if absent), NOT yet trusted:
        callers decide (``recipient_key`` checks trust; ``syftflwr keys trust`` asks)."""
        if self.directory is None:
            self.publish()  # raises the explanation
            return None
        try:
            raw = self.directory.fetch(email)
        except StorageError as exc:
            log.warning("could not read the public key of %s: %s", email, exc)
            return None
        if raw is None:
            return None
        return PublicKeyRecord.decode(raw, expected_email=email, source=f"public key of {email}")

    def trusted_key(self, email: str) -> bytes | None:
        """``email``'s key as this participant already trusts it, or None — never trusts
        a new one. For sealing the error reply to a request that could not be
        authenticated: only the key its claimed sender held before can open it."""
        with self._lock:
            cached = self._peer_keys.get(email)
        if cached is not None:
            return cached
        try:
            expected, _ = self.trust.expected(email)
            record = None if expected is None else self.fetch_record(email)
        except EncryptionError:
            return None
        if record is None or fingerprint(record.public) != expected:
            return None
        return record.public

    def _note(self, email: str, public: bytes, status: TrustStatus) -> None:
        if status == "new":  # the normal first contact in an unpinned project: not a warning
            log.info(
                "trusting the key %s of %s on first use (pin it for everyone with "
                "`syftflwr keys pin`)",
                short(fingerprint(public)),
                email,
            )

    def sender_key(self, envelope: Envelope) -> bytes:
        """The sender key a sealed envelope claims, once trusted for its sender."""
        public = sender_public(envelope)
        with self._lock:
            cached = self._peer_keys.get(envelope.sender)
        if cached == public:
            return public
        if envelope.sender == self.email:
            if any(p.public == public for p in self._pairs):
                return public
            raise EncryptionError(
                f"{envelope.kind} {envelope.id} claims to come from this participant but "
                "names a key it does not hold: forged"
            )
        with self._trust_lock:
            status = self.trust.check(envelope.sender, public)
        self._note(envelope.sender, public, status)
        with self._lock:
            self._peer_keys[envelope.sender] = public
        return public

    # -- sealing ------------------------------------------------------------------------
    def seal_for(self, envelope: E, recipient_public: bytes | None = None) -> E:
        public = recipient_public or self.recipient_key(envelope.recipient)
        return seal(envelope, self.own, public)

    def open(self, envelope: E) -> E:
        """Check the claimed sender key against trust, then decrypt."""
        if is_sealed(envelope):
            self.sender_key(envelope)
        return open_sealed(envelope, self._pairs)
