"""A request still in the inbox after a crash is answered again from the journal, or
handled again only if it never finished — never applied twice. Real mailbox roles over a
real local directory; a "crash" is a runner that stops without cleaning up, or a journal
and claim left exactly as a killed runner leaves them."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from _mailbox_helpers import AGG, APP, DS1, Mailbox, wait_for
from syftflwr.envelope import Request, Response, decode, encode_parts
from syftflwr.mailbox import Journal
from syftflwr.mailbox.claims import RECOVERED_STATUS
from syftflwr.mailbox.journal import InboundState
from syftflwr.mailbox.layout import Route

INBOX = Route(AGG, DS1, APP, "echo")


def _counting(calls: Counter[str]) -> Callable[[Request], bytes]:
    def handler(request: Request) -> bytes:
        calls[request.id] += 1
        return b"answer:" + bytes(request.body)

    return handler


def _reply(box: Mailbox, message_id: str) -> Response | None:
    data = box.storage.get(INBOX.response_path(message_id))
    if data is None:
        return None
    envelope = decode(data)
    assert isinstance(envelope, Response)
    return envelope


def _dead_owner() -> str:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return f"{socket.gethostname()}|{int(dead.stdout)}|deadbeef"


def _answered_then_reply_lost(box: Mailbox, state: Path, calls: Counter[str]) -> Request:
    """Serve one request, stop the runner, and lose its reply (a sync client dropped it,
    a disk was restored...) while the request stays in the inbox."""
    first = box.serve(DS1, _counting(calls), state_dir=state)
    rpc = box.rpc()
    request = box.request(DS1, b"x")
    handle = rpc.send(request)
    assert rpc.wait([handle], timeout=20)
    first.close()
    box.storage.delete(INBOX.response_path(request.id))
    return request


def test_a_lost_reply_is_published_again_from_the_journal(mailbox: Mailbox, tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    state = tmp_path / "ds1-state"
    request = _answered_then_reply_lost(mailbox, state, calls)
    second = mailbox.serve(DS1, _counting(calls), state_dir=state)
    assert wait_for(lambda: _reply(mailbox, request.id) is not None)
    reply = _reply(mailbox, request.id)
    assert reply is not None and reply.ok and bytes(reply.body) == b"answer:x"
    assert calls == {request.id: 1}  # never handled again
    assert wait_for(lambda: second.stats["republished"] >= 1)  # counted after publishing
    assert second.stats["republished"] == 1


def test_a_lost_reply_too_large_to_keep_is_recomputed_once(
    mailbox: Mailbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("syftflwr.mailbox.replies.KEEP_REPLY_LIMIT", 8)  # every reply is "large"
    calls: Counter[str] = Counter()
    state = tmp_path / "ds1-state"
    request = _answered_then_reply_lost(mailbox, state, calls)
    journal = Journal(state / "mailbox" / "journal.sqlite")
    assert journal.stored_reply(request.id) is None
    second = mailbox.serve(DS1, _counting(calls), state_dir=state)
    assert wait_for(lambda: _reply(mailbox, request.id) is not None)
    assert wait_for(lambda: second.stats["answered"] == 1)
    assert calls == {request.id: 2}  # the first answer never reached anyone
    assert second.stats["reprocessed"] == 1
    entry = journal.state_of(request.id)
    assert entry is not None and entry.state is InboundState.ANSWERED
    journal.close()


def test_a_present_reply_is_not_published_again(mailbox: Mailbox, tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    state = tmp_path / "ds1-state"
    first = mailbox.serve(DS1, _counting(calls), state_dir=state)
    rpc = mailbox.rpc()
    handle = rpc.send(mailbox.request(DS1, b"x"))
    assert rpc.wait([handle], timeout=20)
    first.close()
    second = mailbox.serve(DS1, _counting(calls), state_dir=state)
    assert wait_for(lambda: second.stats["skipped"] == 1)
    assert second.stats["republished"] == 0 and calls == {handle.id: 1}


def test_reply_published_just_before_the_crash_is_not_handled_again(
    mailbox: Mailbox, tmp_path: Path
) -> None:
    """Killed after publishing its reply but before journaling it: the journal says
    claimed by a dead runner, the reply exists. The new runner marks it answered."""
    state = tmp_path / "ds1-state"
    owner = _dead_owner()
    request = mailbox.request(DS1, b"once")
    journal = Journal(state / "mailbox" / "journal.sqlite")
    journal.claimed(request.id, sender=AGG, app=APP, endpoint="echo", owner=owner)
    mailbox.storage.put(INBOX.claim_path(request.id), [owner.encode()])
    reply = Response(id=request.id, sender=DS1, recipient=AGG, app=APP, endpoint="echo",
                     body=b"first")  # fmt: skip
    mailbox.storage.put(INBOX.response_path(request.id), list(encode_parts(reply)))
    mailbox.storage.put(INBOX.request_path(request.id), list(encode_parts(request)))
    calls: Counter[str] = Counter()
    events = mailbox.serve(DS1, _counting(calls), state_dir=state)
    assert wait_for(lambda: events.stats["recovered"] == 1)
    assert calls == {}
    entry = journal.state_of(request.id)
    assert entry is not None and entry.state is InboundState.ANSWERED
    assert entry.status == RECOVERED_STATUS
    assert bytes(_reply(mailbox, request.id).body) == b"first"  # type: ignore[union-attr]
    journal.close()


def test_a_lost_error_reply_is_published_again(mailbox: Mailbox, tmp_path: Path) -> None:
    state = tmp_path / "ds1-state"
    request = mailbox.request(DS1)
    journal = Journal(state / "mailbox" / "journal.sqlite")
    journal.rejected(request.id, "too old", sender=AGG, app=APP, endpoint="echo", replied=True)
    journal.close()
    mailbox.storage.put(INBOX.request_path(request.id), list(encode_parts(request)))
    calls: Counter[str] = Counter()
    events = mailbox.serve(DS1, _counting(calls), state_dir=state)
    assert wait_for(lambda: _reply(mailbox, request.id) is not None)
    reply = _reply(mailbox, request.id)
    assert reply is not None and not reply.ok and reply.error_text == "rejected: too old"
    assert calls == {}
    assert wait_for(lambda: events.stats["republished"] >= 1)  # counted after publishing
    assert events.stats["republished"] == 1


def test_journal_v1_files_are_upgraded_in_place(tmp_path: Path) -> None:
    """A journal written before replies were kept opens, keeps its entries, and gains
    the column (a real version-1 file, built with the version-1 schema)."""
    import sqlite3

    from syftflwr.mailbox.journal import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute(
        "INSERT INTO inbound (id, sender, app, endpoint, state, owner, claimed_at, "
        "updated_at) VALUES ('abcdef0123', ?, ?, 'echo', 'answered', 'o', 0, 0)",
        (AGG, APP),
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    journal = Journal(path)
    assert SCHEMA_VERSION >= 2
    assert journal.state_of("abcdef0123").state is InboundState.ANSWERED  # type: ignore[union-attr]
    assert journal.stored_reply("abcdef0123") is None
    journal.close()
