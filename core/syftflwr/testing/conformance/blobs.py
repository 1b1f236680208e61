"""Shared blobs (:class:`~syftflwr.roles.SharesBlobs`, :class:`~syftflwr.roles.ReadsBlobs`):
for a transport declaring ``Capabilities.shares_objects`` — one stored copy read by
every recipient, bytes checked against the ref, a dropped blob reported gone, a sealed
ref refused by a plain role. Skipped, with the reason, for a transport that does not
declare it (its broadcasts send one copy per recipient)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import cast

import pytest

from syftflwr.errors import BlobGoneError, EncryptionError, MalformedMessageError
from syftflwr.mailbox import chunking
from syftflwr.mailbox.layout import blob_path
from syftflwr.roles import BlobContent, BlobRef, ReadsBlobs, SharesBlobs, offers
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DS1,
    DS2,
    Federation,
    effective_capabilities,
    payload,
)
from syftflwr.testing.conformance.base import ConformanceBase

SMALL = 4096


class BlobConformance(ConformanceBase):
    """What a transport declaring ``shares_objects`` promises about blobs."""

    # -- knobs ----------------------------------------------------------------------------------
    def stored_blob(self, federation: Federation, ref: BlobRef) -> bytes:
        """The bytes the aggregator's storage holds for ``ref`` (reassembled). Default:
        through :meth:`raw_storage` at the mailbox's blob path; a transport without
        files overrides it and :meth:`store_blob`."""
        storage = self.raw_storage(federation, AGGREGATOR)
        if storage is None:
            pytest.skip(f"{self.transport_name} gives no raw access to its stored blobs")
        data = chunking.read(storage, blob_path(AGGREGATOR, APP, ref.name), max_size=None)
        assert data is not None, f"blob {ref.name} is not where the mailbox layout puts it"
        return bytes(data)

    def store_blob(self, federation: Federation, ref: BlobRef, data: bytes) -> None:
        """Replace the stored bytes of ``ref`` with ``data`` (a tampering co-recipient
        or storage); chunked as the transport chunks."""
        storage = self.raw_storage(federation, AGGREGATOR)
        if storage is None:
            pytest.skip(f"{self.transport_name} gives no raw access to its stored blobs")
        caps = effective_capabilities(federation.rpc(), federation.transport)
        path = blob_path(AGGREGATOR, APP, ref.name)
        chunking.delete(storage, path, parts=None)
        chunking.publish(storage, path, [data], max_object_size=caps.max_object_size,
                         exclusive=False)  # fmt: skip

    # -- helpers --------------------------------------------------------------------------------
    def _sharing(self, federation: Federation) -> SharesBlobs:
        rpc = federation.rpc()
        if not effective_capabilities(rpc, federation.transport).shares_objects:
            pytest.skip(
                f"{self.transport_name} does not declare shares_objects: broadcasts send "
                "one copy per recipient"
            )
        return cast(SharesBlobs, rpc)

    def _reader(self, federation: Federation, email: str = DS1) -> ReadsBlobs:
        return cast(ReadsBlobs, federation.events(email))

    def _put(self, federation: Federation, data: bytes, *pieces: int) -> BlobRef:
        cuts = [0, *pieces, len(data)]
        parts = [data[a:b] for a, b in itertools.pairwise(cuts)]
        return self._sharing(federation).put_blob(
            parts, app=APP, recipients=[DS1, DS2], expires_at=None
        )

    # -- the checks -----------------------------------------------------------------------------
    def test_a_declaring_transport_offers_both_blob_protocols(self, federation: Federation) -> None:
        rpc = self._sharing(federation)
        assert offers(rpc, SharesBlobs), "declares shares_objects, but has no put_blob()"
        reader = federation.events(DS1)
        assert offers(reader, ReadsBlobs), "declares shares_objects, but has no get_blob()"

    def test_blob_round_trip_to_every_recipient(self, federation: Federation) -> None:
        data = payload(SMALL, seed=7)
        ref = self._put(federation, data, 1000, 1000)  # an empty piece among them
        assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert ref.key is None and ref.digest is None
        assert ref.sha256 not in ref.name, "a blob's name must not be its content hash"
        for email in (DS1, DS2):
            got = self._reader(federation, email).get_blob(ref, sender=AGGREGATOR, app=APP)
            assert bytes(got) == data

    def test_a_blob_content_is_made_once_and_stored(self, federation: Federation) -> None:
        """Core's sealing layer passes ``put_blob`` a BlobContent (its encryption, made
        while the transport readies the blob's place): made exactly once, its bytes
        stored and named by the ref like plain parts."""
        data = payload(SMALL, seed=14)
        made: list[int] = []

        def make() -> list[bytes]:
            made.append(1)
            return [data[:100], data[100:]]

        ref = self._sharing(federation).put_blob(
            BlobContent(len(data), make), app=APP, recipients=[DS1, DS2], expires_at=None
        )
        assert made == [1], f"BlobContent.make was called {len(made)} times, not once"
        assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        got = self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)
        assert bytes(got) == data

    def test_large_blob_round_trip(self, federation: Federation) -> None:
        """Above ``max_object_size`` when the transport declares one: stored in parts."""
        caps = effective_capabilities(federation.rpc(), federation.transport)
        data = payload(self.large_size(caps), seed=8)
        ref = self._put(federation, data, len(data) // 3)
        got = self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)
        assert hashlib.sha256(got).hexdigest() == ref.sha256 and len(got) == len(data)

    def test_a_flipped_byte_in_the_stored_blob_is_refused(self, federation: Federation) -> None:
        ref = self._put(federation, payload(SMALL, seed=9))
        stored = bytearray(self.stored_blob(federation, ref))
        stored[len(stored) // 2] ^= 0x01
        self.store_blob(federation, ref, bytes(stored))
        with pytest.raises(MalformedMessageError, match="SHA-256"):
            self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)

    def test_another_blob_put_back_under_its_name_is_refused(self, federation: Federation) -> None:
        ref = self._put(federation, payload(SMALL, seed=10))
        other = self._put(federation, payload(SMALL, seed=11))
        self.store_blob(federation, ref, self.stored_blob(federation, other))
        with pytest.raises(MalformedMessageError, match="SHA-256"):
            self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)

    def test_a_dropped_blob_is_gone(self, federation: Federation) -> None:
        """Gone is :class:`BlobGoneError` (a reader handed a ref before its blob is
        stored asks again on it, and only on it)."""
        rpc = self._sharing(federation)
        ref = self._put(federation, payload(SMALL, seed=12))
        rpc.drop_blob(ref, app=APP)
        rpc.drop_blob(ref, app=APP)  # idempotent
        with pytest.raises(BlobGoneError, match="gone"):
            self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)

    def test_a_blob_named_while_it_uploads_is_the_one_returned(
        self, federation: Federation
    ) -> None:
        """``on_named`` is optional; called, it comes once, before ``put_blob`` returns,
        with exactly the ref returned (core sends the messages naming it then)."""
        data = payload(SMALL, seed=15)
        named: list[BlobRef] = []
        ref = self._sharing(federation).put_blob(
            [data], app=APP, recipients=[DS1, DS2], expires_at=None, on_named=named.append
        )
        assert named in ([], [ref]), f"on_named got {named}, put_blob returned {ref}"
        got = self._reader(federation).get_blob(ref, sender=AGGREGATOR, app=APP)
        assert bytes(got) == data

    def test_a_sealed_ref_is_refused_by_a_plain_role(self, federation: Federation) -> None:
        ref = self._put(federation, payload(SMALL, seed=13))
        sealed = dataclasses.replace(ref, key=bytes(32), digest="0" * 64)
        with pytest.raises(EncryptionError, match="encryption is off"):
            self._reader(federation).get_blob(sealed, sender=AGGREGATOR, app=APP)
