"""The client role's identity comes from a real SyftBox client config file, found the
way syft-core finds it; detection says "usable" exactly when such a config is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _sb_helpers import DS1, DS2, write_config
from syftflwr.errors import ConfigError, IdentityMismatchError
from syftflwr.info import TransportContext
from syftflwr_syftbox import plugin
from syftflwr_syftbox.client import SyftBoxClient
from syftflwr_syftbox.options import CONFIG_PATH_ENV, Settings, SyftBoxConfig


def context(email: str | None = DS1, **options: object) -> TransportContext:
    return TransportContext(transport="syftbox", app_name="app", email=email, options=options)


@pytest.fixture(autouse=True)
def _no_real_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the real user's ~/.syftbox."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CONFIG_PATH_ENV, raising=False)


def test_detection_without_a_config_says_why(tmp_path: Path) -> None:
    found = plugin.syftflwr_detect(context(None))
    assert not found.usable
    assert "config.json" in found.reason and CONFIG_PATH_ENV in found.reason


def test_detection_finds_the_config_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, DS1, tmp_path / "SyftBox")
    monkeypatch.setenv(CONFIG_PATH_ENV, str(path))
    found = plugin.syftflwr_detect(context(None))
    assert found.usable and DS1 in found.reason
    assert not plugin.syftflwr_detect(context(DS2)).usable


def test_default_location_and_legacy_name(tmp_path: Path) -> None:
    legacy = tmp_path / "home" / ".syftbox" / "client_config.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"email": DS1, "sync_folder": str(tmp_path / "sb")}))
    config = SyftBoxConfig.load(Settings.from_options({}).config_path)
    assert (config.email, config.data_dir, config.path) == (DS1, tmp_path / "sb", legacy)


def test_client_identity_and_data_dir_come_from_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, DS1, tmp_path / "SyftBox")
    client = SyftBoxClient(context(DS1, config_path=str(path)))
    try:
        assert client.email == DS1
        assert client.datasite_url(DS2) == str(
            tmp_path / "SyftBox" / "datasites" / DS2 / "app_data" / "syftflwr"
        )
        assert (tmp_path / "SyftBox" / "datasites" / DS1 / "app_data" / "syftflwr").is_dir()
    finally:
        client.close()


def test_a_config_of_someone_else_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, DS2, tmp_path / "SyftBox")
    with pytest.raises(IdentityMismatchError, match=str(path)):
        SyftBoxClient(context(DS1, config_path=str(path)))


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot read"), ('{"email": "../etc"}', "no valid email"), ("[]", "JSON")],
)
def test_broken_configs_name_the_file_and_the_fix(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        SyftBoxConfig.load(path)
    assert str(path) in str(info.value) and "fix:" in str(info.value)
