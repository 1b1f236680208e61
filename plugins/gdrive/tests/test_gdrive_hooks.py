"""Hooks, options, detection, credentials (token file and the Colab path), identity, and
surviving a rate-limit storm mid-conversation."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from _gd_tokens import write_token
from drive_server import DriveState
from syftflwr.config.resolve import check_identity
from syftflwr.errors import ConfigError, IdentityMismatchError
from syftflwr.info import TransportContext
from syftflwr.registry import get_registry
from syftflwr.roles import ClientRole
from syftflwr.testing.conformance import Federation, Recorder
from syftflwr_gdrive import plugin
from syftflwr_gdrive.auth import load_credentials
from syftflwr_gdrive.options import Settings, default_token_file

AGG, DS1 = "agg@example.org", "ds1@example.org"


def _context(email: str | None, **options: Any) -> TransportContext:
    return TransportContext(transport="gdrive", app_name="app", email=email, options=options)


def test_transport_info_documents_every_option() -> None:
    info = plugin.syftflwr_transport_info()
    assert info.name == "gdrive"
    names = {o.name for o in info.options}
    assert {"token_file", "root_folder", "poll_interval", "max_object_size"} <= names
    assert all(o.help for o in info.options)
    assert not info.capabilities.notifies_arrivals and info.capabilities.poll_interval


def test_default_token_file_honours_syftflwr_home(tmp_path: Path) -> None:
    assert default_token_file({"SYFTFLWR_HOME": str(tmp_path)}) == tmp_path / "gdrive/token.json"
    assert Settings.from_options({}, env={"SYFTFLWR_GDRIVE_TOKEN": "/x/t.json"}).token_file == (
        Path("/x/t.json")
    )
    with pytest.raises(ValueError, match="plain folder name"):
        Settings.from_options({"root_folder": "a/b"})


def test_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYFTFLWR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SYFTFLWR_GDRIVE_TOKEN", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    verdict = plugin.syftflwr_detect(_context(None))
    assert not verdict.usable and "syftflwr gdrive login" in verdict.reason
    token = write_token(tmp_path / "t.json", "x")
    verdict = plugin.syftflwr_detect(_context(None, token_file=str(token)))
    assert verdict.usable and verdict.preference == 30
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")  # what Colab sets
    verdict = plugin.syftflwr_detect(_context(None))
    assert verdict.usable and "Colab" in verdict.reason


def test_a_token_in_the_old_folder_moves_to_the_config_folder_core_uses(
    drive: tuple[DriveState, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tokens lived in ~/.syftflwr/gdrive; core keeps a participant's files in the per-user
    config folder (XDG). Detection points at the old file without touching it; the first
    client moves it, says so once, and later runs are silent."""
    state, url = drive
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CONFIG_HOME", "SYFTFLWR_HOME", "SYFTFLWR_GDRIVE_TOKEN", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)
    old = write_token(tmp_path / ".syftflwr" / "gdrive" / "token.json", state.add_user(AGG))
    new = tmp_path / ".config" / "syftflwr" / "gdrive" / "token.json"
    assert default_token_file() == new
    verdict = plugin.syftflwr_detect(_context(None))
    assert verdict.usable and f"{old} (moves to {new} on first use)" in verdict.reason
    assert old.is_file() and not new.exists()
    with caplog.at_level("WARNING", logger="syftflwr.gdrive"):
        client = plugin.syftflwr_make_client(_context(AGG, api_root_url=url))
    assert client.email == AGG and new.is_file() and not old.exists()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [f"moved {old} to {new}"]
    caplog.clear()
    plugin.kit.forget()
    with caplog.at_level("WARNING", logger="syftflwr.gdrive"):
        assert plugin.syftflwr_make_client(_context(AGG, api_root_url=url)).email == AGG
    assert caplog.records == []
    assert "Google Drive token at " + str(new) in plugin.syftflwr_detect(_context(None)).reason


def test_missing_token_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    settings = Settings.from_options({"token_file": str(tmp_path / "none.json")})
    with pytest.raises(ConfigError, match="syftflwr gdrive login"):
        load_credentials(settings)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="login` again"):
        load_credentials(Settings.from_options({"token_file": str(tmp_path / "bad.json")}))


def test_colab_login_path(
    drive: tuple[DriveState, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Colab cannot run here: a STAND-IN ``google.colab`` module records the login call,
    and ``google.auth.default`` (what Colab's login configures) is replaced by real
    credentials for the loopback server. Everything after it is real."""
    from google.oauth2.credentials import Credentials

    state, url = drive
    token = state.add_user(AGG)
    logins: list[str] = []
    colab = types.ModuleType("google.colab")
    colab_auth = types.ModuleType("google.colab.auth")
    colab_auth.authenticate_user = lambda: logins.append("login")  # type: ignore[attr-defined]
    colab.auth = colab_auth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.auth", colab_auth)
    import google.auth

    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (Credentials(token), "p"))
    monkeypatch.setenv("SYFTFLWR_HOME", str(tmp_path / "home"))  # no token file there
    monkeypatch.delenv("SYFTFLWR_GDRIVE_TOKEN", raising=False)
    assert plugin.syftflwr_detect(_context(None)).preference == 40
    client = plugin.syftflwr_make_client(_context(AGG, api_root_url=url))
    assert isinstance(client, ClientRole) and client.email == AGG and logins == ["login"]


def test_identity_is_the_token_owner(drive: tuple[DriveState, str], tmp_path: Path) -> None:
    state, url = drive
    token = write_token(tmp_path / "t.json", state.add_user(DS1))
    ctx = _context(AGG, token_file=str(token), api_root_url=url)
    client = get_registry().load("gdrive").make_client(ctx)
    assert client.email == DS1
    with pytest.raises(IdentityMismatchError):
        check_identity(ctx, client.email)
    assert client.datasite_url(AGG) != client.datasite_url(DS1)


def test_a_rate_limit_storm_is_survived(drive: tuple[DriveState, str], tmp_path: Path) -> None:
    state, url = drive
    transport = get_registry().load("gdrive")

    def factory(email: str) -> TransportContext:
        token = tmp_path / f"{email}.json"
        if not token.exists():
            write_token(token, state.add_user(email))
        options = {"token_file": str(token), "api_root_url": url, "poll_interval": 0.02,
                   "retention_interval": 0}  # fmt: skip
        return TransportContext(transport="gdrive", app_name="app", email=email,
                                options=options, state_dir=tmp_path / email)  # fmt: skip

    fed = Federation(transport, factory, timeout=60, settle=0.3)  # type: ignore[arg-type]
    try:
        fed.serve("ds1@conformance.example", Recorder())
        assert fed.roundtrip("ds1@conformance.example", b"warm-up").ok
        for status, reason in ((429, None), (403, "userRateLimitExceeded"), (503, None)):
            state.inject(status, 5, reason)
            response = fed.roundtrip("ds1@conformance.example", status.to_bytes(2, "big"))
            assert response.ok and bytes(response.body) == status.to_bytes(2, "big")
        fed.check_servers()
    finally:
        fed.close()
