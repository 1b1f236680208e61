"""The loopback Drive server behaves like Drive where the transport relies on it, as seen
through the REAL google-api-python-client (bundled discovery document)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import drive_server
import pytest
from drive_server import FOLDER, DriveState, drive_service, running_drive
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload

ALICE = "alice@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"


@pytest.fixture
def drive() -> Iterator[tuple[DriveState, dict[str, Any]]]:
    with running_drive() as (state, url):
        services = {who: drive_service(url, state.add_user(who)) for who in (ALICE, BOB, CAROL)}
        yield state, services


def _folder(svc: Any, name: str, parent: str = "root") -> str:
    body = {"name": name, "mimeType": FOLDER, "parents": [parent]}
    return str(svc.files().create(body=body, fields="id").execute()["id"])


def _upload(
    svc: Any,
    name: str,
    parent: str,
    data: bytes,
    *,
    resumable: bool = False,
    chunk: int = 256 * 1024,
) -> dict[str, Any]:
    media = MediaIoBaseUpload(
        io.BytesIO(data), "application/octet-stream", resumable=resumable, chunksize=chunk
    )
    request = svc.files().create(body={"name": name, "parents": [parent]}, media_body=media)
    if not resumable:
        return dict(request.execute())
    response = None
    while response is None:
        _, response = request.next_chunk()
    return dict(response)


def _names(svc: Any, q: str) -> list[str]:
    out, token = [], None
    while True:
        page = svc.files().list(q=q, pageSize=2, pageToken=token).execute()
        out += [f["name"] for f in page["files"]]
        token = page.get("nextPageToken")
        if not token:
            return out


def test_about_reports_the_token_owner(drive: tuple[DriveState, dict[str, Any]]) -> None:
    _, svc = drive
    assert svc[BOB].about().get(fields="user").execute()["user"]["emailAddress"] == BOB


def test_multipart_and_resumable_upload_then_ranged_download(
    drive: tuple[DriveState, dict[str, Any]],
) -> None:
    _, svc = drive
    folder = _folder(svc[ALICE], "box")
    small = bytes(range(256)) * 3
    big = bytes(range(251)) * 8000  # ~2 MB, several resumable chunks
    f1 = _upload(svc[ALICE], "small.bin", folder, small)
    f2 = _upload(svc[ALICE], "big.bin", folder, big, resumable=True)
    assert int(f2["size"]) == len(big)
    assert svc[ALICE].files().get_media(fileId=f1["id"]).execute() == small
    out = io.BytesIO()
    download = MediaIoBaseDownload(
        out, svc[ALICE].files().get_media(fileId=f2["id"]), chunksize=300 * 1024
    )
    done = False
    while not done:
        _, done = download.next_chunk()
    assert out.getvalue() == big


@pytest.mark.parametrize("tail", [b"\r", b"\n", b"\r\n", b"\n\n", b"--", b"\r\n--x"], ids=repr)
def test_multipart_media_is_byte_exact_whatever_it_ends_with(
    drive: tuple[DriveState, dict[str, Any]], tail: bytes
) -> None:
    """Ciphertext ends in anything: a line-based multipart parser dropped a final CR or
    LF (found as a 'truncated body (734 of 735 bytes)' in a CI training run)."""
    _, svc = drive
    folder = _folder(svc[ALICE], "box")
    for data in (b"body" + tail, tail, tail + b"body"):
        uploaded = _upload(svc[ALICE], "x.bin", folder, data)
        assert svc[ALICE].files().get_media(fileId=uploaded["id"]).execute() == data


def test_queries_prefix_contains_and_pagination(drive: tuple[DriveState, dict[str, Any]]) -> None:
    _, svc = drive
    folder = _folder(svc[ALICE], "box")
    for name in ("abc.request", "abd.request", "xabc.request", "abc.response", "it's.txt"):
        _upload(svc[ALICE], name, folder, b"x")
    q = f"'{folder}' in parents and trashed = false"
    assert sorted(_names(svc[ALICE], q)) == sorted(
        ["abc.request", "abd.request", "xabc.request", "abc.response", "it's.txt"]
    )
    # Drive's `contains` on names is prefix-only: 'abc' does not match 'xabc.request'
    assert sorted(_names(svc[ALICE], f"{q} and name contains 'abc'")) == [
        "abc.request",
        "abc.response",
    ]
    assert _names(svc[ALICE], f"{q} and name = 'it\\'s.txt'") == ["it's.txt"]
    assert _names(svc[ALICE], f"mimeType = '{FOLDER}' and trashed = false") == ["box"]
    with pytest.raises(HttpError) as err:
        svc[ALICE].files().list(q="fullText contains 'x'").execute()
    assert err.value.resp.status == 400


def test_sharing_access_and_owner_only_delete(drive: tuple[DriveState, dict[str, Any]]) -> None:
    _, svc = drive
    folder = _folder(svc[ALICE], "outbox")
    f = _upload(svc[ALICE], "m.request", folder, b"hi")
    with pytest.raises(HttpError) as err:  # not shared yet
        svc[BOB].files().get_media(fileId=f["id"]).execute()
    assert err.value.resp.status == 404
    svc[ALICE].permissions().create(
        fileId=folder,
        body={"type": "user", "role": "writer", "emailAddress": BOB},
        sendNotificationEmail=False,
    ).execute()
    assert svc[BOB].files().get_media(fileId=f["id"]).execute() == b"hi"
    assert _names(svc[BOB], "name = 'outbox'") == ["outbox"]
    assert _names(svc[CAROL], "name = 'outbox'") == []
    theirs = _upload(svc[BOB], "bob.txt", folder, b"from bob")  # writers may add files
    with pytest.raises(HttpError) as err:
        svc[BOB].files().delete(fileId=f["id"]).execute()
    assert err.value.resp.status == 403  # only the owner deletes
    svc[ALICE].files().delete(fileId=folder).execute()  # removes what it contains
    with pytest.raises(HttpError):
        svc[BOB].files().get(fileId=theirs["id"]).execute()


def test_changes_feed_covers_own_and_shared_files(
    drive: tuple[DriveState, dict[str, Any]],
) -> None:
    _, svc = drive
    start = {
        who: s.changes().getStartPageToken().execute()["startPageToken"] for who, s in svc.items()
    }
    folder = _folder(svc[ALICE], "outbox")
    svc[ALICE].permissions().create(
        fileId=folder,
        body={"type": "user", "role": "writer", "emailAddress": BOB},
        sendNotificationEmail=False,
    ).execute()
    f = _upload(svc[ALICE], "m.request", folder, b"hi")
    svc[ALICE].files().delete(fileId=f["id"]).execute()

    def feed(who: str) -> list[tuple[str, bool]]:
        token, seen = start[who], []
        while True:
            page = svc[who].changes().list(pageToken=token, pageSize=1).execute()
            seen += [
                (c.get("file", {}).get("name", c["fileId"]), c["removed"]) for c in page["changes"]
            ]
            token = page.get("nextPageToken")
            if token is None:
                assert page["newStartPageToken"]
                return seen

    assert ("m.request", False) in feed(BOB)
    assert (f["id"], True) in feed(BOB)
    assert ("outbox", False) in feed(BOB)
    assert feed(CAROL) == []


@pytest.mark.parametrize(
    ("status", "reason"), [(429, None), (403, "rateLimitExceeded"), (500, None)]
)
def test_injected_faults_reach_the_client(
    drive: tuple[DriveState, dict[str, Any]], status: int, reason: str | None
) -> None:
    state, svc = drive
    state.inject(status, 1, reason)
    with pytest.raises(HttpError) as err:
        svc[ALICE].about().get(fields="user").execute()
    assert err.value.resp.status == status
    details = json.loads(err.value.content)["error"]["errors"][0]
    assert details["reason"] == (reason or {429: "rateLimitExceeded", 500: "backendError"}[status])
    assert svc[ALICE].about().get(fields="user").execute()  # only the next N fail
    assert state.calls_by(ALICE)["about.get"] == 2


def test_batch_answers_each_call_on_its_own(drive: tuple[DriveState, dict[str, Any]]) -> None:
    """googleapiclient's BatchHttpRequest: one HTTP request, one answer (or error) per
    call, each counted as a call of its method."""
    state, svc = drive
    folder = _folder(svc[ALICE], "blob")
    before = state.http_requests[ALICE]
    answers: dict[str, Any] = {}
    batch = svc[ALICE].new_batch_http_request()
    for who in (BOB, CAROL):
        batch.add(
            svc[ALICE]
            .permissions()
            .create(
                fileId=folder,
                body={"type": "user", "role": "reader", "emailAddress": who},
                sendNotificationEmail=False,
            ),
            callback=lambda rid, resp, exc: answers.__setitem__(rid, (resp, exc)),
            request_id=who,
        )
    batch.add(
        svc[ALICE].files().get(fileId="missing"),
        callback=lambda rid, resp, exc: answers.__setitem__(rid, (resp, exc)),
        request_id="missing",
    )
    batch.execute()
    assert state.http_requests[ALICE] - before == 1
    assert state.calls_by(ALICE)["permissions.create"] == 2
    assert state.calls_by(ALICE)["files.get"] == 1
    assert answers[BOB][0]["role"] == "reader" and answers[BOB][1] is None
    assert answers[CAROL][0]["emailAddress"] == CAROL
    assert answers["missing"][0] is None and answers["missing"][1].resp.status == 404
    assert state.notify_requested == []


def test_readers_read_but_do_not_write(drive: tuple[DriveState, dict[str, Any]]) -> None:
    state, svc = drive
    folder = _folder(svc[ALICE], "blob")
    f = _upload(svc[ALICE], "x.blob", folder, b"model")
    svc[ALICE].permissions().create(
        fileId=folder, body={"type": "user", "role": "reader", "emailAddress": BOB}
    ).execute()  # sendNotificationEmail left to Drive's default: an e-mail
    assert state.notify_requested == [(ALICE, folder)]
    assert svc[BOB].files().get_media(fileId=f["id"]).execute() == b"model"
    assert _names(svc[BOB], "sharedWithMe") == ["blob"]
    with pytest.raises(HttpError) as err:
        _upload(svc[BOB], "forged.blob", folder, b"other")
    assert err.value.resp.status == 403
    with pytest.raises(HttpError) as err:
        svc[CAROL].files().get_media(fileId=f["id"]).execute()
    assert err.value.resp.status == 404


def test_resumable_session_tells_its_progress(drive: tuple[DriveState, dict[str, Any]]) -> None:
    """A client resuming after a restart asks ``bytes */N``: 308 with the bytes kept,
    or, once complete, the file (never a second copy)."""
    state, svc = drive
    folder = _folder(svc[ALICE], "box")
    data = bytes(range(256)) * 4096  # 1 MiB: 4 chunks of 256 KiB
    media = MediaIoBaseUpload(
        io.BytesIO(data), "application/octet-stream", resumable=True, chunksize=256 * 1024
    )
    request = svc[ALICE].files().create(body={"name": "big", "parents": [folder]}, media_body=media)
    request.next_chunk()
    request.next_chunk()
    http = svc[ALICE]._http
    ask = {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"}
    resp, _ = http.request(request.resumable_uri, "PUT", headers=ask)
    assert (resp.status, resp["range"]) == (308, f"bytes=0-{512 * 1024 - 1}")
    done = None
    while done is None:
        _, done = request.next_chunk()
    resp, body = http.request(request.resumable_uri, "PUT", headers=ask)
    assert resp.status == 200 and json.loads(body)["id"] == done["id"]
    assert [f.name for f in state.find("big")] == ["big"]
    assert state.media_bytes[ALICE] == len(data)


def test_latency_and_uplink_cap_are_off_by_default_and_slow_requests_when_set() -> None:
    """Benchmarks' slower network: every request waits ``latency``; request bodies of one
    user share ``upload_rate`` (two concurrent uploads take as long as both bytes
    need); every body byte is counted for its user."""
    with running_drive() as (state, url):
        token = state.add_user(ALICE)
        svc = drive_service(url, token)
        assert state.latency == 0 and state.upload_rate is None  # the suite is not slowed
        folder = _folder(svc, "up")
        sent = state.request_bytes[ALICE]
        _upload(svc, "plain", folder, bytes(100_000))
        assert state.request_bytes[ALICE] - sent > 100_000  # media, metadata and framing
        state.latency = 0.3
        started = time.monotonic()
        svc.files().list(q="'root' in parents").execute()
        assert time.monotonic() - started >= 0.3
        state.latency, state.upload_rate = 0.0, 4_000_000
        data = os.urandom(1_000_000)

        def upload(name: str) -> dict[str, Any]:  # a client per thread (httplib2)
            return _upload(drive_service(url, token), name, folder, data)

        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # one user's two uploads share its uplink
            done = list(pool.map(upload, ["a", "b"]))
        assert time.monotonic() - started >= 0.5
        assert [d["size"] for d in done] == [str(len(data))] * 2


def test_a_server_process_of_its_own_reports_its_counters(tmp_path: Path) -> None:
    """``python drive_server.py --users FILE``: serves the users, prints its URL, and
    answers ``GET /_test/stats`` with the counters (a benchmark's Drive, off its GIL)."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps({ALICE: "token-alice"}))
    server = subprocess.Popen([sys.executable, str(Path(drive_server.__file__)),
                               "--users", str(users), "--latency", "0.01"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        svc = drive_service(url, "token-alice")
        _upload(svc, "x", _folder(svc, "f"), b"12345")
        with urllib.request.urlopen(url + "_test/stats", timeout=30) as answer:
            stats = json.load(answer)
    finally:
        server.terminate()
        server.wait(30)
    assert stats["calls"][ALICE] == {"files.create": 2}
    assert stats["media_bytes"][ALICE] == 5 and stats["http_requests"][ALICE] == 2


class _Clock:
    """drive_server's ``time`` for :meth:`DriveState.pace`: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_a_late_reader_costs_a_paced_uplink_nothing_until_its_buffer_is_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cap models a link feeding a socket buffer: a server thread late to read (this
    one-process server's other handlers hold its GIL) does not slow the upload while the
    bytes fit in the buffer. It did: every late read pushed the rest of the body back, so
    an upload beside other requests took ~20% longer than alone, whatever the client did."""
    clock = _Clock()
    monkeypatch.setattr(drive_server, "time", clock)
    state = DriveState()
    state.upload_rate = 1_000_000.0
    piece = 100_000
    with state.receiving(ALICE) as pace:
        pace(piece)
        assert clock.now == pytest.approx(0.1)
        clock.now += 0.5  # the reading thread was kept away for half a second
        for _ in range(4):  # ...while the link delivered these 400 kB into the buffer
            pace(piece)
        assert clock.now == pytest.approx(0.6)  # the old pacing: 1.0 s
        clock.now += 10.0  # longer than the buffer holds: the link stalled meanwhile
        late = clock.now
        pieces = drive_server.LINK_BUFFER // piece + 5
        for _ in range(pieces):
            pace(piece)
        beyond = pieces * piece - drive_server.LINK_BUFFER  # what the full buffer held back
        assert clock.now - late == pytest.approx(beyond / state.upload_rate)
    clock.now += 30.0  # an idle link: a new request gets no credit
    idle = clock.now
    with state.receiving(ALICE) as pace:
        pace(piece)
    assert clock.now - idle == pytest.approx(0.1)


def test_a_small_request_beside_an_upload_costs_it_only_its_own_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message created while an upload's reader is late shares the link for its own
    3 kB. The old pacing restarted the link's clock at the message's arrival: the bytes
    the link had carried into the buffer meanwhile were carried again, 15 ms here (the
    upload ended at 0.1356 s instead of 0.1206 s), and 50 messages beside a model's
    upload cost it up to ~0.2 s."""
    clock = _Clock()
    monkeypatch.setattr(drive_server, "time", clock)
    state = DriveState()
    state.upload_rate = 100e6
    piece, message = 256 * 1024, 3000
    with state.receiving(ALICE) as upload:
        for _ in range(40):
            upload(piece)
        clock.now += 0.015  # the upload's reader is late; the link fills the buffer
        with state.receiving(ALICE) as pace:  # a message arrives meanwhile
            pace(message)
        for _ in range(6):  # the upload's reader drains what the buffer holds
            upload(piece)
    carried = (46 * piece + message) / state.upload_rate
    assert clock.now == pytest.approx(carried, abs=1e-4)
    with state.receiving(ALICE) as one, state.receiving(ALICE) as other:
        at = clock.now
        one(piece)
        other(piece)  # two bodies at once share the link
        assert clock.now - at == pytest.approx(2 * piece / state.upload_rate)
    with state.receiving(BOB) as pace:  # another user has a link of its own
        at = clock.now
        pace(piece)
        assert clock.now - at == pytest.approx(piece / state.upload_rate)
