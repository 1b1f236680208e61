"""Credentials: an authorized-user token file (written by ``syftflwr gdrive login``) or,
in Google Colab, the notebook's built-in authentication."""

from __future__ import annotations

from typing import Any

from syftflwr.errors import ConfigError

from syftflwr_gdrive.options import SCOPES, Settings, in_colab


def load_credentials(settings: Settings, email: str | None = None) -> Any:
    """Google credentials for participant ``email``; raises ConfigError naming the fix."""
    path = settings.token_path(email)
    if path.is_file():
        from google.oauth2.credentials import Credentials

        try:
            return Credentials.from_authorized_user_file(str(path), list(SCOPES))  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, OSError) as exc:
            raise ConfigError(
                f"cannot read the Google Drive token {path}: {exc}",
                key="token_file",
                fix="run `syftflwr gdrive login` again to write a fresh token",
            ) from exc
    if not settings.token_configured and in_colab():
        return colab_credentials()
    raise ConfigError(
        f"no Google Drive token at {path}",
        key="token_file",
        fix="run `syftflwr gdrive login` (or set token_file / SYFTFLWR_GDRIVE_TOKEN to "
        "an authorized-user token file)",
    )


def colab_credentials() -> Any:
    """Colab's own login (a pop-up in the notebook), then its default credentials."""
    import google.auth
    from google.colab import auth

    auth.authenticate_user()
    credentials, _ = google.auth.default(scopes=list(SCOPES))
    return credentials
