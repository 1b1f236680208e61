"""The participant's signing key (issue 19, item 1): one Ed25519 key per participant,
owner-only on disk, published beside the jobs endpoint's encryption key over real files,
and believed like an encryption key (pins, first use, a changed key refused)."""

from __future__ import annotations

import dataclasses
import json
import stat
from multiprocessing import get_context
from pathlib import Path

import pytest
from click.testing import CliRunner
from syftflwr.cli.app import cli
from syftflwr.config import load_participant, load_project
from syftflwr.crypto.keys import KeyStore, PublicKeyRecord, fingerprint
from syftflwr.crypto.signing import SignerTrust, SigningIdentity, identity_dir, verify_signature
from syftflwr.crypto.trust import TRUST_FILE
from syftflwr.errors import (
    ConfigError,
    EncryptionError,
    MissingKeyError,
    SignatureError,
    UntrustedKeyError,
)
from syftflwr.names import JOBS_APP
from syftflwr.session import Participant, connect

ME, PEER = "me@example.org", "peer@example.org"
AGG, DS1 = "agg@uni.org", "ds1@hospital.org"


def test_one_key_per_participant_owner_only(tmp_path: Path) -> None:
    with pytest.raises(MissingKeyError, match="no signing key yet"):
        SigningIdentity.load(tmp_path, ME)
    first = SigningIdentity.load_or_create(tmp_path, ME)
    assert first.path == tmp_path / JOBS_APP / ME / "keys" / "ed25519.key"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(identity_dir(tmp_path, ME).stat().st_mode) == 0o700
    again = SigningIdentity.load(tmp_path, ME)
    assert again.public == first.public and again.fingerprint == fingerprint(first.public)
    # not an app's key: no app's key folder holds it, and another participant has its own
    assert SigningIdentity.load_or_create(tmp_path, PEER).public != first.public


def _create(root: str) -> bytes:
    return SigningIdentity.load_or_create(Path(root), ME).public


def test_processes_racing_the_first_use_agree_on_one_key(tmp_path: Path) -> None:
    with get_context("spawn").Pool(4) as pool:
        keys = pool.map(_create, [str(tmp_path)] * 8)
    assert len(set(keys)) == 1
    assert not [p for p in (tmp_path / JOBS_APP / ME / "keys").iterdir() if p.suffix == ".tmp"]


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    identity = SigningIdentity.load_or_create(tmp_path, ME)
    identity.path.chmod(0o640)
    with pytest.raises(EncryptionError, match="chmod 600"):
        SigningIdentity.load(tmp_path, ME)
    with pytest.raises(EncryptionError, match="chmod 600"):  # never silently replaced
        SigningIdentity.load_or_create(tmp_path, ME)


def test_a_damaged_key_is_refused(tmp_path: Path) -> None:
    identity = SigningIdentity.load_or_create(tmp_path, ME)
    identity.path.write_bytes(b"short")
    with pytest.raises(EncryptionError, match="damaged"):
        SigningIdentity.load_or_create(tmp_path, ME)


def test_signatures_verify_and_anything_else_is_refused(tmp_path: Path) -> None:
    me = SigningIdentity.load_or_create(tmp_path, ME)
    other = SigningIdentity.load_or_create(tmp_path, PEER)
    data = b"the FAB hash and everything bound to it"
    signature = me.sign(data)
    verify_signature(me.public, signature, data)
    flipped = bytearray(signature)
    flipped[10] ^= 1
    cases = {
        "altered data": (me.public, signature, data + b"!"),
        "altered signature": (me.public, bytes(flipped), data),
        "another key": (other.public, signature, data),
        "short signature": (me.public, signature[:-1], data),
        "short key": (me.public[:-1], signature, data),
    }
    for name, (public, sig, signed) in cases.items():
        with pytest.raises(SignatureError):
            verify_signature(public, sig, signed)
            pytest.fail(name)


