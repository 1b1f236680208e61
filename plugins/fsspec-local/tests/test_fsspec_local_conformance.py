"""fsspec-local passes core's conformance suite like any third-party transport: on a
local directory (inotify), with chunking forced by a small max_object_size, and on an
fsspec ``memory://`` root (polled)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from syftflwr.testing.conformance import TransportConformance


class TestLocalDirectory(TransportConformance):
    transport_name = "fsspec-local"
    heavy_modules = ("fsspec", "watchdog", "gcsfs", "s3fs")

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {"root": str(tmp_path / "shared"), "retention_interval": 0}


class TestLocalDirectoryChunked(TransportConformance):
    transport_name = "fsspec-local"

    @pytest.fixture
    def transport_options(self, tmp_path: Path) -> Mapping[str, Any]:
        return {
            "root": str(tmp_path / "shared"),
            "retention_interval": 0,
            "max_object_size": 256 * 1024,
        }


class TestMemoryURL(TransportConformance):
    transport_name = "fsspec-local"

    @pytest.fixture
    def transport_options(self) -> Iterator[Mapping[str, Any]]:
        import fsspec

        url = f"memory://conformance-{uuid.uuid4().hex}"
        yield {"root": url, "retention_interval": 0, "poll_interval": 0.02}
        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)

    def test_datasite_in_another_process(self) -> None:  # type: ignore[override]
        pytest.skip("a memory:// root lives inside one process (gcs:// and s3:// cover remote)")
