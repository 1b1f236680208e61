"""syftflwr's conformance suite over one shared SQLite file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from syftflwr.testing.conformance import TransportConformance


class TestOldSqlite(TransportConformance):
    transport_name = "oldsqlite"
    heavy_modules = ("syftflwr_test_oldstyle.roles", "syftflwr.mailbox")

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        # the hostile-input checks watch every file outside the mailbox's own names, and a
        # SQLite file (and its -wal) changes on every write: name it like core's meta folder
        database = tmp_path / "shared" / ".syftflwr-mailbox.sqlite"
        return {"database": database, "poll_interval": 0.02}
