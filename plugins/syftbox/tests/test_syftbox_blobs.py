"""A blob stored once for several datasites on SyftBox: its folder in the sender's
datasite holds permission files naming exactly the recipients (read) and the sender
(write), written before the blob; each recipient reads it through the mailbox; the
syft-flwr-0.5 profile (one syft-rpc file per recipient) declares no sharing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import yaml
from _sb_helpers import SyftBoxFixtures
from syftflwr.plugin import BLOB_PREFIX, SYFTFLWR05_PROFILE, ReadsBlobs, SharesBlobs
from syftflwr.testing.conformance._federation import AGGREGATOR, APP, DS1, DS2, Federation
from syftflwr_syftbox.options import Settings

MODEL = os.urandom(200_000)
OUTSIDER = "carol@hospital-c.org"


class TestBlobPermissions(SyftBoxFixtures):
    def test_the_blob_folder_names_exactly_its_recipients(
        self, federation: Federation, data_dir: Path
    ) -> None:
        rpc = cast(SharesBlobs, federation.rpc())
        ref = rpc.put_blob([MODEL], app=APP, recipients=[DS2, DS1], expires_at=None)
        app_data = data_dir / "datasites" / AGGREGATOR / "app_data" / "syftflwr"
        [folder] = (app_data / f"{BLOB_PREFIX}{AGGREGATOR}").glob(f"*/{ref.name}")
        modern = yaml.safe_load((folder / "syft.pub.yaml").read_text())
        assert modern == {
            "rules": [{"pattern": "**", "access": {"read": [DS1, DS2], "write": [AGGREGATOR]}}]
        }
        legacy = yaml.safe_load((folder / "syftperm.yaml").read_text())
        assert [(r["path"], r["user"], r["permissions"]) for r in legacy] == [
            ("**", DS1, ["read"]),
            ("**", DS2, ["read"]),
            ("**", AGGREGATOR, ["read", "create", "write"]),
        ]
        blob = folder / f"{ref.name}.blob"
        assert (folder / "syft.pub.yaml").stat().st_mtime_ns <= blob.stat().st_mtime_ns
        for email in (DS1, DS2):
            reader = cast(ReadsBlobs, federation.events(email))
            assert reader.get_blob(ref, sender=AGGREGATOR, app=APP) == MODEL
        rpc.drop_blob(ref, app=APP)
        assert not [p for p in folder.rglob("*") if p.is_file()]

    def test_another_blob_names_only_its_own_recipients(
        self, federation: Federation, data_dir: Path
    ) -> None:
        rpc = cast(SharesBlobs, federation.rpc())
        one = rpc.put_blob([b"a"], app=APP, recipients=[DS1], expires_at=None)
        two = rpc.put_blob([b"b"], app=APP, recipients=[DS2, OUTSIDER], expires_at=None)
        app_data = data_dir / "datasites" / AGGREGATOR / "app_data" / "syftflwr"
        for ref, readers in ((one, [DS1]), (two, sorted([DS2, OUTSIDER]))):
            [folder] = (app_data / f"{BLOB_PREFIX}{AGGREGATOR}").glob(f"*/{ref.name}")
            rules = yaml.safe_load((folder / "syft.pub.yaml").read_text())["rules"]
            assert rules[0]["access"]["read"] == readers


def test_only_the_native_profile_shares_objects() -> None:
    assert Settings.from_options({}).capabilities().shares_objects
    assert not Settings.from_options({}, profile=SYFTFLWR05_PROFILE).capabilities().shares_objects
