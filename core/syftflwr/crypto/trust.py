"""Which public key belongs to whom: pins in the project, then trust on first use.

Anyone who can write to the shared storage could publish a key under a peer's name, so a
key fetched from storage is never believed on its own:

1. ``[tool.syftflwr.keys]`` in the project's ``pyproject.toml`` pins fingerprints
   (written by ``syftflwr keys pin`` / ``bootstrap --pin-keys``; every participant holds
   the same file). A pinned peer presenting any other key is refused.
2. Otherwise the first key seen for a peer is remembered in the participant's private
   ``known_keys.json`` (trust on first use), and a *changed* key is refused until a person
   accepts it with ``syftflwr keys trust EMAIL``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from syftflwr.crypto.keys import fingerprint, short
from syftflwr.errors import EncryptionError, UntrustedKeyError

KNOWN_KEYS = "known_keys.json"
TrustStatus = Literal["pinned", "known", "new"]


class TrustStore:
    """Pins from the project plus this participant's remembered keys."""

    def __init__(self, state_dir: Path, pins: Mapping[str, str], *, project: str | None = None):
        self.path = Path(state_dir) / KNOWN_KEYS
        self.pins = dict(pins)
        self.project = project or "the project's pyproject.toml"
        self._lock = threading.Lock()

    def known(self) -> dict[str, str]:
        """email -> fingerprint remembered on first use (or accepted since)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise EncryptionError(
                f"{self.path} is unreadable ({exc}); fix or delete it (deleting forgets "
                "every key trusted on first use)"
            ) from None
        keys = data.get("keys", {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}

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
        with self._lock:
            pinned = self.pins.get(email)
            if pinned is not None:
                if pinned != fp:
                    raise UntrustedKeyError(
                        f"{email} presents key {short(fp)}, but {self.project} pins "
                        f"{short(pinned)} for it: refused. If {email} really rotated its key, "
                        "compare fingerprints with them (`syftflwr keys show`) and re-pin with "
                        "`syftflwr keys pin`; otherwise someone is impersonating them"
                    )
                return "pinned"
            known = self.known()
            remembered = known.get(email)
            if remembered == fp:
                return "known"
            if remembered is not None:
                raise UntrustedKeyError(
                    f"the key of {email} changed from {short(remembered)} to {short(fp)}: "
                    "refused. If they rotated it, check the new fingerprint with them "
                    f"(`syftflwr keys show`) and accept it with `syftflwr keys trust {email}`; "
                    "otherwise someone is impersonating them"
                )
            known[email] = fp
            self._save(known)
            return "new"

    def trust(self, email: str, fp: str) -> None:
        """Remember ``fp`` for ``email`` (a person accepted it)."""
        with self._lock:
            known = self.known()
            known[email] = fp
            self._save(known)

    def _save(self, known: Mapping[str, str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{KNOWN_KEYS}.{os.getpid()}.{time.monotonic_ns()}")
        tmp.write_text(json.dumps({"keys": dict(sorted(known.items()))}, indent=1))
        tmp.replace(self.path)
