"""The built-in ``memory`` transport runs the conformance suite like any plugin."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from syftflwr.roles import BlobRef
from syftflwr.testing.conformance import AGGREGATOR, APP, Federation, TransportConformance
from syftflwr.transports import memory


class TestMemoryTransport(TransportConformance):
    transport_name = "memory"
    # In one process a duplicate can only come from the sender itself: memory answers
    # it again (consistently) instead of keeping a journal.
    deduplicates = False

    @pytest.fixture
    def transport_options(self, memory_namespace: str) -> Mapping[str, Any]:
        return {"namespace": memory_namespace}

    # memory has no files: the blob section reaches its stored blobs through the broker
    def _blobs(self, federation: Federation) -> dict[tuple[str, str, str], memory.StoredBlob]:
        namespace = str(federation.context(AGGREGATOR).options["namespace"])
        return memory.broker(namespace).blobs

    def stored_blob(self, federation: Federation, ref: BlobRef) -> bytes:
        return self._blobs(federation)[(AGGREGATOR, APP, ref.name)].data

    def store_blob(self, federation: Federation, ref: BlobRef, data: bytes) -> None:
        blobs = self._blobs(federation)
        key = (AGGREGATOR, APP, ref.name)
        blobs[key] = dataclasses.replace(blobs[key], data=data)
