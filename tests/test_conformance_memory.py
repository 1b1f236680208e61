"""The built-in ``memory`` transport runs the conformance suite like any plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from syftflwr.testing.conformance import TransportConformance


class TestMemoryTransport(TransportConformance):
    transport_name = "memory"
    # In one process a duplicate can only come from the sender itself: memory answers
    # it again (consistently) instead of keeping a journal.
    deduplicates = False

    @pytest.fixture
    def transport_options(self, memory_namespace: str) -> Mapping[str, Any]:
        return {"namespace": memory_namespace}
