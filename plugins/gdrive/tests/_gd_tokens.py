"""Token files for the gdrive tests (a uniquely named module: test folders of several
distributions run in one pytest session, so nothing may be imported from `conftest`)."""

from __future__ import annotations

import json
from pathlib import Path

NEVER = "2099-01-01T00:00:00Z"
EXPIRED = "2020-01-01T00:00:00Z"


def write_token(
    path: Path,
    token: str | None,
    *,
    refresh_token: str = "unused-refresh-token",
    token_uri: str = "https://oauth2.googleapis.com/token",
    expiry: str = NEVER,
) -> Path:
    """An authorized-user token file as `syftflwr gdrive login` writes it. By default
    it is never refreshed (no Google here); point ``token_uri`` at the loopback
    server's ``{url}token`` and give a real ``refresh_token`` to test renewals."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "token": token,
                "refresh_token": refresh_token,
                "client_id": "test-client.apps.googleusercontent.com",
                "client_secret": "unused",
                "token_uri": token_uri,
                "expiry": expiry,
            }
        )
    )
    return path
