"""Who encrypts what over syftbox: core seals the native profile (keys through the
client's key directory, in the outboxes), syft-crypto the syft-flwr-0.5 profile (keys
and DID created when a participant connects), and the ``encrypt`` option is refused
where it would be ignored."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sb_helpers import SyftBoxFixtures, write_config
from syftflwr.crypto.directory import StorageKeyDirectory, key_directory_of
from syftflwr.errors import ConfigError, IdentityMismatchError
from syftflwr.info import TransportContext
from syftflwr.testing.conformance._federation import AGGREGATOR, APP, DATASITES, DS1, Federation
from syftflwr_syftbox import plugin
from syftflwr_syftbox.client import SyftBoxClient

PROFILE05 = "syft-flwr-0.5"


def did(tmp_path: Path, email: str) -> Path:
    return tmp_path / "SyftBox" / "datasites" / email / "public" / "did.json"


def context(
    tmp_path: Path, email: str, profile: str = "native", **options: object
) -> TransportContext:
    config = write_config(tmp_path / "configs", email, tmp_path / "SyftBox")
    return TransportContext(
        transport="syftbox",
        app_name=APP,
        email=email,
        options={"config_path": str(config), **options},
        state_dir=tmp_path / "state" / email,
        profile=profile,
        aggregator=AGGREGATOR,
        datasites=DATASITES,
    )


class TestNativeProfile(SyftBoxFixtures):
    def test_core_encrypts_it_through_the_outboxes(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        """No syft-crypto keys or DID: core's keys are published in the outboxes."""
        client = federation.client(DS1)
        assert not client.encrypts_messages()  # type: ignore[attr-defined]
        assert not client.capabilities.native_encryption  # type: ignore[attr-defined]
        directory = key_directory_of(client, APP)
        assert isinstance(directory, StorageKeyDirectory)
        directory.publish(b'{"record": 1}', [AGGREGATOR])
        outbox = f"syft_outbox_inbox_{DS1}_to_{AGGREGATOR}"
        record = tmp_path / "SyftBox" / "datasites" / DS1 / "app_data" / "syftflwr" / outbox
        assert (record / APP / "syftflwr.pubkey.json").read_bytes() == b'{"record": 1}'
        assert not did(tmp_path, DS1).exists()
        assert not list(tmp_path.rglob("pvt.jwks.json"))


@pytest.mark.parametrize(
    ("name", "value", "instead"),
    [("encrypt", True, "encryption in [tool.syftflwr]"),
     ("encrypt", False, "encryption in [tool.syftflwr]"),
     ("key_wait", 5.0, "wait for a peer's key")],
)  # fmt: skip
def test_syft_crypto_options_are_refused_in_the_native_profile(
    tmp_path: Path, name: str, value: object, instead: str
) -> None:
    """They would be ignored there (core seals it): the error names what applies."""
    with pytest.raises(ConfigError, match=f"option {name} is set .* applies only to") as caught:
        SyftBoxClient(context(tmp_path, DS1, **{name: value}))
    assert instead in str(caught.value)
    assert f"fix: remove {name}" in str(caught.value)
    assert not (tmp_path / "SyftBox").exists()  # refused before anything is written


@pytest.mark.parametrize(("value", "encrypts"), [(None, True), (True, True), (False, False)])
def test_syft_crypto_encrypts_the_syftflwr05_profile(
    tmp_path: Path, value: bool | None, encrypts: bool
) -> None:
    """On by default there; keys created and the DID published when it connects."""
    options = {} if value is None else {"encrypt": value}
    client = SyftBoxClient(context(tmp_path, DS1, PROFILE05, **options))
    try:
        assert client.encrypts_messages() is encrypts
        assert client.capabilities.native_encryption is encrypts
        assert did(tmp_path, DS1).is_file() is encrypts
        private = list((tmp_path / ".syftbox").rglob("pvt.jwks.json"))
        assert len(private) == int(encrypts)
        assert all(p.stat().st_mode & 0o077 == 0 for p in private)
    finally:
        client.close()


def test_the_identity_check_is_cores(tmp_path: Path) -> None:
    """Core's comparison (case-insensitive) and message, naming the config; a config
    that spells the same participant in another case is refused by name (datasite
    folders are named by the exact spelling), as is someone else's config."""
    with pytest.raises(IdentityMismatchError, match=f"acts as {AGGREGATOR}, but this participant"):
        SyftBoxClient(context(tmp_path, DS1, config_path=str(
            write_config(tmp_path / "other", AGGREGATOR, tmp_path / "SyftBox"))))  # fmt: skip
    shouting = write_config(tmp_path / "upper", DS1.upper(), tmp_path / "SyftBox")
    with pytest.raises(ConfigError, match=f"spells this participant {DS1.upper()}") as caught:
        SyftBoxClient(context(tmp_path, DS1, config_path=str(shouting)))
    assert not isinstance(caught.value, IdentityMismatchError)
    found = plugin.syftflwr_detect(context(tmp_path, DS1, config_path=str(shouting)))
    assert found.usable  # the same participant: the client says what to fix
    other = plugin.syftflwr_detect(context(tmp_path, AGGREGATOR, config_path=str(shouting)))
    assert not other.usable and "acts as" in other.reason and str(shouting) in other.reason


def test_transports_check_holds_syftbox_to_the_key_directory_core_encryption_needs() -> None:
    """The declared capabilities are the default (native) profile's, which core encrypts:
    ``transports --check`` must check that the client publishes keys, not call it "not
    needed, the transport encrypts itself" (it did while the native profile sealed its
    own objects)."""
    from syftflwr.cli.check import check_transport
    from syftflwr.registry import get_registry

    report = check_transport("syftbox", registry=get_registry())
    [keys] = [f for f in report.findings if "PublishesKeys" in f.detail]
    assert keys.status == "ok" and "SyftBoxClient offers it" in keys.detail, keys


def test_encrypt_false_in_the_syftflwr05_profile_with_encryption_on_is_refused(
    tmp_path: Path,
) -> None:
    """Core cannot seal that profile: with syft-crypto switched off nothing would encrypt.
    Refused before anything is written, naming both switches (core's own refusal could
    not point at this option once syftbox stopped declaring native encryption)."""
    import dataclasses

    on = dataclasses.replace(context(tmp_path, DS1, PROFILE05, encrypt=False), encryption=True)
    refused = "option encrypt is false, and encryption is on"
    with pytest.raises(ConfigError, match=refused) as caught:
        SyftBoxClient(on)
    message = str(caught.value)
    assert "fix: remove encrypt = false" in message and "encryption = false" in message
    assert not (tmp_path / "SyftBox").exists()
