"""The template transport runs syftflwr's conformance suite: every role, large messages
(also through chunking), atomic visibility, concurrency, another process, a Flower round.

Keep this file when you copy the template: it is the bar every transport must clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from syftflwr.testing.conformance import TransportConformance


class TestTemplateTransport(TransportConformance):
    transport_name = "template"
    # Listing and detecting the transport must not import these (the hook module
    # imports the storage, and with it the mailbox machinery, only when building roles).
    heavy_modules = ("syftflwr_template.storage", "syftflwr.mailbox")

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root": tmp_path / "shared", "poll_interval": 0.02}


class TestTemplateTransportChunked(TestTemplateTransport):
    """The same suite with small objects: every large message travels in chunks."""

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root": tmp_path / "shared", "poll_interval": 0.02, "max_object_size": 64 * 1024}
