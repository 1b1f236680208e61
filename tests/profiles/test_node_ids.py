"""Node ids follow the wire profile: upstream syft-flwr 0.5 addresses datasites by
``crc32(email)``, so a syftflwr grid and runner in that profile must too."""

from __future__ import annotations

import zlib

from syftflwr.flower.node_ids import node_id_for as native_id
from syftflwr.flower.node_ids import node_ids_for

EMAILS = ("ds1@openmined.org", "ds2@openmined.org")


def test_the_syftflwr05_profile_uses_upstreams_crc32_ids() -> None:
    assert node_ids_for(EMAILS, "syft-flwr-0.5") == {e: zlib.crc32(e.encode()) for e in EMAILS}


def test_the_native_profile_keeps_its_64_bit_ids() -> None:
    assert node_ids_for(EMAILS) == {e: native_id(e) for e in EMAILS}
    assert node_ids_for(EMAILS) != node_ids_for(EMAILS, "syft-flwr-0.5")
