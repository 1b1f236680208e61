"""syftbox passes core's conformance suite like any third-party transport, with several
participants sharing one SyftBox data dir (each with its own client config): encrypted
(the default), encrypted with chunking forced by a small max_object_size, and plaintext."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from _sb_helpers import SyftBoxFixtures
from syftflwr.testing.conformance import TransportConformance


class TestSharedDataDir(SyftBoxFixtures, TransportConformance):
    pass


class TestSharedDataDirChunked(SyftBoxFixtures, TransportConformance):
    @pytest.fixture
    def transport_options(self) -> Mapping[str, Any]:
        return {"retention_interval": 0, "max_object_size": 256 * 1024}
