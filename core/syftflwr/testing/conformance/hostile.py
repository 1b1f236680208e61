"""Hostile input on a storage-based transport: files planted in a peer's outbox by
someone who can write there (a compromised peer, a misbehaving sync client, another
local user), never through the RPC role's own checks.

Every case asserts what issue 8 promises:

* the input is refused with **one** WARNING line naming the file (its id) and a reason;
* the runner **keeps serving** — a valid request sent afterwards is answered;
* **nothing outside the mailbox** is read or written — every file under the test's
  ``tmp_path`` is snapshotted around the case; only mailbox folders, ``.syftflwr``, the
  storage's own files (``storage_files``: a database) and the participants' state dirs
  may change, and a symlink's target is never handled;
* **nothing is answered twice** and nothing hostile reaches a handler.

The suite needs raw write access to a peer's outboxes:
:meth:`~syftflwr.testing.conformance.base.ConformanceBase.raw_storage` (default: the
``storage`` of the participant's RPC role, i.e. any transport built on
:mod:`syftflwr.mailbox`). A transport without one (``memory``) skips these tests.
Symlinks and FIFOs need a storage with local paths; the others run on every storage.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syftflwr.envelope import MAGIC, Request, Response, encode
from syftflwr.frame import pack_prefix, read_header
from syftflwr.mailbox.chunking import MANIFEST_MAGIC
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.storage import Storage
from syftflwr.names import new_message_id
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DS1,
    DS2,
    ENDPOINT,
    STRANGER,
    Federation,
    Recorder,
)
from syftflwr.testing.conformance.base import ConformanceBase

INBOX = Route(AGGREGATOR, DS1, APP, ENDPOINT)
"""DS1's inbox from the aggregator: where the hostile requests are planted."""
ALLOWED_TO_CHANGE = ("syft_outbox_inbox_", ".syftflwr")
"""Path components under which a case may change files (mailbox folders, temp files)."""
Snapshot = dict[str, tuple[int, int] | None]
BAD_NAMES = (  # request names that must be ignored before any read
    "..request", ".hidden.request", "short.request", "x" * 200 + ".request",
    "abcdefgh12345678\n.request", "abc def 12345678.request",
)  # fmt: skip
PATH_FIELDS = (  # envelope fields shaped like paths
    ("id", "../../../../etc/x"), ("id", "a/b/c/d/e/f"), ("id", "abcdefgh\u0000x"),
    ("id", "i" * 4000), ("sender", "../x@example.org"), ("sender", "a/b@example.org"),
    ("recipient", "ds1@conformance.example/../x"), ("app", ".."), ("endpoint", "a/b"),
    ("app", "a" * 300),
)  # fmt: skip


def _frame(header: dict[str, Any], body: bytes = b"", version: int = 1) -> bytes:
    raw = json.dumps(header).encode()
    return pack_prefix(MAGIC, version, len(raw)) + raw + body


def _header_of(request: Request) -> dict[str, Any]:
    frame = read_header(encode(request), magic=MAGIC, versions=(1,), max_length=1 << 16,
                        what="envelope", source="test")  # fmt: skip
    assert frame is not None
    return frame.fields


