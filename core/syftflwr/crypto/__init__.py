"""Core envelope encryption for transports without end-to-end encryption of their own.

* :mod:`.keys` — a participant's X25519 key pairs (private, 0600) and public records;
* :mod:`.trust` — pinned fingerprints, then trust on first use; changed keys refused;
* :mod:`.directory` — where the transport publishes and fetches public keys;
* :mod:`.seal` — sealing one envelope (X25519 + HKDF + AES-256-GCM, sender-authenticated);
* :mod:`.keyring` / :mod:`.roles` — the sealed RPC and events roles :mod:`syftflwr.session`
  wraps around any transport's roles.

The module imports ``cryptography`` (a dependency of core, as of Flower itself).
"""
