"""Access-token renewal (issue 6), against the loopback server's OAuth token endpoint and
with the REAL google-auth, google-auth-httplib2 and google-api-python-client — nothing
mocked: a token expired at start is renewed and saved; a token refused mid-run (401) is
renewed and the request retried, in every code path and from many threads with ONE
refresh; a rotated refresh token survives a restart; a revoked one is a syftflwr error
naming the fix, after which nothing is retried until the user signs in again."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _gd_tokens import EXPIRED, NEVER, write_token
from drive_server import DriveState
from syftflwr.envelope import Request
from syftflwr.errors import ConfigError, StorageError
from syftflwr.info import TransportContext
from syftflwr.mailbox.layout import Route
from syftflwr.plugin import MailboxClient
from syftflwr.registry import get_registry
from syftflwr.testing.datasite_process import DatasiteProcess, DatasiteSpec, reply_for
from syftflwr_gdrive.api import DriveAPI, DriveAuthError, RetryPolicy
from syftflwr_gdrive.auth import TokenFileCredentials, load_credentials
from syftflwr_gdrive.options import Settings
from syftflwr_gdrive.plugin import kit
from syftflwr_gdrive.session import whoami
from syftflwr_gdrive.storage import DriveStorage

AGG, DS1 = "agg@example.org", "ds1@example.org"
FAST = RetryPolicy(retries=4, base=0.001, cap=0.01)
Drive = tuple[DriveState, str]


@dataclass
class Account:
    email: str
    path: Path
    access: str
    refresh: str


def _account(state: DriveState, url: str, tmp_path: Path, email: str, *, stale: bool = False,
             refused: bool = False) -> Account:  # fmt: skip
    """A signed-in participant whose token file renews through the loopback server.
    ``stale``: the file says the access token expired; ``refused``: Drive refuses it."""
    access, refresh = state.add_user(email), state.refresh_token_for(email)
    if refused:
        state.expire(access)
    path = write_token(tmp_path / "tokens" / f"{email}.json", access, refresh_token=refresh,
                       token_uri=url + "token", expiry=EXPIRED if stale else NEVER)  # fmt: skip
    path.chmod(0o600)
    return Account(email, path, access, refresh)


def _saved(account: Account) -> dict[str, Any]:
    return dict(json.loads(account.path.read_text()))


def _credentials(account: Account) -> TokenFileCredentials:
    settings = Settings.from_options({"token_file": str(account.path)})
    creds = load_credentials(settings, account.email)
    assert isinstance(creds, TokenFileCredentials)
    return creds


def _api(account: Account, url: str) -> DriveAPI:
    return DriveAPI(_credentials(account), root_url=url, policy=FAST)


def _context(account: Account, url: str, tmp_path: Path, **options: Any) -> TransportContext:
    return TransportContext(
        transport="gdrive", app_name="app", email=account.email, aggregator=AGG,
        datasites=(DS1,), state_dir=tmp_path / "state" / account.email,
        options={"token_file": str(account.path), "api_root_url": url, "poll_interval": 0.02,
                 "retries": 4, **options},
    )  # fmt: skip


def _client(account: Account, url: str, tmp_path: Path) -> MailboxClient:
    client = get_registry().load("gdrive").make_client(_context(account, url, tmp_path))
    assert isinstance(client, MailboxClient) and isinstance(client.storage, DriveStorage)
    return client


def test_the_server_refuses_expired_tokens_like_drive_and_renews_them(drive: Drive) -> None:
    state, url = drive
    access, refresh = state.add_user(AGG), state.refresh_token_for(AGG)
    state.expire(access)
    about = urllib.request.Request(
        url + "drive/v3/about", headers={"Authorization": f"Bearer {access}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(about, timeout=10)
    assert refused.value.code == 401
    assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"]
    item = json.loads(refused.value.read())["error"]["errors"][0]
    assert (item["reason"], item["location"]) == ("authError", "Authorization")

    def grant(refresh_token: str) -> tuple[int, dict[str, Any]]:
        form = f"grant_type=refresh_token&refresh_token={refresh_token}&client_id=c&client_secret=s"
        try:
            with urllib.request.urlopen(url + "token", form.encode(), timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = grant(refresh)
    assert status == 200 and "refresh_token" not in body  # unchanged: Google omits it
    assert state.user_of(body["access_token"]) == AGG
    state.rotate_refresh_tokens = True
    status, body = grant(refresh)
    assert status == 200 and body["refresh_token"] != refresh
    revoked = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    assert grant(refresh) == (400, revoked)
    state.revoke(body["refresh_token"])
    assert grant(body["refresh_token"])[0] == 400
    assert state.grants == Counter({"refresh_token": 2, "invalid_grant": 2})


def test_an_expired_token_is_renewed_at_start_saved_and_not_renewed_again(
    drive: Drive, tmp_path: Path
) -> None:
    state, url = drive
    agg = _account(state, url, tmp_path, AGG, stale=True, refused=True)
    client = _client(agg, url, tmp_path)
    assert client.email == AGG
    assert state.grants == Counter({"refresh_token": 1})
    assert state.rejected[AGG] == 0  # renewed BEFORE the first request: the file said so
    route = Route(AGG, DS1, "app", "messages")
    client.storage.put(route.request_path("1" * 32), [b"hello"])
    assert bytes(client.storage.get(route.request_path("1" * 32)) or b"") == b"hello"

    saved = _saved(agg)
    assert saved["token"] != agg.access and state.user_of(saved["token"]) == AGG
    assert saved["refresh_token"] == agg.refresh and saved["token_uri"] == url + "token"
    expiry = dt.datetime.fromisoformat(saved["expiry"].replace("Z", "+00:00"))
    assert expiry > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    assert stat.S_IMODE(agg.path.stat().st_mode) == 0o600
    lock = agg.path.with_name(f".{agg.path.name}.lock")  # renewals of all processes: one at a time
    assert sorted(agg.path.parent.iterdir()) == [lock, agg.path]  # no temporary file left

    kit.forget()  # the next start
    assert _client(agg, url, tmp_path).email == AGG
    assert state.grants == Counter({"refresh_token": 1})


@pytest.mark.parametrize("how", ["stale", "refused"])
def test_threads_share_one_refresh(drive: Drive, tmp_path: Path, how: str) -> None:
    """``stale``: google-auth renews before sending; ``refused``: Drive answers 401 to
    a token the client believed valid. Either way the 8 threads (one Drive service
    each) cause ONE grant; with the refresh token rotated, a second grant would spend
    the revoked one and fail."""
    state, url = drive
    agg = _account(state, url, tmp_path, AGG, stale=how == "stale", refused=True)
    api = _api(agg, url)
    state.rotate_refresh_tokens = True
    state.token_delay = 0.2  # every thread is waiting while the refresh is in flight
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def work() -> None:
        barrier.wait()
        try:
            results.append(whoami(api))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [AGG] * 8
    assert state.grants == Counter({"refresh_token": 1})
    assert api.credentials.refreshes == 1
    saved = _saved(agg)
    assert saved["refresh_token"] != agg.refresh and state.refresh_tokens == {
        saved["refresh_token"]: AGG
    }  # the rotated refresh token is saved; the old one is revoked
    assert saved["token"] == api.credentials.token


def test_a_round_trip_survives_tokens_expiring_every_few_requests(
    drive: Drive, tmp_path: Path
) -> None:
    """Every access token dies after 7 requests, so 401s hit every code path — the
    changes feed, lookups, multipart and RESUMABLE uploads, ranged downloads, deletes —
    on the feed thread, the runner's workers and the caller, for both sides at once."""
    state, url = drive
    transport = get_registry().load("gdrive")
    agg, ds1 = _account(state, url, tmp_path, AGG), _account(state, url, tmp_path, DS1)
    options = {"max_object_size": 600 * 1024, "transfer_chunk_size": 256 * 1024,
               "retention_interval": 3600}  # fmt: skip
    agg_ctx = _context(agg, url, tmp_path, **options)
    ds_ctx = _context(ds1, url, tmp_path, **options)
    agg_client, ds_client = transport.make_client(agg_ctx), transport.make_client(ds_ctx)
    rpc, events = transport.make_rpc(agg_client, agg_ctx), transport.make_events(ds_client, ds_ctx)
    events.on_request("echo", lambda request: bytes(request.body))
    before = sum(state.calls.values())
    state.requests_per_token = 7
    server = threading.Thread(target=events.run_forever, daemon=True)
    server.start()
    try:
        for body in (b"small", os.urandom(1300 * 1024)):  # plain; chunked + resumable
            handle = rpc.send(Request.new(sender=AGG, recipient=DS1, app="app",
                                          endpoint="echo", body=body, ttl=600))  # fmt: skip
            got: list[Any] = []
            while not got:
                got = rpc.wait([handle], timeout=60)
            assert got[0].ok and bytes(got[0].body) == body
            rpc.forget(handle)
    finally:
        events.stop()
        server.join(30)
        events.close()
        rpc.close()
    accepted = sum(state.calls.values()) - before
    assert state.rejected[AGG] and state.rejected[DS1]
    assert "invalid_grant" not in state.grants
    # no refresh storm: every renewed token served its 7 requests (but each side's last)
    assert 4 <= state.grants["refresh_token"] <= accepted // 7 + 2
    for account, client in ((agg, agg_client), (ds1, ds_client)):
        assert _saved(account)["token"] == client.storage.api.credentials.token
        # each 401 was retried by google-auth-httplib2 at once: no request timed out (a
        # resumable chunk sent as a stream slice could not be rewound and hung 60 s)
        assert client.storage.api.retried == 0


