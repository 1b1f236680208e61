"""Helpers of the syftbox tests: SyftBox client configs for several participants that
share ONE local data dir (SyftBox's own local simulation), with an explicit loopback
server_url so nothing ever reaches the network."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from syftflwr.info import TransportContext
from syftflwr.mailbox.storage import Storage
from syftflwr.registry import Transport
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    DATASITES,
    ContextFactory,
    Federation,
)
from syftflwr.testing.conformance.base import ConformanceBase
from syftflwr_syftbox.keys import KeyRing
from syftflwr_syftbox.options import SyftBoxConfig

AGG = "aggregator@example.org"
DS1 = "alice@hospital-a.org"
DS2 = "bob@hospital-b.org"
FEDERATION = (AGGREGATOR, *DATASITES)
OFFLINE_SERVER = "http://127.0.0.1:1"
"""A port nothing listens on: any request fails at once instead of hanging."""


def write_config(configs: Path, email: str, data_dir: Path) -> Path:
    """A SyftBox client config (the shape the SyftBox client writes) for ``email``."""
    path = configs / email / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"email": email, "data_dir": str(data_dir), "server_url": OFFLINE_SERVER})
    )
    return path


def plaintext_layers(data: bytes) -> list[bytes]:
    """A syft-rpc file and what its base64 layers decode to: the JSON, its body, and the
    body's own base64 content if it is base64 (upstream's encrypted plaintext is) — what
    a scan for plaintext on disk must look through."""
    layers = [data]
    try:
        body = json.loads(data).get("body")
    except (ValueError, AttributeError):  # not JSON, or not a JSON object
        return layers
    while isinstance(body, str | bytes) and body:
        try:  # the JSON's is pydantic's url-safe base64, upstream's inner one standard
            decoded = base64.b64decode(body, altchars=b"-_", validate=True)
        except ValueError:
            try:
                decoded = base64.b64decode(body, validate=True)
            except ValueError:
                break
        layers.append(decoded)
        body = decoded
    return layers


def publish_keys(config_path: Path, data_dir: Path) -> KeyRing:
    """Bootstrap a participant's keys and publish its DID, as its first start does."""
    return KeyRing(SyftBoxConfig.load(config_path), data_dir)


def outbox_dir(data_dir: Path, sender: str, recipient: str) -> Path:
    """Where ``sender``'s outbox toward ``recipient`` lives on disk."""
    return (
        data_dir
        / "datasites"
        / sender
        / "app_data"
        / "syftflwr"
        / f"syft_outbox_inbox_{sender}_to_{recipient}"
    )


class SyftBoxFixtures(ConformanceBase):
    """Every participant gets its own SyftBox client config; all share ONE data dir
    (``tmp_path / "SyftBox"``), as SyftBox's local simulation does."""

    transport_name = "syftbox"
    heavy_modules = ("syft_rpc", "syft_event", "syft_crypto", "syft_core", "pydantic")

    def raw_storage(self, federation: Federation, email: str) -> Storage | None:
        """The participant's datasite view itself: hostile files are planted as raw
        bytes, as an attacker writing into the data dir would."""
        from syftflwr_syftbox.datasite_storage import DatasiteStorage

        storage = super().raw_storage(federation, email)
        while storage is not None and not isinstance(storage, DatasiteStorage):
            storage = getattr(storage, "inner", None)  # below SyncedStorage, Format1Guard
        return storage

    @pytest.fixture
    def data_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "SyftBox"

    @pytest.fixture
    def transport_options(self) -> Mapping[str, Any]:
        return {"retention_interval": 0}

    @pytest.fixture
    def make_context(
        self,
        transport: Transport,
        transport_options: Mapping[str, Any],
        tmp_path: Path,
        data_dir: Path,
    ) -> ContextFactory:
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
