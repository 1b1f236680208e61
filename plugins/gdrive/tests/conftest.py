"""Fixtures of the gdrive tests: a loopback Drive server and participants on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from _gd_tokens import write_token  # noqa: F401 - re-exported for fixtures
from drive_server import DriveState, running_drive
from google.oauth2.credentials import Credentials
from syftflwr_gdrive.api import DriveAPI, RetryPolicy
from syftflwr_gdrive.storage import DriveStorage

FAST_RETRIES = RetryPolicy(retries=6, base=0.001, cap=0.01)


@pytest.fixture
def drive() -> Iterator[tuple[DriveState, str]]:
    """A fresh loopback Drive and its root URL."""
    with running_drive() as served:
        yield served


@pytest.fixture
def make_api(drive: tuple[DriveState, str]) -> Callable[[str], DriveAPI]:
    """``email -> DriveAPI`` for a user of the loopback Drive (registered on first use)."""
    state, url = drive
    tokens: dict[str, str] = {}

    def make(email: str) -> DriveAPI:
        if email not in tokens:
            tokens[email] = state.add_user(email)
        return DriveAPI(Credentials(token=tokens[email]), root_url=url, policy=FAST_RETRIES)

    return make


@pytest.fixture
def make_storage(make_api: Callable[[str], DriveAPI]) -> Callable[..., DriveStorage]:
    def make(email: str, **kwargs: object) -> DriveStorage:
        return DriveStorage(make_api(email), email, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(autouse=True)
def _fresh_sessions() -> Iterator[None]:
    """Each test opens its own Drive sessions (and stops their feeds afterwards)."""
    yield
    from syftflwr_gdrive.plugin import kit

    kit.forget()
