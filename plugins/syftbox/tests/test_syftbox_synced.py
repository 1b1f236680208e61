"""A sync client keeps no order between files: a chunked message's manifest may land
before its parts. The runner waits for them (within incomplete_grace) instead of
refusing the message, and serves it once when the last part lands; parts that never
come are refused after the grace. Each participant grants its peers read access to
the outbox addressed to them, nothing more (SyftBox permission files)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from _sb_helpers import SyftBoxFixtures, outbox_dir
from syftflwr.envelope import Buffer, encode_parts
from syftflwr.mailbox import chunking
from syftflwr.mailbox.layout import Route
from syftflwr.mailbox.storage import Storage
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DS1,
    DS2,
    ENDPOINT,
    Federation,
    Recorder,
)

SMALL = 64 * 1024


def _hide_parts(folder: Path, hidden: Path) -> list[str]:
    """Move the parts away, as if the sync client had delivered only the manifest."""
    hidden.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in folder.iterdir() if ".part-" in p.name)
    for name in names:
        (folder / name).replace(hidden / name)
    return names


class TestOutOfOrderSync(SyftBoxFixtures):
    def _send_chunked(
        self, federation: Federation, tmp_path: Path, **extra: object
    ) -> tuple[Any, ...]:
        def options(email: str) -> dict[str, Any]:
            return {**federation.context(email).options, "max_object_size": SMALL, **extra}

        rpc = federation.new_rpc(AGGREGATOR, options=options(AGGREGATOR))
        body = os.urandom(3 * SMALL)
        handle = rpc.send(federation.request(DS1, body))
        folder = outbox_dir(tmp_path / "SyftBox", AGGREGATOR, DS1) / APP / "rpc" / ENDPOINT
        names = _hide_parts(folder, tmp_path / "in-transit")
        assert len(names) >= 3 and (folder / f"{handle.id}.request").is_file()
        return rpc, handle, body, folder, names, options(DS1)

    def test_parts_that_land_after_the_manifest_are_waited_for(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        rpc, handle, body, folder, names, options = self._send_chunked(federation, tmp_path)
        recorder = Recorder()
        federation.serve(DS1, recorder, options=options)
        time.sleep(1.0)  # the runner has seen the manifest alone by now
        assert recorder.count(handle.id) == 0
        for name in names[1:]:  # the sync client delivers the parts, one by one...
            (tmp_path / "in-transit" / name).replace(folder / name)
            time.sleep(0.1)
        first = (tmp_path / "in-transit" / names[0]).read_bytes()
        (folder / names[0]).write_bytes(first[: len(first) // 2])  # ...writing in place
        time.sleep(0.5)
        assert recorder.count(handle.id) == 0
        (folder / names[0]).write_bytes(first)
        responses = federation.collect(rpc, [handle])
        assert handle.id in responses and responses[handle.id].ok
        assert bytes(responses[handle.id].body) == body
        assert recorder.count(handle.id) == 1

    def test_parts_that_never_land_are_refused_after_the_grace(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        rpc, handle, _body, _folder, _names, options = self._send_chunked(
            federation, tmp_path, incomplete_grace=1.0
        )
        recorder = Recorder()
        federation.serve(DS1, recorder, options=options)
        responses = federation.collect(rpc, [handle])
        assert handle.id in responses and not responses[handle.id].ok
        assert recorder.count(handle.id) == 0

    def test_a_chunked_reply_whose_parts_land_late_is_collected(
        self, federation: Federation
    ) -> None:
        """The aggregator's side: the reply's manifest alone does not end the wait; the
        last part's arrival wakes it. (DS1's reply is published by hand, holding the
        parts back as a sync client might.)"""
        rpc = federation.rpc()
        request = federation.request(DS1, b"send me a big reply")
        handle = rpc.send(request)
        reply = os.urandom(3 * SMALL)
        storage = federation.client(DS1).storage
        held = _HoldParts(storage)
        path = Route(AGGREGATOR, DS1, APP, ENDPOINT).response_path(request.id)
        chunking.publish(held, path, encode_parts(request.reply(reply)), max_object_size=SMALL)
        assert len(held.pending) >= 3
        assert rpc.wait([handle], timeout=1.0) == []  # the manifest alone: still waiting
        for part_path, parts in held.pending:
            storage.put(part_path, parts)
        (response,) = federation.collect(rpc, [handle]).values()
        assert response.ok and bytes(response.body) == reply


class _HoldParts:
    """A storage that publishes manifests and keeps parts back (``pending``)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.pending: list[tuple[str, list[Buffer]]] = []

    def put(self, path: str, parts: Sequence[Buffer]) -> None:
        if ".part-" in path:
            self.pending.append((path, [bytes(p) for p in parts]))
        else:
            self.inner.put(path, parts)

    def put_if_absent(self, path: str, parts: Sequence[Buffer]) -> bool:
        if ".part-" in path:
            self.put(path, parts)
            return True
        return self.inner.put_if_absent(path, parts)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class TestPermissions(SyftBoxFixtures):
    def test_each_peer_may_read_only_its_own_outbox(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        federation.client(AGGREGATOR)
        folder = tmp_path / "SyftBox" / "datasites" / AGGREGATOR / "app_data" / "syftflwr"
        legacy = yaml.safe_load((folder / "syftperm.yaml").read_text())
        assert [(r["path"], r["user"], r["permissions"]) for r in legacy] == [
            (f"syft_outbox_inbox_{AGGREGATOR}_to_{peer}/**", peer, ["read"]) for peer in (DS1, DS2)
        ]
        modern = yaml.safe_load((folder / "syft.pub.yaml").read_text())
        assert [(r["pattern"], r["access"]) for r in modern["rules"]] == [
            (f"syft_outbox_inbox_{AGGREGATOR}_to_{peer}/**", {"read": [peer]})
            for peer in (DS1, DS2)
        ]
