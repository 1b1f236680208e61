"""Which public key belongs to whom: pins in the project, then trust on first use.

Anyone who can write to the shared storage could publish a key under a peer's name, so a
key fetched from storage is never believed on its own:

1. ``[tool.syftflwr.keys]`` in the project's ``pyproject.toml`` pins fingerprints
   (written by ``syftflwr keys pin`` / ``bootstrap --pin-keys``; every participant holds
   the same file). A pinned peer presenting any other key is refused.
2. Otherwise the first key seen for a peer is remembered in the participant's private
   ``trust.sqlite`` (trust on first use), and a *changed* key is refused until a person
   accepts it with ``syftflwr keys trust EMAIL``.

Remembering is one SQLite transaction (``BEGIN IMMEDIATE``: read, then insert), so the
processes sharing a state dir (several runners, a ``keys trust`` while one runs) agree on
the first key of every peer and never drop each other's. A ``known_keys.json`` of earlier
versions is imported on first use and removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from syftflwr.crypto.keys import fingerprint, short
from syftflwr.errors import EncryptionError, UntrustedKeyError
from syftflwr.sqlitedb import Database

TRUST_FILE = "trust.sqlite"
LEGACY_KNOWN_KEYS = "known_keys.json"
"""Where versions before ``trust.sqlite`` remembered keys (imported, then removed)."""
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS known (
            email TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, updated_at REAL NOT NULL)""",
    ),
}
TrustStatus = Literal["pinned", "known", "new"]
KeyKind = Literal["encryption", "signing"]
SIGNING_TRUST_FILE = "signers.sqlite"
"""The signing keys believed, in the participant-level folder (:mod:`.signing`): a file
of its own, so the encryption trust of every app keeps its schema (older syftflwr refuses
a newer one)."""


class TrustStore:
    """Pins from the project plus this participant's remembered keys."""

    def __init__(
        self,
        state_dir: Path,
        pins: Mapping[str, str],
        *,
        project: str | None = None,
        kind: KeyKind = "encryption",
    ):
        """``kind="signing"``: participants' signing keys (:mod:`.signing`), in a file of
        their own, a change accepted with ``syftflwr keys trust-signer``."""
        signing = kind == "signing"
        self.path = Path(state_dir) / (SIGNING_TRUST_FILE if signing else TRUST_FILE)
        self.legacy_path = Path(state_dir) / LEGACY_KNOWN_KEYS
        self.pins = dict(pins)
        self.kind = kind
        self.project = project or (
            "your settings file's signing_keys" if signing else "the project's pyproject.toml"
        )
        self._key = "signing key" if signing else "key"

    @contextmanager
    def _open(self) -> Iterator[Database]:
        """The database, opened for one operation (so no handle outlives it), with any
        ``known_keys.json`` of an earlier version imported first."""
        with Database(self.path, what="trust store", migrations=MIGRATIONS) as db:
            if self.kind == "encryption":
                self._import_legacy(db)
            yield db

    def _import_legacy(self, db: Database) -> None:
        try:
            text = self.legacy_path.read_text()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._unreadable(exc) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise self._unreadable(exc) from None
        keys = data.get("keys", {}) if isinstance(data, dict) else {}
        now = time.time()
        with db.transaction():
            for email, fp in keys.items() if isinstance(keys, dict) else ():
                db.write(
                    "INSERT OR IGNORE INTO known (email, fingerprint, updated_at) VALUES (?,?,?)",
                    (str(email), str(fp), now),
                )
        self.legacy_path.unlink(missing_ok=True)

    def _unreadable(self, exc: Exception) -> EncryptionError:
        return EncryptionError(
            f"{self.legacy_path} is unreadable ({exc}); fix or delete it (deleting forgets "
            "every key trusted on first use)"
        )

    def known(self) -> dict[str, str]:
        """email -> fingerprint remembered on first use (or accepted since)."""
        if not self.path.exists() and (self.kind != "encryption" or not self.legacy_path.exists()):
            return {}  # nothing remembered yet: a read creates nothing
        with self._open() as db:
            return {str(e): str(fp) for e, fp in db.query("SELECT email, fingerprint FROM known")}

    def expected(self, email: str) -> tuple[str | None, str]:
        """The fingerprint expected for ``email`` and where that expectation comes from."""
        if email in self.pins:
            return self.pins[email], "pinned"
        return self.known().get(email), "known"

    def check(self, email: str, public: bytes) -> TrustStatus:
        """Accept ``public`` as ``email``'s key, or raise :class:`UntrustedKeyError`.

        A peer seen for the first time (no pin, nothing remembered) is remembered now.
        """
        fp = fingerprint(public)
        pinned = self.pins.get(email)
        if pinned is not None:
            if pinned != fp:
                repin = (
                    "fix the pin" if self.kind == "signing" else "re-pin with `syftflwr keys pin`"
                )
                raise UntrustedKeyError(
                    f"{email} presents {self._key} {short(fp)}, but {self.project} pins "
                    f"{short(pinned)} for it: refused. If {email} really rotated its key, "
                    f"compare fingerprints with them (`syftflwr keys show`) and {repin}; "
                    "otherwise someone is impersonating them"
                )
            return "pinned"
        with self._open() as db, db.transaction():
            row = db.one("SELECT fingerprint FROM known WHERE email = ?", (email,))
            if row is None:
                db.write(
                    "INSERT INTO known (email, fingerprint, updated_at) VALUES (?,?,?)",
                    (email, fp, time.time()),
                )
                return "new"
        remembered = str(row[0])
        if remembered == fp:
            return "known"
        accept = (
            f"keys trust-signer {email} --fingerprint {fp}"
            if self.kind == "signing"
            else f"keys trust {email}"
        )
        raise UntrustedKeyError(
            f"the {self._key} of {email} changed from {short(remembered)} to {short(fp)}: "
            "refused. If they rotated it, check the new fingerprint with them "
            f"(`syftflwr keys show`) and accept it with `syftflwr {accept}`; "
            "otherwise someone is impersonating them"
        )

    def trust(self, email: str, fp: str) -> None:
        """Remember ``fp`` for ``email`` (a person accepted it)."""
        with self._open() as db:
            db.write(
                "INSERT INTO known (email, fingerprint, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(email) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "updated_at = excluded.updated_at",
                (email, fp, time.time()),
            )