def test_the_record_carries_the_signing_key_and_reads_without_one() -> None:
    store_public = bytes(range(32))
    signing = bytes(range(32, 64))
    record = PublicKeyRecord(ME, store_public, 1.0, signing)
    doc = json.loads(record.encode())
    # the fields older readers know are unchanged, under the same format tag
    assert {k: doc[k] for k in ("format", "email", "fingerprint", "created_at")} == {
        "format": "syftflwr-public-key/1",
        "email": ME,
        "fingerprint": fingerprint(store_public),
        "created_at": 1.0,
    }
    assert doc["signing_fingerprint"] == fingerprint(signing)
    back = PublicKeyRecord.decode(record.encode(), expected_email=ME, source="test")
    assert back == record
    older = PublicKeyRecord(ME, store_public, 1.0)  # a publisher without a signing key
    assert "ed25519" not in json.loads(older.encode())
    assert PublicKeyRecord.decode(older.encode(), expected_email=ME, source="t").signing is None
    doc["ed25519"] = "AAAA"
    with pytest.raises(EncryptionError, match="signing key has 3 bytes"):
        PublicKeyRecord.decode(json.dumps(doc).encode(), expected_email=ME, source="t")


def test_signer_trust_first_use_then_a_changed_key_is_refused(tmp_path: Path) -> None:
    trust = SignerTrust(tmp_path, ME)
    first = SigningIdentity.load_or_create(tmp_path / "peer", PEER)
    assert trust.status(PEER, first.public) == "new"
    assert trust.check(PEER, first.public) == "new"
    assert trust.check(PEER, first.public) == "known"
    replaced = SigningIdentity.load_or_create(tmp_path / "peer-again", PEER)
    assert trust.status(PEER, replaced.public) is None
    with pytest.raises(UntrustedKeyError) as refused:
        trust.check(PEER, replaced.public)
    assert f"syftflwr keys trust-signer {PEER} --fingerprint {replaced.fingerprint}" in str(
        refused.value
    )
    trust.accept(PEER, replaced.fingerprint)
    assert trust.check(PEER, replaced.public) == "known"
    # its own file, beside the jobs state: the encryption trust of no app changed
    assert (identity_dir(tmp_path, ME) / "signers.sqlite").exists()
    assert not (identity_dir(tmp_path, ME) / TRUST_FILE).exists()


def test_a_pinned_signer_presenting_another_key_is_refused(tmp_path: Path) -> None:
    peer = SigningIdentity.load_or_create(tmp_path / "peer", PEER)
    impostor = SigningIdentity.load_or_create(tmp_path / "impostor", PEER)
    trust = SignerTrust(tmp_path, ME, pins={PEER: peer.fingerprint})
    assert trust.status(PEER, peer.public) == "pinned"
    assert trust.check(PEER, peer.public) == "pinned"
    with pytest.raises(UntrustedKeyError, match="pins"):
        trust.check(PEER, impostor.public)


PROJECT = f"""[project]
name = "signing"

[tool.syftflwr]
app_name = "signing"
aggregator = "{AGG}"
datasites = ["{DS1}"]
transport = "fsspec-local"
round_timeout = 2
"""


def _connect(tmp_path: Path, email: str, app: str) -> Participant:
    pytest.importorskip(
        "syftflwr_fsspec_local", reason="the fsspec-local plugin is installed by nox"
    )
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "pyproject.toml").write_text(PROJECT)
    project = dataclasses.replace(load_project(tmp_path / "app"), app_name=app)
    env = {
        "SYFTFLWR_STATE_DIR": str(tmp_path / "state" / email),
        "SYFTFLWR_FSSPEC_LOCAL_ROOT": str(tmp_path / "shared"),
        "FLWR_TELEMETRY_ENABLED": "0",
    }
    return connect(project, email=email, env=env)


