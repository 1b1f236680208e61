"""Credentials: an authorized-user token file (written by ``syftflwr gdrive login``) or,
in Google Colab, the notebook's built-in authentication.

Access tokens live about an hour and runs last longer, so token-file credentials renew
themselves (google-auth's refresh grant, made by google-auth-httplib2 before a request
once the token is stale, or after Drive answers 401) and stay in step with their file:

* ONE refresh for all threads and processes using the token file: the others wait for
  it (a thread lock, then an OS lock on ``.<token file>.lock``, released by the OS if its
  holder dies) and use its token — no storm, and a rotated refresh token is never spent
  twice;
* the renewed token is saved back to the file, atomically and 0600, so the next start
  does not refresh again and a rotated refresh token is not lost;
* a token another process saved in the meantime is adopted instead of refreshing;
* a refused refresh (``invalid_grant``: access revoked) is remembered, so a runner does
  not ask Google again every poll; rewriting the file (``syftflwr gdrive login``)
  revives the credentials without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from syftflwr.plugin import ConfigError, atomic_write

from syftflwr_gdrive.options import SCOPES, Settings

log = logging.getLogger("syftflwr.gdrive")

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_GOOGLE_TOKEN_HOSTS = frozenset(
    {"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"}
)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def save_token(credentials: Any, path: Path) -> None:
    """Write the token readable by this user only, atomically."""
    atomic_write(path, credentials.to_json(), mode=0o600)


def _token_uri(info: dict[str, Any], path: Path) -> str:
    """The file's ``token_uri`` if it is Google's or on loopback (tests, a local proxy).
    google-auth ignores the file's value (a token file must not send the refresh token
    anywhere); loopback cannot leak it off the machine."""
    uri = str(info.get("token_uri") or GOOGLE_TOKEN_URI)
    parts = urllib.parse.urlsplit(uri)
    if (parts.scheme == "https" and parts.hostname in _GOOGLE_TOKEN_HOSTS) or (
        parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK
    ):
        return uri
    raise ConfigError(
        f"the Google Drive token {path} names token_uri {uri!r}, which is neither Google's "
        "nor on this machine",
        key="token_file",
        fix="run `syftflwr gdrive login` again to write a fresh token",
    )


@contextmanager
def _process_lock(path: Path | None) -> Iterator[None]:
    """Exclusive across the processes of this machine while held (``path``: the token
    file; the lock is ``.<name>.lock`` beside it, 0600, kept for the next time); the OS
    releases it if the holder dies."""
    if path is None:
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if sys.platform == "win32":
            import msvcrt

            while True:  # LK_LOCK gives up after 10 s; a refresh may take longer
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class TokenFileCredentials(Credentials):
    """google-auth's user credentials bound to their token file (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.path: Path | None = None
        self.refreshes = 0
        """Refresh grants this process made (tests, observability)."""
        self._sf_lock = threading.Lock()
        self._sf_sent = threading.local()
        self._sf_stamp: tuple[int, int, int] | None = None
        self._sf_refused: str | None = None

    @classmethod
    def from_file(cls, path: Path) -> TokenFileCredentials:
        info = json.loads(path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        creds: TokenFileCredentials = cls.from_authorized_user_info(info, list(SCOPES))  # type: ignore[no-untyped-call]
        creds._token_uri = _token_uri(info, path)
        creds.path = path
        creds._sf_stamp = _stamp(path)
        return creds

    def apply(self, headers: Any, token: str | None = None) -> None:
        super().apply(headers, token)  # type: ignore[no-untyped-call]
        self._sf_sent.token = token or self.token  # what this thread's request carries

    def refresh(self, request: Any) -> None:
        sent = getattr(self._sf_sent, "token", None)
        with self._sf_lock:
            if self._renewed_since(sent):
                return  # another thread refreshed while this one waited
            with _process_lock(self.path):
                if self._adopt_file() and self._renewed_since(sent):
                    return  # another process (or a new login) wrote a live token
                if self._sf_refused is not None:
                    raise RefreshError(self._sf_refused)  # type: ignore[no-untyped-call]
                try:
                    super().refresh(request)  # type: ignore[no-untyped-call]
                except RefreshError as exc:
                    if not getattr(exc, "retryable", False):  # absent in older google-auth
                        self._sf_refused = str(exc.args[0] if exc.args else exc)
                        self.token = None  # no request goes out with it any more
                    raise
                self.refreshes += 1
                self._save()

    def _renewed_since(self, sent: str | None) -> bool:
        return self.token is not None and self.token != sent and bool(self.valid)

    def _adopt_file(self) -> bool:
        """Take the file's token if the file changed since we last read or wrote it."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._sf_stamp:
            return False
        self._sf_stamp = stamp
        try:
            fresh = type(self).from_file(self.path)
        except (ValueError, KeyError, OSError, ConfigError) as exc:
            log.warning("ignoring the unreadable Google Drive token %s: %s", self.path, exc)
            return False
        self.token, self.expiry = fresh.token, fresh.expiry
        self._refresh_token, self._token_uri = fresh.refresh_token, fresh.token_uri
        self._sf_refused = None
        return True

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            save_token(self, self.path)
        except OSError as exc:
            log.warning(
                "cannot save the renewed Google Drive token to %s (%s); the next start "
                "renews it again",
                self.path,
                exc,
            )
            return
        self._sf_stamp = _stamp(self.path)


def load_credentials(settings: Settings, email: str | None = None) -> Any:
    """Google credentials for participant ``email``; raises ConfigError naming the fix."""
    path = settings.token_path(email)
    if path.is_file():
        try:
            return TokenFileCredentials.from_file(path)
        except (ValueError, KeyError, OSError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(
                f"cannot read the Google Drive token {path}: {exc}",
                key="token_file",
                fix="run `syftflwr gdrive login` again to write a fresh token",
            ) from exc
    if not settings.token_configured and settings.colab:
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
