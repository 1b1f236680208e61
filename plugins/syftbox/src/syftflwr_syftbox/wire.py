"""The native profile's syftbox wire format, and the one error a peer on an older one gets
(the table of formats: docs/transports/syftbox.md#wire-formats).

Format 1 (syftflwr-syftbox before core sealed its messages) wrapped every message object
in the plugin's own ``SFXE`` 0x01 frame over syft-crypto keys; format 2 stores core's
envelopes (``SYFL``), sealed by core with keys in the outboxes. Nothing in format 1 says
its number, so it is recognised by what only it leaves: an object starting with
``SFXE`` 0x01, or a peer with a syft-crypto DID and no core key record once core's key
wait is over. Either ends in ONE error naming both formats and the fix, never in a
decryption failure. A format-1 peer opens only ``SFXE`` frames, so it cannot read this
side's refusal: its own log says ``not encrypted`` or ``no public keys``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from syftflwr.plugin import (
    Buffer,
    MalformedMessageError,
    ObjectKind,
    Storage,
    StorageKeyDirectory,
    StorageWrapper,
    parse_name,
    split_path,
    validate_email,
)

from syftflwr_syftbox.datasite_storage import DATASITES, DatasiteStorage

WIRE_FORMAT = 2
FORMAT1_MAGIC = b"SFXE\x01"
"""The first bytes of every message object of format 1."""


def format1_peer(peer: str) -> str:
    """The one error about a format-1 peer, wherever it is noticed."""
    return (
        f"{peer} speaks syftbox wire format 1 (its syftflwr-syftbox seals each message "
        f"itself, 'SFXE' frames over syft-crypto keys); this speaks {WIRE_FORMAT} (core's "
        f"envelopes, sealed by syftflwr): upgrade syftflwr-syftbox on {peer} to the "
        "release this participant runs (docs/transports/syftbox.md#wire-formats)"
    )


class WireFormatError(MalformedMessageError):
    """A message object in another syftbox wire format: refused unread, never opened."""


class Format1Guard(StorageWrapper):
    """A participant's datasite view whose message objects of format 1 are refused by
    their first bytes, naming their sender's format."""

    inner: DatasiteStorage

    def _check(self, path: str, head: Buffer | None) -> None:
        if head is None or bytes(memoryview(head)[: len(FORMAT1_MAGIC)]) != FORMAT1_MAGIC:
            return
        parsed = parse_name(split_path(path)[-1])
        if parsed is None or parsed.kind is ObjectKind.CLAIM:
            return
        peer = self.inner.owner_of(split_path(path)[0])
        raise WireFormatError(f"{path}: {format1_peer(peer)}")

    def get(self, path: str, *, max_size: int | None = None) -> Buffer | None:
        data = self.inner.get(path, max_size=max_size)
        self._check(path, data)
        return data

    def share_folder(self, folder: str, readers: Sequence[str]) -> None:
        self.inner.share_folder(folder, readers)


class SyftBoxKeyDirectory(StorageKeyDirectory):
    """Core's key records in the outboxes (:class:`StorageKeyDirectory`); a peer that has
    none but a syft-crypto DID is explained as a format-1 peer when core's key wait ends."""

    def __init__(self, storage: Storage, me: str, data_dir: Path, app: str | None = None) -> None:
        super().__init__(storage, me, app)
        self.data_dir = data_dir

    def for_app(self, app: str) -> SyftBoxKeyDirectory:
        return SyftBoxKeyDirectory(self.storage, self.me, self.data_dir, app)

    def explain_missing(self, email: str) -> str | None:
        """Why ``email`` has published no key, when its datasite tells (core's
        ``KeyDirectory.explain_missing``)."""
        did = self.data_dir / DATASITES / validate_email(email) / "public" / "did.json"
        if not did.is_file():
            return None
        return (
            f"{email} published no syftflwr key, only a syft-crypto DID ({did}): "
            f"{format1_peer(email)} (if it is up to date, it has not started this project yet)"
        )
