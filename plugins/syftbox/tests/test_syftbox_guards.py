"""The holes syft-rpc / syft-event leave open, closed on the native profile: hostile
file names never stop serving, replies are only ever written into the responder's own
datasite, and a request planted in someone else's datasite is never served."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sb_helpers import SyftBoxFixtures, outbox_dir
from syftflwr.envelope import Request, Response, decode, encode_parts
from syftflwr.errors import UnsafeNameError
from syftflwr.mailbox.localdir import LocalDirStorage
from syftflwr.testing.conformance._federation import (
    AGGREGATOR,
    APP,
    DS1,
    DS2,
    ENDPOINT,
    Federation,
    Recorder,
)
from syftflwr_syftbox.datasite_storage import LEGACY_PERMISSIONS, PERMISSIONS, DatasiteStorage


def inbox(data_dir: Path, sender: str, recipient: str) -> Path:
    """The folder ``recipient`` serves ``sender``'s requests from (created)."""
    folder = outbox_dir(data_dir, sender, recipient) / APP / "rpc" / ENDPOINT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plant(folder: Path, request: Request) -> Path:
    """Write a well-formed request file by hand (as an attacker with write access would)."""
    prefix, body = encode_parts(request)
    path = folder / f"{request.id}.request"
    path.write_bytes(prefix + bytes(body))
    return path


