"""The SQLite transport passes syftflwr's conformance suite like any transport: every
role, large messages (also through chunking), atomic visibility and claims across
threads and another OS process, hostile input, and a Flower round with default settings
(encryption on) — so it trains out of the box."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from syftflwr.testing.conformance import TransportConformance


class TestSQLiteTransport(TransportConformance):
    transport_name = "sqlite"
    # listing and detecting never open the database (nor import the mailbox machinery)
    heavy_modules = ("sqlite3", "syftflwr_sqlite.storage", "syftflwr.mailbox")
    # the mailbox is this file (and its WAL journal): hostile input may change it
    storage_files = ("mailbox.sqlite*",)
    options: ClassVar[Mapping[str, Any]] = {"poll_interval": 0.02}

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"path": str(tmp_path / "mailbox.sqlite"), **self.options}


class TestSQLiteTransportChunked(TestSQLiteTransport):
    """Every large message in 64 KiB rows: core's chunking over this storage."""

    options = {"poll_interval": 0.02, "max_object_size": 64 * 1024}
