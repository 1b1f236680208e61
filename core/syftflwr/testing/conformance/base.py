"""The fixtures and knobs every conformance suite shares.

A transport author subclasses a suite (usually :class:`TransportConformance`) in a test
module and provides, at least, the transport's name; the default ``make_context``
builds contexts from the transport's option defaults, the ``transport_options`` fixture
and a private ``state_dir`` per participant::

    class TestFoo(TransportConformance):
        transport_name = "foo"
        heavy_modules = ("foo_sdk",)

        @pytest.fixture
        def transport_options(self, tmp_path):
            return {"root": str(tmp_path / "shared")}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syftflwr.info import Capabilities, TransportContext
from syftflwr.mailbox.storage import Storage
from syftflwr.registry import Transport, get_registry
from syftflwr.testing.conformance._federation import ContextFactory, Federation

MiB = 1024 * 1024
LARGE_DEFAULT = 8 * MiB
"""Large-message size for a transport without ``max_object_size``."""
LARGE_CHUNKED_CAP = 16 * MiB
"""Above this ``max_object_size`` the suite sends :data:`LARGE_DEFAULT` instead of three
objects' worth; set ``max_object_size`` lower in a test class to exercise chunking."""


class ConformanceBase:
    """Fixtures and class-level knobs; see the module docstring."""

    transport_name: ClassVar[str] = ""
    """The transport's registry name (its entry-point name)."""
    heavy_modules: ClassVar[tuple[str, ...]] = ()
    """Packages the transport needs for its roles but must not import to be listed or
    detected (e.g. ``("googleapiclient", "google.auth")``). Core's own heavy packages
    (Flower, grpc, numpy) are always checked."""
    deduplicates: ClassVar[bool] = True
    """True: a request id published twice, or re-delivered after it was answered, is
    handled once (a journal of handled ids). Only an in-process transport, where a
    duplicate can only come from the sender itself, may set False — it must then answer
    a duplicate consistently."""
    timeout: ClassVar[float] = 30.0
    """Longest wait for something that must happen (scaled up for slow pollers)."""
    settle_time: ClassVar[float] = 0.3
    """Grace before asserting that something did NOT happen (after a sentinel round trip)."""
    large_message_size: ClassVar[int | None] = None
    """Override the large-message size (default: 3x ``max_object_size`` + 1 when the
    transport declares one up to 16 MiB, else 8 MiB)."""

    storage_files: ClassVar[tuple[str, ...]] = ()
    """Glob patterns (relative to the test's ``tmp_path``) of files the storage itself
    keeps the mailbox in — a database and its journals, ``("mailbox.sqlite*",)`` — which
    the hostile-input suite lets change, besides the mailbox folders (``syft_outbox_inbox_*``,
    ``.syftflwr``) and the participants' ``state`` dirs."""

    raw_refusal_words: ClassVar[tuple[str, ...]] = ()
    """Words of the refusal a transport gives ANY object written raw into its storage
    (one that seals every object refuses plaintext before parsing it): the hostile-input
    suite then accepts them as the reason, besides each case's own."""

    def raw_storage(self, federation: Federation, email: str) -> Storage | None:
        """``email``'s view of the transport's storage, writing bytes exactly as given
        (no sealing): the hostile-input suite plants files with it. Default: the
        ``storage`` of ``email``'s RPC role (transports built on :mod:`syftflwr.mailbox`);
        None skips the suite (a transport without files, like ``memory``)."""
        storage = getattr(federation.rpc(email), "storage", None)
        return storage if isinstance(storage, Storage) else None

    # -- fixtures an author may override -------------------------------------------------------
    @pytest.fixture
    def transport(self) -> Transport:
        """The transport under test, loaded and validated by the registry."""
        if not self.transport_name:
            raise TypeError(
                f"{type(self).__name__} must set transport_name (the entry-point name), "
                "or override the `transport` fixture"
            )
        return get_registry().load(self.transport_name)

    @pytest.fixture
    def transport_options(self) -> Mapping[str, Any]:
        """Option values for every participant (over the transport's defaults)."""
        return {}

    @pytest.fixture
    def make_context(
        self, transport: Transport, transport_options: Mapping[str, Any], tmp_path: Path
    ) -> ContextFactory:
        """``email -> TransportContext``: the transport's defaults + ``transport_options``,
        and a ``state_dir`` per participant that survives role restarts (a journal of
        handled requests lives there)."""
        options = {**transport.default_options(), **transport_options}

        def factory(email: str) -> TransportContext:
            return TransportContext(
                transport=transport.name,
                app_name="conformance",
                email=email,
                options=options,
                state_dir=tmp_path / "state" / email,
            )

        return factory

    # -- fixtures the suites use -----------------------------------------------------------------
    @pytest.fixture
    def federation(
        self, transport: Transport, make_context: ContextFactory
    ) -> Iterator[Federation]:
        fed = Federation(
            transport,
            make_context,
            timeout=self.wait_timeout(transport.capabilities),
            settle=self.settle_time,
        )
        try:
            yield fed
            fed.check_servers()
        finally:
            fed.close()

    # -- helpers -----------------------------------------------------------------------------------
    def wait_timeout(self, caps: Capabilities) -> float:
        """:attr:`timeout`, stretched for a transport that polls slowly."""
        slowest = caps.max_poll_interval or (caps.poll_interval or 0.0) * 8
        if caps.notifies_arrivals:
            slowest = 0.0
        return max(self.timeout, 10 * slowest)

    def large_size(self, caps: Capabilities) -> int:
        """How big the large-message tests go (see :attr:`large_message_size`)."""
        if self.large_message_size is not None:
            return self.large_message_size
        limit = caps.max_object_size
        if limit is not None and 0 < limit <= LARGE_CHUNKED_CAP:
            return max(3 * limit + 1, MiB)
        return LARGE_DEFAULT
