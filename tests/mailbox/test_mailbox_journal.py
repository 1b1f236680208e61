"""The journal: state transitions, persistence across a real process restart, sharing
between processes, schema versioning."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from syftflwr.errors import StorageError
from syftflwr.info import TransportContext
from syftflwr.mailbox import Journal
from syftflwr.mailbox.journal import InboundState, OutboundState

ID1, ID2, ID3 = "a" * 32, "b" * 32, "c" * 32
KW = {"sender": "agg@example.org", "app": "app", "endpoint": "ep"}


def test_inbound_lifecycle() -> None:
    journal = Journal(None)
    assert journal.state_of(ID1) is None
    assert journal.claimed(ID1, owner="r1", expires_at=123.0, **KW) is True
    entry = journal.state_of(ID1)
    assert entry is not None and entry.state is InboundState.CLAIMED and entry.owner == "r1"
    assert not entry.finished and journal.unfinished() == [entry]
    journal.answered(ID1, status="ok")
    entry = journal.state_of(ID1)
    assert entry is not None and entry.state is InboundState.ANSWERED and entry.finished
    assert journal.is_finished(ID1)
    # a finished request cannot be claimed again
    assert journal.claimed(ID1, owner="r2", **KW) is False
    assert journal.state_of(ID1).owner == "r1"  # type: ignore[union-attr]
    journal.rejected(ID2, "garbage", replied=True, **KW)
    entry = journal.state_of(ID2)
    assert entry is not None and entry.state is InboundState.REJECTED
    assert entry.detail == "garbage" and entry.status == "error"
    journal.claimed(ID3, owner="r1", **KW)
    journal.gone(ID3)
    assert journal.state_of(ID3).state is InboundState.GONE  # type: ignore[union-attr]
    assert journal.unfinished() == []


def test_take_over_moves_a_claim_once() -> None:
    journal = Journal(None)
    journal.claimed(ID1, owner="dead", **KW)
    assert journal.take_over(ID1, old_owner="dead", new_owner="a") is True
    assert journal.take_over(ID1, old_owner="dead", new_owner="b") is False
    assert journal.state_of(ID1).owner == "a"  # type: ignore[union-attr]


def test_outbound_lifecycle_and_routes() -> None:
    journal = Journal(None)
    kw = {"recipient": "ds@example.org", "app": "app", "endpoint": "ep", "expires_at": None}
    journal.sending(ID2, **kw)  # type: ignore[arg-type]
    assert journal.sent_state(ID2).state is OutboundState.SENT  # type: ignore[union-attr]
    journal.sending(ID1, parts=3, **kw)  # type: ignore[arg-type]  # chunked: parts first
    assert journal.sent_state(ID1).state is OutboundState.SENDING  # type: ignore[union-attr]
    journal.sent(ID1)
    assert journal.sent_state(ID1).state is OutboundState.SENT  # type: ignore[union-attr]
    assert journal.outbound_routes() == [("ds@example.org", "app", "ep")]
    journal.forgotten(ID1)
    assert journal.sent_state(ID1).state is OutboundState.FORGOTTEN  # type: ignore[union-attr]
    assert journal.sent_state(ID1).parts == 3  # type: ignore[union-attr]


def test_prune_drops_only_finished_cleaned_entries() -> None:
    journal = Journal(None)
    journal.claimed(ID1, owner="r", **KW)
    journal.answered(ID1)
    journal.cleaned(ID1)
    journal.claimed(ID2, owner="r", **KW)
    journal.answered(ID2)  # answered but its reply still exists: keep
    journal.sending(ID3, recipient="ds@example.org", app="a", endpoint="e", expires_at=None)
    journal.forgotten(ID3)
    assert journal.prune(older_than=float("inf")) == 2
    assert journal.state_of(ID1) is None and journal.state_of(ID2) is not None
    assert journal.sent_state(ID3) is None


def test_for_context_lives_in_the_state_dir(tmp_path: Path) -> None:
    ctx = TransportContext(transport="t", app_name="app", state_dir=tmp_path)
    journal = Journal.for_context(ctx)
    assert journal.path == tmp_path / "mailbox" / "journal.sqlite"
    assert Journal.for_context(TransportContext(transport="t", app_name="app")).path is None


_WRITER = textwrap.dedent(
    """
    import sys
    from syftflwr.mailbox import Journal
    j = Journal(sys.argv[1])
    kw = dict(sender="agg@example.org", app="app", endpoint="ep")
    j.claimed("a" * 32, owner="first-run", **kw)
    j.answered("a" * 32, status="ok")
    j.claimed("b" * 32, owner="first-run", **kw)   # killed before answering
    j.sending("c" * 32, recipient="ds@example.org", app="app", endpoint="ep", expires_at=9.0)
    import os; os._exit(0)   # no close(): like a crash after the commits
    """
)


def test_survives_a_process_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    subprocess.run([sys.executable, "-c", _WRITER, str(path)], check=True, timeout=60)
    journal = Journal(path)
    answered = journal.state_of(ID1)
    assert answered is not None and answered.state is InboundState.ANSWERED
    assert [e.id for e in journal.unfinished()] == [ID2]
    assert journal.sent_state(ID3).expires_at == 9.0  # type: ignore[union-attr]
    assert journal.claimed(ID1, owner="second-run", **KW) is False


def test_two_handles_on_one_file_see_each_other(tmp_path: Path) -> None:
    a, b = Journal(tmp_path / "j.sqlite"), Journal(tmp_path / "j.sqlite")
    a.claimed(ID1, owner="a", **KW)
    assert b.state_of(ID1).owner == "a"  # type: ignore[union-attr]
    a.answered(ID1)
    assert b.is_finished(ID1)
    assert b.claimed(ID1, owner="b", **KW) is False
    mode = sqlite3.connect(tmp_path / "j.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StorageError, match="upgrade syftflwr"):
        Journal(path)


def test_unwritable_location_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="state directory is writable"):
        Journal(blocker / "journal.sqlite")
