"""The native profile's syftbox wire format: one encryption construction (core's), and
one clear error for a peer still on format 1.

Format 1 (syftflwr-syftbox before this change) sealed every message object itself
("SFXE" frames over syft-crypto X3DH keys); format 2 stores core's envelopes, sealed by
core with the keys published through the client's key directory. A format-1 peer is
played by the real old construction (``_sb_format1.py``, copied from ae519c4)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from _sb_format1 import Format1Keys, SealedStorage
from _sb_helpers import FEDERATION, SyftBoxFixtures, outbox_dir, publish_keys, write_config
from syftflwr.crypto.directory import key_directory_of
from syftflwr.crypto.keyring import Keyring
from syftflwr.crypto.keys import KeyStore
from syftflwr.crypto.seal import is_sealed
from syftflwr.crypto.trust import TrustStore
from syftflwr.envelope import MAGIC, encode_parts
from syftflwr.mailbox.layout import outbox
from syftflwr.plugin import (
    LocalDirStorage,
    MissingKeyError,
    ObjectKind,
    decode,
    is_manifest,
    parse_name,
)
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
from test_syftbox_encryption_summary import (
    captured_round,
    exposed,
    project_for,
    round1_reply_bytes,
    summary_phrases,
)

MARKER = b"FORMAT-1-MARKER-5d1e"
VERSION_LINE = "speaks syftbox wire format 1"
OLD_FAILURES = ("does not authenticate", "not encrypted", "decrypt", "no public key")


# --------------------------------------------------------------------------- format 2
@pytest.mark.slow
def test_a_default_native_run_stores_only_core_sealed_envelopes(tmp_path: Path) -> None:
    """Every message object that ever reached the data dir is a core envelope sealed by
    core (no "SFXE" frame, nothing in plaintext), and the summary says core encrypted."""
    project = project_for(tmp_path, "native", True)
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("encryption = true\n", ""))  # default
    _, output = captured_round(tmp_path, project, None)
    envelopes = 0
    for path in sorted((tmp_path / "captured").iterdir()):
        parsed = parse_name(path.name.partition("-")[2])
        if parsed is None or parsed.kind is ObjectKind.CLAIM or parsed.is_part:
            continue
        data = path.read_bytes()
        assert data.startswith(MAGIC) or is_manifest(data), (path.name, data[:8])
        if is_manifest(data):
            continue
        envelope = decode(data, source=path.name)
        assert is_sealed(envelope), f"{path.name}: a {envelope.kind} core did not seal"
        envelopes += 1
    assert envelopes >= 4, envelopes  # train and evaluate, each a request and a reply
    found = exposed((tmp_path / "SyftBox", tmp_path / "captured"),
                    (round1_reply_bytes(), b"server-round"))  # fmt: skip
    assert found == {}, found
    assert summary_phrases(output, "native")[0] == "end-to-end encrypted", output


# --------------------------------------------------------------------------- format 1
def _format1_store(tmp_path: Path, email: str) -> SealedStorage:
    """``email`` as a format-1 participant: its syft-crypto DID published, its objects
    sealed by the old construction."""
    data_dir = tmp_path / "SyftBox"
    keys = publish_keys(write_config(tmp_path / "configs", email, data_dir), data_dir)
    view = DatasiteStorage(LocalDirStorage(data_dir), email, FEDERATION)
    return SealedStorage(view, Format1Keys(keys))  # type: ignore[arg-type]


def _version_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if VERSION_LINE in r.getMessage()]


def _old_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and any(w in r.getMessage() for w in OLD_FAILURES)
    ]


class TestFormat1Peer(SyftBoxFixtures):
    def test_a_format1_request_gets_the_version_error(
        self, federation: Federation, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A format-1 aggregator's request (sealed for a datasite that once ran the old
        plugin, so its DID is there) is refused with the version, once, never handled."""
        publish_keys(write_config(tmp_path / "configs", DS1, tmp_path / "SyftBox"),
                     tmp_path / "SyftBox")  # fmt: skip
        old = _format1_store(tmp_path, AGGREGATOR)
        recorder = Recorder()
        federation.serve(DS1, recorder)
        request = federation.request(DS1, MARKER)
        path = f"{outbox(AGGREGATOR, DS1)}/{APP}/rpc/{ENDPOINT}/{request.id}.request"
        with caplog.at_level(logging.INFO):
            assert old.put_if_absent(path, list(encode_parts(request)))
            federation.settle_after(DS1)
        assert recorder.count(request.id) == 0
        lines = _version_lines(caplog)
        assert len(lines) == 1, lines
        assert AGGREGATOR in lines[0] and "this speaks 2" in lines[0], lines[0]
        assert f"upgrade syftflwr-syftbox on {AGGREGATOR}" in lines[0], lines[0]
        assert _old_failures(caplog) == []
        reply = outbox_dir(tmp_path / "SyftBox", DS1, AGGREGATOR) / APP / "rpc" / ENDPOINT
        assert (reply / f"{request.id}.response").is_file()  # the refusal, as for any

    def test_a_format1_reply_gets_the_version_error_once(
        self, federation: Federation, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The aggregator's request is answered by a format-1 datasite: one line, however
        often the aggregator looks, and the reply is never handed on."""
        publish_keys(write_config(tmp_path / "configs", AGGREGATOR, tmp_path / "SyftBox"),
                     tmp_path / "SyftBox")  # fmt: skip
        old = _format1_store(tmp_path, DS1)
        rpc = federation.rpc()
        request = federation.request(DS1, MARKER)
        with caplog.at_level(logging.INFO):
            handle = rpc.send(request)
            path = f"{outbox(DS1, AGGREGATOR)}/{APP}/rpc/{ENDPOINT}/{request.id}.response"
            assert old.put_if_absent(path, list(encode_parts(request.reply(b"old reply"))))
            for _ in range(5):
                assert rpc.wait([handle], timeout=0.3) == []
                assert rpc.fetch(handle) is None
        lines = _version_lines(caplog)
        assert len(lines) == 1, lines
        assert DS1 in lines[0] and "this speaks 2" in lines[0], lines[0]
        assert _old_failures(caplog) == []

    def test_a_peer_with_only_a_format1_key_ends_the_key_wait_with_the_version(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        """Core's key wait for a peer that published a syft-crypto DID (format 1's key)
        and never a core key record ends with the version, not a generic 'no key'; a
        peer with neither gets the generic message, one with both is found."""
        publish_keys(write_config(tmp_path / "configs", DS1, tmp_path / "SyftBox"),
                     tmp_path / "SyftBox")  # fmt: skip
        client = federation.client(AGGREGATOR)
        directory = key_directory_of(client, APP)
        assert directory is not None
        keyring = Keyring(
            AGGREGATOR,
            KeyStore(tmp_path / "keys", AGGREGATOR),
            TrustStore(tmp_path / "trust", {}),
            directory,
            peers=(DS1, DS2),
            key_wait=0.2,
        )
        keyring.publish()
        with pytest.raises(MissingKeyError) as caught:
            keyring.recipient_key(DS1)
        text = str(caught.value)
        assert VERSION_LINE in text and "this speaks 2" in text, text
        assert f"upgrade syftflwr-syftbox on {DS1}" in text, text
        with pytest.raises(MissingKeyError, match=f"no public key of {DS2}"):
            keyring.recipient_key(DS2)
        # DS1 upgraded: it publishes a core key record beside its old DID
        ds1 = federation.client(DS1)
        ds1_directory = key_directory_of(ds1, APP)
        assert ds1_directory is not None
        Keyring(DS1, KeyStore(tmp_path / "ds1-keys", DS1), TrustStore(tmp_path / "ds1-trust", {}),
                ds1_directory, peers=(AGGREGATOR,)).publish()  # fmt: skip
        assert len(keyring.recipient_key(DS1)) == 32
