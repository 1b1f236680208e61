"""syftbox passes core's conformance suite like any third-party transport, with several
participants sharing one SyftBox data dir (each with its own client config), and with
chunking forced by a small max_object_size."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from _sb_helpers import write_config
from syftflwr.info import TransportContext
from syftflwr.registry import Transport
from syftflwr.testing.conformance import TransportConformance
from syftflwr.testing.conformance._federation import ContextFactory


class SharedDataDir(TransportConformance):
    transport_name = "syftbox"
    heavy_modules = ("syft_rpc", "syft_event", "syft_crypto", "syft_core", "pydantic")

    @pytest.fixture
    def transport_options(self) -> Mapping[str, Any]:
        return {"retention_interval": 0}

    @pytest.fixture
    def make_context(
        self, transport: Transport, transport_options: Mapping[str, Any], tmp_path: Path
    ) -> ContextFactory:
        """Every participant gets its own SyftBox config; all share one data dir."""
        data_dir = tmp_path / "SyftBox"
        options = {**transport.default_options(), **transport_options}

        def factory(email: str) -> TransportContext:
            config = write_config(tmp_path / "configs", email, data_dir)
            return TransportContext(
                transport=transport.name,
                app_name="conformance",
                email=email,
                options={**options, "config_path": str(config)},
                state_dir=tmp_path / "state" / email,
            )

        return factory


class TestSharedDataDir(SharedDataDir):
    pass


class TestSharedDataDirChunked(SharedDataDir):
    @pytest.fixture
    def transport_options(self) -> Mapping[str, Any]:
        return {"retention_interval": 0, "max_object_size": 256 * 1024}
