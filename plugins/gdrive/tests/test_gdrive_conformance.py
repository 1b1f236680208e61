"""gdrive passes core's conformance suite like any third-party transport, over the
loopback Drive server with the real google-api-python-client: each participant has its
own Google account (token file), and a datasite in another OS process reaches the same
server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.info import TransportContext
from syftflwr.registry import Transport
from syftflwr.testing.conformance import ContextFactory, TransportConformance

FAST = {"poll_interval": 0.02, "max_poll_interval": 0.1, "retention_interval": 0}


def _factory(
    transport: Transport, drive: tuple[DriveState, str], tmp_path: Path, **extra: Any
) -> ContextFactory:
    state, url = drive
    options = {**transport.default_options(), **FAST, "api_root_url": url, **extra}
    tokens = tmp_path / "tokens"

    def factory(email: str | None) -> TransportContext:
        token_file = tokens / f"{email}.json"
        if email and not token_file.exists():
            write_token(token_file, state.add_user(email))
        return TransportContext(
            transport=transport.name,
            app_name="conformance",
            email=email,
            options={**options, "token_file": str(token_file)},
            state_dir=tmp_path / "state" / str(email),
        )

    return factory  # type: ignore[return-value]


class TestGDrive(TransportConformance):
    transport_name = "gdrive"
    heavy_modules = ("googleapiclient", "google.auth", "google.oauth2", "httplib2")

    @pytest.fixture
    def make_context(
        self, transport: Transport, drive: tuple[DriveState, str], tmp_path: Path
    ) -> ContextFactory:
        return _factory(transport, drive, tmp_path)


class TestGDriveChunked(TransportConformance):
    """Small objects and transfers: chunked messages, resumable uploads, ranged reads."""

    transport_name = "gdrive"

    @pytest.fixture
    def make_context(
        self, transport: Transport, drive: tuple[DriveState, str], tmp_path: Path
    ) -> ContextFactory:
        return _factory(
            transport, drive, tmp_path, max_object_size=600 * 1024, transfer_chunk_size=256 * 1024
        )