def test_a_rotated_refresh_token_survives_a_restart(drive: Drive, tmp_path: Path) -> None:
    state, url = drive
    state.rotate_refresh_tokens = True
    agg = _account(state, url, tmp_path, AGG, stale=True)
    assert whoami(_api(agg, url)) == AGG  # renewed: refresh token rotated and saved
    state.expire(_saved(agg)["token"])  # an hour later, in another process
    assert whoami(_api(agg, url)) == AGG
    assert state.grants == Counter({"refresh_token": 2})


def test_a_token_renewed_by_another_process_is_adopted(drive: Drive, tmp_path: Path) -> None:
    """Two processes on one token file: the second takes the token the first saved
    instead of spending the refresh token the first one rotated away."""
    state, url = drive
    state.rotate_refresh_tokens = True
    agg = _account(state, url, tmp_path, AGG)
    first, second = _api(agg, url), _api(agg, url)
    assert whoami(first) == whoami(second) == AGG
    state.expire(agg.access)
    assert whoami(first) == AGG
    assert whoami(second) == AGG  # 401, then the file's live token: no grant
    assert state.grants == Counter({"refresh_token": 1})
    assert second.credentials.token == first.credentials.token == _saved(agg)["token"]


def test_a_revoked_refresh_token_at_start_names_the_fix(drive: Drive, tmp_path: Path) -> None:
    state, url = drive
    agg = _account(state, url, tmp_path, AGG, stale=True, refused=True)
    state.revoke(agg.refresh)
    with pytest.raises(DriveAuthError) as failed:
        _client(agg, url, tmp_path)
    assert isinstance(failed.value, StorageError) and failed.value.status == 401
    text = str(failed.value)
    assert f"fix: run `syftflwr gdrive login --token-file {agg.path}`" in text
    assert "invalid_grant" in text and "Traceback" not in text


