"""What people do with keys, for ``syftflwr keys``, ``bootstrap --pin-keys`` and ``doctor``.

Two views of one participant's keys:

* :class:`LocalKeys` (:func:`syftflwr.session.local_keys`) — its own key pairs and its
  trust decisions, from its private state directory alone (no transport: works offline
  and before anything is configured to run);
* :func:`published_keys` — what its peers have published, through a connected
  participant's key directory (records are fetched, never trusted by this module).

:func:`peer_statuses` combines them into one verdict per participant, the table users
read before they pin or accept a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from syftflwr.config import ProjectConfig
from syftflwr.crypto.keys import KeyStore
from syftflwr.crypto.trust import TrustStore
from syftflwr.errors import ConfigError, EncryptionError, SyftflwrError

if TYPE_CHECKING:
    from syftflwr.crypto.keyring import Keyring

Verdict = Literal["pinned", "trusted", "new", "changed", "unpublished", "unchecked", "error"]


@dataclass(frozen=True)
class LocalKeys:
    """One participant's key store and trust store in one project."""

    email: str
    project: ProjectConfig
    state_dir: Path
    store: KeyStore
    trust: TrustStore

    @classmethod
    def at(cls, project: ProjectConfig, email: str, state_dir: Path) -> LocalKeys:
        """The keys kept in a participant's (already resolved) state directory."""
        return cls(
            email=email,
            project=project,
            state_dir=state_dir,
            store=KeyStore(state_dir, email),
            trust=TrustStore(state_dir, project.keys, project=str(project.path or "")),
        )


@dataclass(frozen=True)
class Published:
    """A peer's published key as fetched now: its fingerprint, or why there is none."""

    fingerprint: str | None
    problem: str | None = None


def published_keys(keyring: Keyring, emails: tuple[str, ...]) -> dict[str, Published]:
    """Fetch each participant's published record through ``keyring``'s directory."""
    found: dict[str, Published] = {}
    for email in emails:
        try:
            record = keyring.fetch_record(email)
        except SyftflwrError as exc:  # an unreadable or misplaced record
            found[email] = Published(None, str(exc))
            continue
        found[email] = Published(record.fingerprint if record else None)
    return found


@dataclass(frozen=True)
class PeerStatus:
    """What this participant believes about one participant's key, and the verdict."""

    email: str
    role: str
    pinned: str | None
    known: str | None
    published: Published | None
    """None: not looked up (offline view)."""

    @property
    def verdict(self) -> Verdict:
        published = self.published
        expected = self.pinned or self.known
        if published is not None and published.problem:
            return "error"
        seen = published.fingerprint if published is not None else None
        if published is not None and seen is None:
            return "unpublished"
        if expected is None:
            return "new" if seen else "unchecked"
        if seen is not None and seen != expected:
            return "changed"
        return "pinned" if self.pinned else "trusted"

    @property
    def explanation(self) -> str:
        return {
            "pinned": "matches the project's pin",
            "trusted": "matches the key trusted on first use",
            "new": "published, not trusted yet: trusted on first use when first met "
            "(or pin it now with `syftflwr keys pin`)",
            "changed": (
                "REFUSED: differs from the project's pin; if they rotated it, check the "
                f"new fingerprint with them and re-pin (`syftflwr keys pin --replace "
                f"{self.email}`)"
                if self.pinned
                else "REFUSED: differs from the key trusted on first use; if they rotated "
                f"it, check with them and run `syftflwr keys trust {self.email}`"
            ),
            "unpublished": "no key published yet (they publish it when they start "
            "`syftflwr run` or run `syftflwr keys publish`)",
            "unchecked": "not met yet (pass --published to look it up)",
            "error": self.published.problem if self.published else "",
        }[self.verdict] or ""


def peer_statuses(
    keys: LocalKeys, published: Mapping[str, Published] | None = None
) -> list[PeerStatus]:
    """One status per participant this one exchanges keys with, in project order."""
    known = keys.trust.known()
    return [
        PeerStatus(
            email=email,
            role=keys.project.role_of(email),
            pinned=keys.project.keys.get(email),
            known=known.get(email),
            published=None if published is None else published.get(email, Published(None)),
        )
        for email in keys.project.correspondents(keys.email)
    ]


def require_encryption(project: ProjectConfig) -> None:
    """Key commands that talk to peers make no sense on a project without encryption."""
    if not project.encryption_enabled:
        raise ConfigError(
            "core encryption is off in this project (encryption = false), so keys are "
            "neither published nor used",
            source=project.source_of("encryption"),
            key="tool.syftflwr.encryption",
            fix="remove encryption = false from [tool.syftflwr] to encrypt messages",
        )


def check_fingerprint(given: str, published: str, email: str) -> None:
    """An accepted fingerprint must be the one actually published (a typo or a
    different key is refused, never silently replaced)."""
    if given.strip().lower() != published:
        raise EncryptionError(
            f"{email} publishes {published}, not {given}: nothing trusted. Compare the "
            f"fingerprint {email} reads out from `syftflwr keys show` with the published one"
        )
