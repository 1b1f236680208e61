"""Encryption is on by default and fails closed: nothing reaches the disk in plaintext,
a peer without published keys is refused before anything is written, and objects that
are plaintext, tampered with, moved or sealed for someone else never open."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from _sb_helpers import SyftBoxFixtures, outbox_dir, publish_keys, write_config
from syftflwr.errors import DecryptionError, EncryptionError, MessageRejectedError
from syftflwr.mailbox.localdir import LocalDirStorage
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DS1,
    DS2,
    ENDPOINT,
    Federation,
    Recorder,
)
from syftflwr_syftbox.datasite_storage import DatasiteStorage
from syftflwr_syftbox.keys import MissingPeerKeysError
from syftflwr_syftbox.sealing import SealedStorage

MARKER = b"PLAINTEXT-MARKER-7f3a9c"


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


class TestEncryptedFederation(SyftBoxFixtures):
    def test_nothing_is_written_in_plaintext(self, federation: Federation, tmp_path: Path) -> None:
        """Requests, responses, chunk parts and manifests: scan every file written."""
        small_objects = {**federation.context(DS1).options, "max_object_size": 256 * 1024}
        federation.serve(DS1, Recorder(), options=small_objects)
        small = MARKER * 10
        large = MARKER * (3 * 1024 * 1024 // len(MARKER))  # > 1 object at 256 KiB
        assert bytes(federation.roundtrip(DS1, small).body) == small
        rpc = federation.new_rpc(AGGREGATOR, options={
            **federation.context(AGGREGATOR).options, "max_object_size": 256 * 1024})  # fmt: skip
        assert bytes(federation.roundtrip(DS1, large, rpc=rpc).body) == large
        parts = list((outbox_dir(tmp_path / "SyftBox", DS1, AGGREGATOR)).rglob("*part-*"))
        assert parts, "the large reply should have been chunked"
        # everything SyftBox syncs (the data dir) and the key store; the private state
        # dir is not scanned: core's journal keeps small replies there (see the docs)
        assert files_containing(tmp_path / "SyftBox", MARKER) == []
        assert files_containing(tmp_path / ".syftbox", MARKER) == []

    def test_a_peer_without_keys_is_refused_before_anything_is_written(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        newcomer = "newcomer@example.org"
        options = {**federation.context(AGGREGATOR).options, "key_wait": 0.3}
        rpc = federation.new_rpc(AGGREGATOR, options=options)
        started = time.monotonic()
        with pytest.raises(MissingPeerKeysError, match=f"no public keys of {newcomer}"):
            rpc.send(federation.request(newcomer, MARKER))
        assert 0.3 <= time.monotonic() - started < 5, "waits key_wait, then fails closed"
        assert not outbox_dir(tmp_path / "SyftBox", AGGREGATOR, newcomer).exists() or not [
            p for p in outbox_dir(tmp_path / "SyftBox", AGGREGATOR, newcomer).rglob("*")
            if p.is_file()
        ]  # fmt: skip
        assert files_containing(tmp_path, MARKER) == []

    def test_a_plaintext_request_is_refused_not_handled(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        from syftflwr.envelope import encode_parts

        recorder = Recorder()
        federation.serve(DS1, recorder)
        federation.roundtrip(DS1)
        folder = outbox_dir(tmp_path / "SyftBox", AGGREGATOR, DS1) / APP / "rpc" / ENDPOINT
        request = federation.request(DS1, MARKER)
        prefix, body = encode_parts(request)
        (folder / f"{request.id}.request").write_bytes(prefix + bytes(body))
        federation.settle_after(DS1)
        assert recorder.count(request.id) == 0
        assert (  # the refusal is an error reply (sealed like any reply)
            outbox_dir(tmp_path / "SyftBox", DS1, AGGREGATOR)
            / APP / "rpc" / ENDPOINT / f"{request.id}.response"
        ).exists()  # fmt: skip


class TestFreshFederation(SyftBoxFixtures):
    """Nobody has run before: keys appear only as participants connect."""

    prepublish_keys = False

    @staticmethod
    def did(tmp_path: Path, email: str) -> Path:
        return tmp_path / "SyftBox" / "datasites" / email / "public" / "did.json"

    def test_a_participant_publishes_its_keys_when_it_connects(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        assert not self.did(tmp_path, DS1).exists()
        federation.client(DS1)  # connecting, before serving or sending anything
        assert self.did(tmp_path, DS1).is_file()
        private = list((tmp_path / ".syftbox").rglob("pvt.jwks.json"))
        assert len(private) == 1 and private[0].stat().st_mode & 0o077 == 0

    def test_the_first_send_waits_for_a_datasite_that_connects_later(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        """The aggregator starts first (a fresh federation): its first request waits for
        the datasite's DID instead of failing, and goes out sealed once it appears."""
        rpc = federation.rpc()
        assert not self.did(tmp_path, DS1).exists()
        recorder = Recorder()
        late = threading.Timer(0.5, lambda: federation.serve(DS1, recorder))
        late.start()
        try:
            started = time.monotonic()
            response = federation.roundtrip(DS1, MARKER, rpc=rpc)
            assert time.monotonic() - started >= 0.4
        finally:
            late.join()
        assert bytes(response.body) == MARKER
        assert files_containing(tmp_path / "SyftBox", MARKER) == []