def test_the_jobs_endpoint_publishes_the_signing_key_beside_its_key(tmp_path: Path) -> None:
    with _connect(tmp_path, AGG, JOBS_APP) as agg, _connect(tmp_path, DS1, JOBS_APP) as ds:
        assert agg.keyring is not None and ds.keyring is not None
        mine = SigningIdentity.load(tmp_path / "state" / AGG, AGG)
        record = ds.keyring.fetch_record(AGG)
        assert record is not None and record.signing == mine.public
        trust = SignerTrust(tmp_path / "state" / DS1, DS1)
        assert trust.key_of(ds.keyring, AGG, mine.public) == (mine.public, "new")
        assert trust.key_of(ds.keyring, AGG) == (mine.public, "known")
        other = SigningIdentity.load_or_create(tmp_path / "elsewhere", AGG)
        with pytest.raises(UntrustedKeyError, match="publishes the signing key"):
            trust.key_of(ds.keyring, AGG, other.public)
        # the signing key is the participant's, in the jobs folder beside that app's key
        assert mine.path.parent == KeyStore(tmp_path / "state" / AGG / JOBS_APP / AGG, AGG).folder
    # an app's endpoint publishes no signing key, and creates none
    with _connect(tmp_path, AGG, "signing"), _connect(tmp_path, DS1, "signing") as ds:
        assert ds.keyring is not None
        record = ds.keyring.fetch_record(AGG)
        assert record is not None and record.signing is None
        with pytest.raises(UntrustedKeyError, match="publishes no signing key"):
            SignerTrust(tmp_path / "state" / DS1, DS1).key_of(ds.keyring, AGG)


def test_keys_trust_signer_accepts_a_replaced_key_and_show_prints_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"SYFTFLWR_HOME": str(home), "SYFTFLWR_EMAIL": ME, "FLWR_TELEMETRY_ENABLED": "0"}
    trust = SignerTrust(home / "state", ME)
    old = SigningIdentity.load_or_create(tmp_path / "peer", PEER)
    new = SigningIdentity.load_or_create(tmp_path / "peer-again", PEER)
    trust.check(PEER, old.public)
    runner = CliRunner()
    bad = runner.invoke(cli, ["keys", "trust-signer", PEER, "--fingerprint", "abc"], env=env)
    assert bad.exit_code == 2 and "not a fingerprint" in bad.output
    done = runner.invoke(
        cli, ["keys", "trust-signer", PEER, "--fingerprint", new.fingerprint], env=env
    )
    assert done.exit_code == 0, done.output
    assert f"trusted signing key {new.fingerprint} for {PEER} (was {old.fingerprint})" in (
        done.output
    )
    assert trust.check(PEER, new.public) == "known"
    with pytest.raises(UntrustedKeyError):
        trust.check(PEER, old.public)

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "pyproject.toml").write_text(PROJECT.replace(AGG, ME))
    shown = runner.invoke(cli, ["keys", "show", str(tmp_path / "app"), "--json"], env=env)
    assert json.loads(shown.output)["signing_fingerprint"] is None
    mine = SigningIdentity.load_or_create(home / "state", ME)
    shown = runner.invoke(cli, ["keys", "show", str(tmp_path / "app")], env=env)
    assert f"signing key (jobs and decisions, every app): {mine.fingerprint}" in shown.output


def test_signing_keys_pinned_in_the_settings_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    peer = SigningIdentity.load_or_create(tmp_path / "peer", PEER)
    impostor = SigningIdentity.load_or_create(tmp_path / "impostor", PEER)
    (home / "settings.toml").write_text(
        f'email = "{ME}"\n[signing_keys]\n"{PEER}" = "{peer.fingerprint}"\n'
    )
    env = {"SYFTFLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0"}
    settings = load_participant(env)
    assert settings.signing_keys == {PEER: peer.fingerprint}
    trust = SignerTrust.of(settings, ME, env)
    assert trust.folder == identity_dir(home / "state", ME)
    assert trust.check(PEER, peer.public) == "pinned"
    with pytest.raises(UntrustedKeyError, match="signing_keys pins"):
        trust.check(PEER, impostor.public)
    # accepting another key is refused: the pin outranks it
    accept = CliRunner().invoke(
        cli, ["keys", "trust-signer", PEER, "--fingerprint", impostor.fingerprint], env=env
    )
    assert accept.exit_code == 2 and "signing_keys." + PEER in accept.output
    assert "fix: write the new fingerprint there instead" in accept.output
    (home / "settings.toml").write_text(f'[signing_keys]\n"{PEER}" = "sha256:abc"\n')
    with pytest.raises(ConfigError, match="is not a key fingerprint"):
        load_participant(env)