def files_under(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


def assert_everyone_wrote_only_their_own_datasite(data_dir: Path, planted: set[Path]) -> None:
    """Every file under ``datasites/`` sits in an outbox of the datasite that holds it."""
    datasites = data_dir / "datasites"
    for path in files_under(datasites):
        if path in planted:
            continue
        owner, app_data, app, outbox, *_ = path.relative_to(datasites).parts
        assert (app_data, app) == ("app_data", "syftflwr"), path
        if outbox in (LEGACY_PERMISSIONS, PERMISSIONS):  # the owner's, written on connect
            continue
        assert outbox.startswith(f"syft_outbox_inbox_{owner}_to_"), (
            f"{path} was written into {owner}'s datasite by someone else"
        )


class TestGuards(SyftBoxFixtures):
    """The transport's roles as core's encryption wraps them: hand-written requests
    reach the mailbox's own checks."""

    def test_bad_request_file_names_do_not_stop_serving(
        self, federation: Federation, data_dir: Path, tmp_path: Path
    ) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        assert bytes(federation.roundtrip(DS1, b"before").body) == b"before"
        folder = inbox(data_dir, AGGREGATOR, DS1)
        secret = tmp_path / "secret.txt"
        secret.write_text("do not read")
        for name in ("..request", "x.request", ".hidden.request", "bad name.request",
                     "notes.txt", "syftperm.yaml", "a" * 200 + ".request"):  # fmt: skip
            (folder / name).write_bytes(b"garbage")
        (folder / ("d" * 32 + ".request")).mkdir()
        (folder / ("e" * 32 + ".request")).symlink_to(secret)
        # a name that is not UTF-8 (os.listdir hands it back with surrogate escapes)
        (folder / os.fsdecode(b"\xff\xfe.request")).write_bytes(b"not utf-8")

        assert bytes(federation.roundtrip(DS1, b"after").body) == b"after"
        federation.check_servers()
        assert [bytes(r.body) for r in recorder.requests] == [b"before", b"after"]
        assert secret.read_text() == "do not read"

    def test_replies_stay_in_the_responders_own_datasite(
        self, federation: Federation, data_dir: Path
    ) -> None:
        recorder = Recorder()
        federation.serve(DS1, recorder)
        federation.serve(DS2, recorder)
        for ds in (DS1, DS2):
            federation.roundtrip(ds, b"x" * 1000)
        # a request whose envelope claims another sender than the outbox it sits in
        forged = federation.request(DS1, b"forged", sender=DS2)
        plant(inbox(data_dir, AGGREGATOR, DS1), forged)
        federation.settle_after(DS1)

        assert recorder.count(forged.id) == 0
        error = outbox_dir(data_dir, DS1, AGGREGATOR) / APP / "rpc" / ENDPOINT
        reply = decode((error / f"{forged.id}.response").read_bytes())
        assert isinstance(reply, Response) and reply.status == "error"
        assert "forged sender" in reply.error_text
        assert_everyone_wrote_only_their_own_datasite(data_dir, planted=set())

    def test_an_outbox_planted_in_another_datasite_is_never_served(
        self, federation: Federation, data_dir: Path
    ) -> None:
        """DS2 can write into its own datasite only; a folder there named like the
        aggregator's outbox must not pass for the aggregator's requests."""
        recorder = Recorder()
        federation.serve(DS1, recorder)
        federation.roundtrip(DS1)
        fake_outbox = (
            data_dir / "datasites" / DS2 / "app_data" / "syftflwr"
            / f"syft_outbox_inbox_{AGGREGATOR}_to_{DS1}" / APP / "rpc" / ENDPOINT
        )  # fmt: skip
        fake_outbox.mkdir(parents=True)
        planted = plant(fake_outbox, federation.request(DS1, b"planted"))
        federation.settle_after(DS1)

        assert b"planted" not in [bytes(r.body) for r in recorder.requests]
        assert not any(p.name.endswith(".response") and planted.stem in p.name
                       for p in files_under(data_dir))  # fmt: skip
        assert_everyone_wrote_only_their_own_datasite(data_dir, planted={planted})


class TestDatasiteStorage:
    @pytest.fixture
    def storage(self, tmp_path: Path) -> DatasiteStorage:
        return DatasiteStorage(LocalDirStorage(tmp_path / "SyftBox"), DS1, (AGGREGATOR, DS2))

    def test_own_outbox_maps_into_own_datasite(
        self, storage: DatasiteStorage, tmp_path: Path
    ) -> None:
        path = f"syft_outbox_inbox_{DS1}_to_{AGGREGATOR}/app/rpc/ep/x.response"
        assert storage.put_if_absent(path, [b"ok"])
        on_disk = outbox_dir(tmp_path / "SyftBox", DS1, AGGREGATOR) / "app/rpc/ep/x.response"
        assert on_disk.read_bytes() == b"ok"
        assert storage.list("") == [".syftflwr", f"syft_outbox_inbox_{DS1}_to_{AGGREGATOR}"]

    @pytest.mark.parametrize(
        "path",
        [
            f"syft_outbox_inbox_{AGGREGATOR}_to_{DS1}/app/rpc/ep/x.response",
            f"syft_outbox_inbox_{DS2}_to_{DS1}/x.claim",
            "datasites/evil",
            "../outside",
            f"syft_outbox_inbox_{DS1}_to_{AGGREGATOR}/../../x",
            "syft_outbox_inbox_nobody@nowhere.org_to_x@y.org/x.request",
        ],
    )
    def test_refuses_writes_outside_its_own_datasite(
        self, storage: DatasiteStorage, path: str, tmp_path: Path
    ) -> None:
        with pytest.raises(UnsafeNameError):
            storage.put(path, [b"x"])
        with pytest.raises(UnsafeNameError):
            storage.delete(path)
        assert not any(p.name in ("x.response", "x.claim", "x", "evil", "outside")
                       for p in files_under(tmp_path))  # fmt: skip


class TestTwoRunners(SyftBoxFixtures):
    """Two runners serve one datasite (a restart overlapping the old process, a second
    machine on one data dir): claims in the datasite make each request handled once."""

    def test_each_request_is_handled_by_exactly_one_runner(
        self, federation: Federation, tmp_path: Path
    ) -> None:
        first, second = Recorder(), Recorder()
        federation.serve(DS1, first)
        federation.serve(DS1, second, state_dir=tmp_path / "state" / "second-runner")
        rpc = federation.rpc()
        handles = [rpc.send(federation.request(DS1, b"r%d" % i)) for i in range(30)]
        responses = federation.collect(rpc, handles)
        assert len(responses) == 30
        handled = [r.id for r in first.requests] + [r.id for r in second.requests]
        assert sorted(handled) == sorted(h.id for h in handles)
