"""Conformance suites a transport runs against itself (the pattern of fsspec's
``fsspec/tests/abstract``): subclass one in a test module, say which transport, and
pytest runs every check against it::

    import pytest
    from syftflwr.testing.conformance import TransportConformance

    class TestFooTransport(TransportConformance):
        transport_name = "foo"              # its entry-point name
        heavy_modules = ("foo_sdk",)        # never imported to list or detect it

        @pytest.fixture
        def transport_options(self, tmp_path):
            return {"root": str(tmp_path / "shared")}

Each role has its own suite (:class:`ClientConformance`, :class:`RPCConformance`,
:class:`EventsConformance`), plus :class:`DeliveryConformance` (integrity, large
messages, atomic visibility, concurrency, another process), :class:`MetadataConformance`
(info, options, detection, light imports), :class:`FlowerConformance` (a Flower round
trip), :class:`HostileInputConformance` (files planted in a storage-based transport's
mailbox; skipped without storage) and :class:`BlobConformance` (shared blobs; skipped
unless the transport declares ``shares_objects``). :class:`TransportConformance` is all
of them. The knobs are documented on
:class:`~syftflwr.testing.conformance.base.ConformanceBase`; see docs/plugins.md.
"""

from __future__ import annotations

from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DATASITES,
    ENDPOINT,
    STRANGER,
    ContextFactory,
    Federation,
    Recorder,
    payload,
)
from syftflwr.testing.conformance.base import ConformanceBase
from syftflwr.testing.conformance.blobs import BlobConformance
from syftflwr.testing.conformance.client import ClientConformance
from syftflwr.testing.conformance.delivery import DeliveryConformance
from syftflwr.testing.conformance.events import EventsConformance
from syftflwr.testing.conformance.flower import FlowerConformance
from syftflwr.testing.conformance.hostile import HostileInputConformance
from syftflwr.testing.conformance.metadata import MetadataConformance
from syftflwr.testing.conformance.rpc import RPCConformance


class TransportConformance(
    MetadataConformance,
    ClientConformance,
    RPCConformance,
    EventsConformance,
    DeliveryConformance,
    FlowerConformance,
    HostileInputConformance,
    BlobConformance,
):
    """Every conformance suite: what a transport must pass to ship."""


__all__ = [
    "AGGREGATOR",
    "APP",
    "DATASITES",
    "ENDPOINT",
    "STRANGER",
    "BlobConformance",
    "ClientConformance",
    "ConformanceBase",
    "ContextFactory",
    "DeliveryConformance",
    "EventsConformance",
    "Federation",
    "FlowerConformance",
    "HostileInputConformance",
    "MetadataConformance",
    "RPCConformance",
    "Recorder",
    "TransportConformance",
    "payload",
]