class Hostile:
    """One case's attacker: plants objects, then checks the runner's reaction."""

    def __init__(
        self,
        suite: HostileInputConformance,
        federation: Federation,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.suite = suite
        self.federation = federation
        self.tmp_path = tmp_path
        self.caplog = caplog
        self.recorder = Recorder()
        self.outside = tmp_path / "outside-the-mailbox"
        self.outside.mkdir(exist_ok=True)
        self.secret_request = federation.request(DS1, b"read outside the mailbox")
        self.secret = self.outside / "secret.request"
        self.secret.write_bytes(encode(self.secret_request))
        self._storages: dict[str, Storage] = {}
        self._before: Snapshot = {}

    # -- setting up --------------------------------------------------------------------------
    def storage(self, email: str = AGGREGATOR) -> Storage:
        if email not in self._storages:
            storage = self.suite.raw_storage(self.federation, email)
            if storage is None:
                pytest.skip(
                    f"{self.federation.transport.name} gives no raw storage access "
                    "(ConformanceBase.raw_storage): it has no files to plant hostile input in"
                )
            self._storages[email] = storage
        return self._storages[email]

    def serve(self, **overrides: Any) -> None:
        """DS1 serves; the aggregator's RPC role exists; then the tree is snapshotted."""
        for email in (AGGREGATOR, DS1, DS2, STRANGER):  # skips early without storage;
            self.storage(email)  # before the snapshot, as opening one may write credentials
        self.federation.serve(DS1, self.recorder, **overrides)
        self.federation.rpc()
        self.caplog.set_level(logging.WARNING, logger="syftflwr")
        self._before = self.snapshot()

    def plant(self, name: str, data: bytes, route: Route = INBOX) -> str:
        """Write ``data`` raw as ``name`` in ``route``'s folder (as its sender)."""
        self.storage(route.sender).put(f"{route.folder}/{name}", [data])
        return name

    def local_path(self, route: Route = INBOX, name: str = "probe.request") -> Path:
        """Local path of ``name`` in ``route``'s folder (the folder is created)."""
        storage = self.storage(route.sender)
        path = storage.local_path(f"{route.folder}/{name}")
        if path is None:
            pytest.skip("the storage has no local paths (symlinks and FIFOs need files)")
        storage.makedirs(route.folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- checking ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Every file under ``tmp_path``: (size, mtime) — None for folders/special files."""
        found: Snapshot = {}
        for dirpath, dirnames, filenames in os.walk(self.tmp_path):
            for name in (*dirnames, *filenames):
                path = Path(dirpath, name)
                try:
                    st = path.lstat()
                except FileNotFoundError:  # gone since the listing (a temp file renamed)
                    continue
                regular = stat.S_ISREG(st.st_mode)
                found[str(path)] = (st.st_size, st.st_mtime_ns) if regular else None
        return found

    def _allowed(self, path: str) -> bool:
        relative = Path(path).relative_to(self.tmp_path)
        if relative.parts and relative.parts[0] == "state":  # participants' state dirs
            return True
        if any(fnmatch.fnmatchcase(relative.as_posix(), p) for p in self.suite.storage_files):
            return True  # the storage's own files (a database and its journals)
        return any(p.startswith(ALLOWED_TO_CHANGE) for p in relative.parts)

    def warnings_about(self, text: str) -> list[str]:
        return [
            r.getMessage()
            for r in list(self.caplog.records)
            if r.levelno == logging.WARNING
            and r.name.startswith("syftflwr")
            and text in r.getMessage()
        ]

    def wait_warning(self, text: str) -> list[str]:
        deadline = time.monotonic() + self.federation.timeout
        while not self.warnings_about(text) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.warnings_about(text)

    def refused(self, key: str, *reasons: str) -> None:
        """``key`` (an id or a file name) got exactly one warning, with one of
        ``reasons`` (or a refusal the transport gives every raw object)."""
        self.wait_warning(key)
        self.federation.settle_after(DS1)
        lines = self.warnings_about(key)
        assert len(lines) == 1, f"expected one warning naming {key}, got {len(lines)}: {lines}"
        words = (*reasons, *self.suite.raw_refusal_words)
        assert any(w in lines[0] for w in words), (
            f"the warning for {key} gives no recognisable reason (expected one of {words}): "
            f"{lines[0]}"
        )

    def check(self, *ids: str) -> None:
        """Still serving, nothing hostile handled or answered twice, nothing outside
        the mailbox touched."""
        response = self.federation.roundtrip(DS1, b"still serving")
        assert response.ok and bytes(response.body) == b"still serving"
        handled = self.recorder.ids
        assert handled[self.secret_request.id] == 0, "a file outside the mailbox was handled"
        for message_id in ids:
            assert handled[message_id] == 0, f"hostile request {message_id} reached a handler"
        replies = self.storage(DS1).list(INBOX.reverse().folder)
        for message_id in ids:
            count = sum(1 for n in replies if n == f"{message_id}.response")
            assert count <= 1, f"{message_id} was answered {count} times"
        after = self.snapshot()
        changed = sorted(
            p
            for p in set(self._before) | set(after)
            if self._before.get(p, "absent") != after.get(p, "absent") and not self._allowed(p)
        )
        assert not changed, f"files outside the mailbox changed: {changed[:10]}"
        assert self.secret.read_bytes() == encode(self.secret_request)


class HostileInputConformance(ConformanceBase):
    """Hostile files in a storage-based transport's mailbox (see the module docstring)."""

    @pytest.fixture
    def hostile(
        self, federation: Federation, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> Iterator[Hostile]:
        yield Hostile(self, federation, tmp_path, caplog)

    # -- damaged files -------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "case", ["garbage", "empty", "truncated", "wrong-magic", "wrong-version", "not-json"]
    )
    def test_damaged_request_files_are_refused(self, hostile: Hostile, case: str) -> None:
        hostile.serve()
        good = encode(hostile.federation.request(DS1, b"x" * 300))
        data, reasons = {
            "garbage": (os.urandom(700), ("not a syftflwr envelope", "truncated")),
            "empty": (b"", ("truncated",)),
            "truncated": (good[:-40], ("truncated",)),
            "wrong-magic": (b"SYFX" + good[4:], ("not a syftflwr envelope",)),
            "wrong-version": (good[:4] + b"\x07" + good[5:], ("version 7", "upgrade")),
            "not-json": (good[:9] + b"\xff" * 10 + good[19:], ("not valid JSON",)),
        }[case]
        message_id = new_message_id()
        hostile.plant(f"{message_id}.request", data)
        hostile.refused(message_id, *reasons)
        hostile.check(message_id)

    def test_a_response_planted_as_a_request_is_refused(self, hostile: Hostile) -> None:
        hostile.serve()
        response = hostile.federation.request(DS1).reply(b"not a request")
        hostile.plant(f"{response.id}.request", encode(response))
        hostile.refused(response.id, "not a request")
        hostile.check(response.id)

    # -- size ----------------------------------------------------------------------------------
    def test_oversized_request_is_refused_without_reading_it(self, hostile: Hostile) -> None:
        """Above ``max_message_size``: refused from its size. On local paths the file is
        a sparse 3 GiB — reading it whole would exhaust memory and time."""
        hostile.serve(max_message_size=1024)
        message_id = new_message_id()
        name = f"{message_id}.request"
        storage = hostile.storage()
        path = storage.local_path(f"{INBOX.folder}/{name}")
        if path is not None:
            storage.makedirs(INBOX.folder)
            with path.open("wb") as f:
                f.write(encode(hostile.federation.request(DS1, b"big"))[:9])
                f.truncate(3 << 30)
        else:
            hostile.plant(name, b"\0" * (256 * 1024))
        hostile.refused(message_id, "max_message_size", "too large", "allowed")
        hostile.check(message_id)

    def test_a_manifest_declaring_a_huge_message_is_refused_before_its_parts(
        self, hostile: Hostile
    ) -> None:
        hostile.serve(max_message_size=1024)
        message_id = new_message_id()
        fields = {"id": message_id, "kind": "request", "size": 10 << 30,
                  "part_size": 1 << 20, "parts": 10240, "sha256": "0" * 64}  # fmt: skip
        raw = json.dumps(fields).encode()
        hostile.plant(f"{message_id}.request", pack_prefix(MANIFEST_MAGIC, 1, len(raw)) + raw)
        hostile.refused(message_id, "max_message_size", "exceeds", "allowed")
        hostile.check(message_id)

    # -- senders ---------------------------------------------------------------------------------
    def test_a_forged_sender_in_the_aggregators_outbox_is_refused(self, hostile: Hostile) -> None:
        hostile.serve()
        forged = hostile.federation.request(DS1, b"I am ds2", sender=DS2)
        hostile.plant(f"{forged.id}.request", encode(forged))  # in the aggregator's folder
        hostile.refused(forged.id, "forged sender")
        hostile.check(forged.id)

    def test_a_request_addressed_to_someone_else_is_refused(self, hostile: Hostile) -> None:
        hostile.serve()
        other = hostile.federation.request(DS2, b"for ds2")
        hostile.plant(f"{other.id}.request", encode(other))  # in DS1's inbox
        hostile.refused(other.id, "addressed to")
        hostile.check(other.id)

    @pytest.mark.parametrize("sender", [STRANGER, DS2])
    def test_an_outbox_of_a_sender_that_may_not_send_is_never_served(
        self, hostile: Hostile, sender: str
    ) -> None:
        """The datasite serves only its aggregator: a request in the outbox of a
        non-participant (or of another datasite) is never read, claimed or answered."""
        hostile.serve()
        route = Route(sender, DS1, APP, ENDPOINT)
        request = hostile.federation.request(DS1, b"let me in", sender=sender)
        hostile.plant(f"{request.id}.request", encode(request), route=route)
        hostile.federation.settle_after(DS1)
        hostile.check(request.id)
        reverse = hostile.storage(DS1).list(route.reverse().folder)
        assert not [n for n in reverse if n.startswith(request.id)], (
            f"{DS1} claimed or answered a request from {sender}, who may not send to it"
        )

    # -- names -----------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "name",
        BAD_NAMES,
        ids=["dots", "hidden", "short", "very-long", "newline", "spaces"],
    )
    def test_request_files_with_invalid_ids_are_ignored_before_reading(
        self, hostile: Hostile, name: str
    ) -> None:
        hostile.serve()
        hostile.plant(name, encode(hostile.secret_request))
        hostile.refused(repr(name), "not a valid request name")
        hostile.check(hostile.secret_request.id)

    @pytest.mark.parametrize(
        "field,value",
        PATH_FIELDS,
        ids=lambda v: v if len(v) < 20 else v[:8] + "...",
    )
    def test_path_shaped_envelope_fields_are_refused(
        self, hostile: Hostile, field: str, value: str
    ) -> None:
        hostile.serve()
        request = hostile.federation.request(DS1, b"escape")
        header = _header_of(request)
        header[field] = value
        hostile.plant(f"{request.id}.request", _frame(header, b"escape"))
        hostile.refused(request.id, "invalid", "forged", "addressed to", "named")
        hostile.check(request.id)

    # -- special files ---------------------------------------------------------------------------
    def test_a_symlink_pointing_outside_is_never_followed(self, hostile: Hostile) -> None:
        hostile.serve()
        message_id = hostile.secret_request.id
        hostile.local_path(name=f"{message_id}.request").symlink_to(hostile.secret)
        hostile.refused(message_id, "symbolic link")
        hostile.check(message_id)

    def test_a_fifo_is_refused_without_blocking(self, hostile: Hostile) -> None:
        hostile.serve()
        message_id = new_message_id()
        os.mkfifo(hostile.local_path(name=f"{message_id}.request"))
        hostile.refused(message_id, "not a regular file", "FIFO", "fifo", "special")
        hostile.check(message_id)

    # -- the aggregator's side -------------------------------------------------------------------
    def test_a_reply_to_a_request_never_sent_is_ignored(self, hostile: Hostile) -> None:
        """Unsolicited replies (valid or garbage) in a watched response folder: the
        aggregator never reads them, never returns them, and keeps working."""
        hostile.serve()
        federation = hostile.federation
        federation.roundtrip(DS1, b"warm up")  # DS1's response folder is now watched
        stray = dataclasses.replace(
            federation.request(DS1, b"never sent").reply(b"unsolicited"), id=new_message_id()
        )
        hostile.plant(f"{stray.id}.response", encode(stray), route=INBOX.reverse())
        junk = new_message_id()
        hostile.plant(f"{junk}.response", os.urandom(100), route=INBOX.reverse())
        hostile.check(stray.id, junk)  # a round trip through the same folder
        assert not hostile.warnings_about(stray.id) and not hostile.warnings_about(junk)

    def test_a_reply_from_a_datasite_the_request_did_not_go_to_is_ignored(
        self, hostile: Hostile
    ) -> None:
        """DS1 answers (in its own outbox) a request the aggregator sent to DS2: the
        aggregator only ever reads DS2's outbox for it."""
        hostile.serve()
        rpc = hostile.federation.rpc()
        handle = rpc.send(hostile.federation.request(DS2, b"for ds2"))  # nobody serves ds2
        from_ds1 = Response(id=handle.id, sender=DS1, recipient=AGGREGATOR, app=APP,
                            endpoint=ENDPOINT, body=b"I answer for ds2")  # fmt: skip
        hostile.plant(f"{handle.id}.response", encode(from_ds1), route=INBOX.reverse())
        assert rpc.wait([handle], timeout=hostile.federation.settle * 3) == []
        assert rpc.fetch(handle) is None
        hostile.check(handle.id)

    def test_a_reply_whose_envelope_names_another_sender_is_ignored(self, hostile: Hostile) -> None:
        """DS2 writes, in its OWN outbox, a reply to the aggregator's request to DS2
        whose envelope claims to come from DS1: ignored with one warning (not one per
        poll), never returned."""
        hostile.serve()
        rpc = hostile.federation.rpc()
        handle = rpc.send(hostile.federation.request(DS2, b"for ds2"))  # nobody serves ds2
        forged = Response(id=handle.id, sender=DS1, recipient=AGGREGATOR, app=APP,
                          endpoint=ENDPOINT, body=b"forged")  # fmt: skip
        ds2_outbox = Route(AGGREGATOR, DS2, APP, ENDPOINT).reverse()
        hostile.plant(f"{handle.id}.response", encode(forged), route=ds2_outbox)
        assert rpc.wait([handle], timeout=hostile.federation.settle * 3) == []
        assert rpc.wait([handle], timeout=hostile.federation.settle * 3) == []
        lines = hostile.warnings_about(handle.id)
        assert len(lines) == 1, f"expected one warning about the forged reply, got {lines}"
        words = ("claims to be from", *hostile.suite.raw_refusal_words)
        assert any(w in lines[0] for w in words), lines[0]
        hostile.check(handle.id)
