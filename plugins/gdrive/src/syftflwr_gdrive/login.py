"""``syftflwr gdrive login``: the OAuth installed-app flow, saving an authorized-user
token file that the transport then uses.

The flow needs an OAuth client of type "Desktop app" from a Google Cloud project (its
``client_secret.json``); the user consents in a browser and Google redirects to a
one-shot web server on localhost, which receives the code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syftflwr.plugin import ConfigError, expand_user

from syftflwr_gdrive.auth import save_token
from syftflwr_gdrive.options import SCOPES, gdrive_dir, migrate_legacy

__all__ = ["default_client_secrets", "login", "save_token"]

CLIENT_SECRETS_ENV = "SYFTFLWR_GDRIVE_CLIENT_SECRETS"


def default_client_secrets(env: Mapping[str, str] = os.environ) -> Path:
    if env.get(CLIENT_SECRETS_ENV):
        return expand_user(env[CLIENT_SECRETS_ENV], env)
    path = gdrive_dir(env) / "client_secret.json"
    migrate_legacy(path, env)
    return path


def login(
    client_secrets: Path,
    token_file: Path,
    *,
    open_browser: bool = True,
    browser: str | None = None,
    port: int = 0,
    timeout: float | None = 300,
) -> Any:
    """Run the consent flow and save the token; returns the credentials."""
    if not client_secrets.is_file():
        raise ConfigError(
            f"no OAuth client secrets at {client_secrets}",
            key="client_secrets",
            fix="create an OAuth client of type 'Desktop app' in Google Cloud Console "
            "(APIs & Services > Credentials, with the Drive API enabled), download its "
            f"JSON to {client_secrets} or pass --client-secrets",
        )
    from google_auth_oauthlib.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=list(SCOPES))
    credentials = flow.run_local_server(
        port=port,
        open_browser=open_browser,
        browser=browser,
        timeout_seconds=timeout,
        authorization_prompt_message="Open this URL in a browser to let syftflwr use your "
        "Google Drive:\n{url}",
        success_message="syftflwr is signed in; you may close this window.",
    )
    save_token(credentials, token_file)
    return credentials