def test_a_revoked_refresh_token_mid_run_stops_asking_until_the_user_signs_in_again(
    drive: Drive, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, url = drive
    agg = _account(state, url, tmp_path, AGG)
    client = _client(agg, url, tmp_path)
    storage, feed = client.storage, client.arrivals
    route = Route(AGG, DS1, "app", "messages")
    state.revoke(agg.refresh)  # the user removed the app's access in their account
    state.expire(agg.access)
    with pytest.raises(DriveAuthError, match="syftflwr gdrive login"):
        storage.put(route.request_path("1" * 32), [b"x"])
    assert state.grants == Counter({"invalid_grant": 1})
    rejected, calls = state.rejected[AGG], sum(state.calls.values())
    with caplog.at_level(logging.WARNING, logger="syftflwr.gdrive"):
        for _ in range(5):  # a runner's feed keeps polling: no request leaves
            assert feed.poll_once() == 0
    assert "syftflwr gdrive login" in caplog.text
    with pytest.raises(DriveAuthError):
        storage.get(route.request_path("1" * 32))
    assert state.grants == Counter({"invalid_grant": 1})
    assert (state.rejected[AGG], sum(state.calls.values())) == (rejected, calls)

    # `syftflwr gdrive login` writes a new token: the running process picks it up
    write_token(agg.path, state.add_user(AGG), refresh_token=state.refresh_token_for(AGG),
                token_uri=url + "token")  # fmt: skip
    storage.put(route.request_path("2" * 32), [b"y"])
    assert bytes(storage.get(route.request_path("2" * 32)) or b"") == b"y"
    assert feed.poll_once() >= 0


def test_a_token_uri_off_google_and_off_this_machine_is_refused(
    drive: Drive, tmp_path: Path
) -> None:
    state, _ = drive
    path = write_token(
        tmp_path / "t.json", state.add_user(AGG), token_uri="https://evil.example/token"
    )
    with pytest.raises(ConfigError, match="neither Google's nor on this machine"):
        load_credentials(Settings.from_options({"token_file": str(path)}), AGG)
    google = write_token(tmp_path / "g.json", "x")  # the default token_uri is Google's
    assert (
        _credentials(Account(AGG, google, "x", "r")).token_uri
        == "https://oauth2.googleapis.com/token"
    )


def test_a_datasite_process_waits_out_a_revocation_and_resumes_after_a_new_login(
    drive: Drive, tmp_path: Path
) -> None:
    """A datasite runner in its own OS process: its refresh token is revoked mid-run, so
    it logs the fix once and sends NOTHING (no refresh attempts, no Drive requests)
    while it waits; once the user signs in again it answers, without a restart."""
    state, url = drive
    transport = get_registry().load("gdrive")
    agg, ds1 = _account(state, url, tmp_path, AGG), _account(state, url, tmp_path, DS1)
    fast = {"max_poll_interval": 0.1, "retention_interval": 0}
    agg_ctx, ds_ctx = _context(agg, url, tmp_path, **fast), _context(ds1, url, tmp_path, **fast)
    rpc = transport.make_rpc(transport.make_client(agg_ctx), agg_ctx)
    datasite = DatasiteProcess(
        DatasiteSpec(transport.entry.name, transport.entry.target, ds_ctx, "echo"), tmp_path
    )

    def round_trip(body: bytes, timeout: float = 30) -> None:
        handle = rpc.send(Request.new(sender=AGG, recipient=DS1, app="app", endpoint="echo",
                                      body=body, ttl=600))  # fmt: skip
        deadline, got = time.monotonic() + timeout, []
        while not got and time.monotonic() < deadline:
            got = rpc.wait([handle], timeout=1)
        assert got and got[0].ok, datasite.log
        assert bytes(got[0].body) == reply_for(DS1, body)

    try:
        round_trip(b"before")
        state.revoke(ds1.refresh)  # the user removed the app's access...
        state.expire_all(DS1)  # ...and the access tokens die with it
        deadline = time.monotonic() + 30
        while not state.grants["invalid_grant"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.grants["invalid_grant"] == 1, datasite.log
        time.sleep(0.3)  # let in-flight requests settle, then count
        quiet = (state.rejected[DS1], state.calls_by(DS1), dict(state.grants))
        time.sleep(1.5)  # ~15 polls at max_poll_interval
        assert (state.rejected[DS1], state.calls_by(DS1), dict(state.grants)) == quiet
        assert f"syftflwr gdrive login --token-file {ds1.path}" in datasite.log

        # what `syftflwr gdrive login` does
        write_token(
            ds1.path,
            state.add_user(DS1),
            refresh_token=state.refresh_token_for(DS1),
            token_uri=url + "token",
        )
        round_trip(b"after a new login")
    finally:
        code = datasite.stop(timeout=30)
        rpc.close()
    assert code == 0, datasite.log


def test_credentials_without_a_token_file_say_how_to_sign_in_again(drive: Drive) -> None:
    """Colab's credentials (here: an access token alone) cannot name a token file."""
    from google.oauth2.credentials import Credentials

    state, url = drive
    access = state.add_user(AGG)
    state.expire(access)
    api = DriveAPI(Credentials(token=access), root_url=url, policy=FAST)
    with pytest.raises(DriveAuthError, match=r"fix: sign in again \(in Colab"):
        whoami(api)
    assert api.retried == 0
