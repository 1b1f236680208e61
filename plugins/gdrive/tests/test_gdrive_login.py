"""`syftflwr gdrive login`: the real OAuth installed-app flow (google-auth-oauthlib) against
the loopback server's token endpoint; a stand-in browser plays the user who consents."""

from __future__ import annotations

import json
import stat
import threading
import urllib.parse
import urllib.request
import webbrowser
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from drive_server import DriveState
from syftflwr.errors import ConfigError
from syftflwr.info import TransportContext
from syftflwr_gdrive import plugin
from syftflwr_gdrive.login import login

AGG = "agg@example.org"


class ConsentingBrowser(webbrowser.BaseBrowser):
    """Stands in for a person who opens the consent page and clicks "Allow": Google
    would then redirect the browser to the local server with a code."""

    def __init__(self, code: str) -> None:
        super().__init__("consenting-browser")
        self.code = code

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        redirect = query["redirect_uri"][0]
        target = f"{redirect}?code={self.code}&state={query['state'][0]}"
        threading.Thread(
            target=lambda: urllib.request.urlopen(target, timeout=30).read(), daemon=True
        ).start()
        return True


def _client_secrets(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "client_secret.json"
    path.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "test-client.apps.googleusercontent.com",
                    "client_secret": "test-secret",
                    "auth_uri": url + "auth",
                    "token_uri": url + "token",
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    return path


def test_login_saves_a_token_the_transport_uses(
    drive: tuple[DriveState, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = drive
    state.oauth_codes["the-code"] = state.add_user(AGG)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback token URL is http
    webbrowser.register("syftflwr-consenting", None, ConsentingBrowser("the-code"))
    group = click.Group("gdrive")
    plugin.syftflwr_register_commands(group)
    token_file = tmp_path / "home" / "token.json"
    result = CliRunner().invoke(
        group,
        ["login", "--client-secrets", str(_client_secrets(tmp_path, url)),
         "--token-file", str(token_file), "--browser", "syftflwr-consenting"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"saved the Google Drive token to {token_file}" in result.output
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    context = TransportContext(
        transport="gdrive",
        app_name="app",
        email=AGG,
        options={"token_file": str(token_file), "api_root_url": url},
    )
    assert plugin.syftflwr_make_client(context).email == AGG


def test_login_without_client_secrets_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Desktop app"):
        login(tmp_path / "missing.json", tmp_path / "token.json", open_browser=False)
