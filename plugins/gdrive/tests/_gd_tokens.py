"""Token files for the gdrive tests (a uniquely named module: test folders of several
distributions run in one pytest session, so nothing may be imported from `conftest`)."""

from __future__ import annotations

import json
from pathlib import Path


def write_token(path: Path, token: str) -> Path:
    """An authorized-user token file as `syftflwr gdrive login` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "token": token,
                "refresh_token": "unused-refresh-token",
                "client_id": "test-client.apps.googleusercontent.com",
                "client_secret": "unused",
                "token_uri": "https://oauth2.googleapis.com/token",
                "expiry": "2099-01-01T00:00:00Z",  # never refreshed: no Google here
            }
        )
    )
    return path
