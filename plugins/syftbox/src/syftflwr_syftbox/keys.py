"""X3DH keys through syft-crypto, without the network: the ``syft-flwr-0.5`` profile's
encryption (as syft-flwr 0.5 on SyftBox). The native profile does not use them: core
seals it, with keys published in the outboxes (``wire.py``).

syft-crypto keeps a participant's private keys in
``{data_dir}/../.syftbox/{sha256(server_url::email)[:8]}/pvt.jwks.json`` (so several
participants sharing one data dir never share keys) and publishes the public half as a
DID document at ``{data_dir}/datasites/{email}/public/did.json``, which SyftBox syncs
to every peer. Its ``ensure_bootstrap`` also fetches that document over HTTPS from the
configured server (10 s timeout) on every call; this module reads only the synced local
copies, so nothing here ever waits on a network or tells a server who talks to whom.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from syftflwr.plugin import EncryptionError, atomic_write

from syftflwr_syftbox.options import DEFAULT_KEY_WAIT, SyftBoxConfig

log = logging.getLogger("syftflwr.syftbox")


def _raw(key: x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class MissingPeerKeysError(EncryptionError):
    """A peer has published no (valid) public keys: nothing is sent to it, ever in plaintext."""


class KeyRing:
    """This participant's syft-crypto client (its keys created and its DID published)
    and its peers' verified public signed prekeys."""

    def __init__(
        self, config: SyftBoxConfig, data_dir: Path, *, key_wait: float = DEFAULT_KEY_WAIT
    ) -> None:
        """Creates and publishes this participant's keys if it has none: a datasite's
        keys are published when it connects, before it serves or sends anything."""
        from syft_core import Client
        from syft_core.config import SyftClientConfig

        self.email = config.email
        self.key_wait = key_wait
        self.client = Client(
            SyftClientConfig.model_validate(
                {
                    "path": config.path,
                    "email": config.email,
                    "data_dir": data_dir,
                    "server_url": config.server_url,
                }
            )
        )
        self._peers: dict[str, tuple[tuple[int, int, int], x25519.X25519PublicKey]] = {}
        self._lock = threading.Lock()
        self._bootstrap()

    # -- own keys ------------------------------------------------------------------------
    def did_path(self, email: str) -> Path:
        from syft_crypto import did_path

        return Path(did_path(self.client, email))

    def _bootstrap(self) -> None:
        """Create keys and DID on first use, re-publish a lost DID from existing keys,
        and refuse (with the fix) keys that do not match the published DID."""
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from syft_crypto import (
            create_x3dh_did_document,
            keys_exist,
            load_private_keys,
            private_key_path,
            save_private_keys,
        )

        did_file = self.did_path(self.email)
        if not keys_exist(self.client):
            if did_file.exists():
                raise EncryptionError(
                    f"{self.email} has a published DID ({did_file}) but no private keys at "
                    f"{private_key_path(self.client)}; restore the keys from a backup, or "
                    "delete the DID to publish new ones (old messages become unreadable)"
                )
            identity = ed25519.Ed25519PrivateKey.generate()
            spk = x25519.X25519PrivateKey.generate()
            save_private_keys(self.client, identity, spk)
        identity, spk = load_private_keys(self.client)
        if did_file.exists():
            published = self._verified_key(self.email, did_file)
            if _raw(published) != _raw(spk.public_key()):
                raise EncryptionError(
                    f"the private keys at {private_key_path(self.client)} do not match "
                    f"{self.email}'s published DID {did_file}; restore the matching keys, "
                    "or delete the DID to publish new ones (old messages become unreadable)"
                )
        else:
            doc = create_x3dh_did_document(
                self.email,
                self.client.config.server_url.host or "syftbox.net",
                identity.public_key(),
                spk.public_key(),
                identity.sign(_raw(spk.public_key())),
            )
            atomic_write(did_file, json.dumps(doc, indent=2))  # peers read it while it syncs

    # -- peers ---------------------------------------------------------------------------
    def recipient_key(self, email: str) -> x25519.X25519PublicKey:
        """``email``'s key for sending: on a fresh federation the aggregator may send
        before a datasite has connected (and published its DID) or before SyftBox has
        synced it, so wait up to ``key_wait`` seconds for it to appear; then fail closed
        (:class:`MissingPeerKeysError`)."""
        deadline = time.monotonic() + self.key_wait
        delay, announced = 0.05, False
        while True:
            try:
                return self.peer_key(email)
            except MissingPeerKeysError:
                if time.monotonic() >= deadline:
                    raise
            if not announced:
                log.info("waiting up to %.0fs for the public keys of %s", self.key_wait, email)
                announced = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def peer_key(self, email: str) -> x25519.X25519PublicKey:
        """``email``'s signed prekey from its synced DID, signature checked; cached until
        the file changes."""
        path = self.did_path(email)
        try:
            st = path.stat()
        except OSError:
            raise MissingPeerKeysError(
                f"no public keys of {email}: {path} does not exist (waited up to "
                f"{self.key_wait:g}s, the syftbox option key_wait). {email} must run syftflwr "
                "(or a syft-crypto app) once so its DID is published and synced; encryption "
                "is on, so nothing is sent to or accepted from it in plaintext"
            ) from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._peers.get(email)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        key = self._verified_key(email, path)
        with self._lock:
            self._peers[email] = (stamp, key)
        return key

    def _verified_key(self, email: str, path: Path) -> x25519.X25519PublicKey:
        from syft_crypto.did_utils import (
            get_identity_public_key_from_did,
            get_public_key_from_did,
        )

        try:
            doc: Any = json.loads(path.read_bytes())
            spk: x25519.X25519PublicKey = get_public_key_from_did(doc)
            identity = get_identity_public_key_from_did(doc)
            signature = _signature(doc)
            identity.verify(signature, _raw(spk))
        except InvalidSignature:
            raise MissingPeerKeysError(
                f"the DID of {email} at {path} is not signed by its identity key; "
                f"ask {email} to re-publish it (delete it and restart syftflwr there)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise MissingPeerKeysError(
                f"cannot read the public keys of {email} from {path}: {exc}; "
                f"ask {email} to re-publish its DID (or wait for SyftBox to finish syncing it)"
            ) from None
        return spk


def _signature(doc: Any) -> bytes:
    import base64

    for entry in doc.get("keyAgreement", []):
        if str(entry.get("id", "")).endswith("#signed-prekey"):
            return base64.urlsafe_b64decode(entry["publicKeyJwk"]["signature"] + "===")
    raise KeyError("no signed-prekey signature in the DID document")