class TestSealing:
    """The frame itself, on real keys published in a shared data dir."""

    @pytest.fixture
    def stores(self, tmp_path: Path) -> dict[str, SealedStorage]:
        data_dir = tmp_path / "SyftBox"
        base = LocalDirStorage(data_dir)
        out = {}
        for email in (AGGREGATOR, DS1, DS2):
            keys = publish_keys(write_config(tmp_path / "configs", email, data_dir), data_dir)
            out[email] = SealedStorage(DatasiteStorage(base, email, (AGGREGATOR, DS1, DS2)), keys)
        return out

    PATH = f"syft_outbox_inbox_{AGGREGATOR}_to_{DS1}/app/rpc/ep/" + "a" * 32 + ".request"

    def test_recipient_and_sender_open_it_a_third_party_cannot(
        self, stores: dict[str, SealedStorage]
    ) -> None:
        assert stores[AGGREGATOR].put_if_absent(self.PATH, [MARKER, b"|", MARKER])
        assert bytes(stores[DS1].get(self.PATH) or b"") == MARKER + b"|" + MARKER
        assert bytes(stores[AGGREGATOR].get(self.PATH) or b"") == MARKER + b"|" + MARKER
        with pytest.raises(DecryptionError, match=f"sealed for {DS1}"):
            stores[DS2].get(self.PATH)

    def test_tampered_truncated_and_moved_objects(
        self, stores: dict[str, SealedStorage], tmp_path: Path
    ) -> None:
        stores[AGGREGATOR].put(self.PATH, [MARKER])
        on_disk = stores[AGGREGATOR].inner.base.local_path(
            f"datasites/{AGGREGATOR}/app_data/syftflwr/{self.PATH}"
        )
        sealed = on_disk.read_bytes()
        assert MARKER not in sealed
        # a flipped bit anywhere after the size field is refused
        for index in (20, len(sealed) // 2, len(sealed) - 1):
            on_disk.write_bytes(sealed[:index] + bytes([sealed[index] ^ 1]) + sealed[index + 1 :])
            with pytest.raises(DecryptionError):
                stores[DS1].get(self.PATH)
        # half written (a sync client writing in place): looks incomplete, not refused yet
        on_disk.write_bytes(sealed[: len(sealed) // 2])
        partial = stores[DS1].get(self.PATH)
        assert partial is not None and bytes(partial) == b""
        # the same bytes under another message id do not open
        other = self.PATH.replace("a" * 32, "b" * 32)
        on_disk.with_name("b" * 32 + ".request").write_bytes(sealed)
        with pytest.raises(DecryptionError, match="does not authenticate"):
            stores[DS1].get(other)

    def test_decryption_failures_are_cores_and_rejections(
        self, stores: dict[str, SealedStorage]
    ) -> None:
        """Core's ``DecryptionError`` (the plugin API's) catches them — syftbox has no
        second class of that name — and the mailbox answers them with an error reply
        instead of crashing or retrying (a ``MessageRejectedError``)."""
        stores[AGGREGATOR].put(self.PATH, [MARKER])
        with pytest.raises(DecryptionError) as caught:
            stores[DS2].get(self.PATH)
        assert isinstance(caught.value, MessageRejectedError)
        assert issubclass(MissingPeerKeysError, EncryptionError)

    def test_replaced_keys_are_refused(
        self, stores: dict[str, SealedStorage], tmp_path: Path
    ) -> None:
        """DS1 lost its keys and published new ones: old objects no longer open, loudly."""
        stores[AGGREGATOR].put(self.PATH, [MARKER])
        data_dir = tmp_path / "SyftBox"
        did = data_dir / "datasites" / DS1 / "public" / "did.json"
        for key_file in (tmp_path / ".syftbox").rglob("pvt.jwks.json"):
            key_file.unlink()
        with pytest.raises(EncryptionError, match="no private keys"):
            publish_keys(tmp_path / "configs" / DS1 / "config.json", data_dir)
        did.unlink()
        fresh = publish_keys(tmp_path / "configs" / DS1 / "config.json", data_dir)
        store = SealedStorage(DatasiteStorage(stores[DS1].inner.base, DS1, (AGGREGATOR,)), fresh)
        with pytest.raises(DecryptionError):
            store.get(self.PATH)
