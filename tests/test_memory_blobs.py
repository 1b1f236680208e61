"""Shared blobs over the built-in ``memory`` transport: one stored copy per push, read
by exactly its recipients, checked against the ref, sealed once when encryption is on
(connected the way ``syftflwr run`` connects, so the roles are core's sealed ones)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import pytest
from syftflwr.errors import (
    EncryptionError,
    MalformedMessageError,
    MessageRejectedError,
    MessageTooLargeError,
)
from syftflwr.info import TransportContext
from syftflwr.roles import ReadsBlobs, SharesBlobs, offers
from syftflwr.session import Participant, connect
from syftflwr.transports import memory

AGG, DS1, DS2, DS3 = (f"{n}@example.org" for n in ("agg", "ds1", "ds2", "ds3"))
APP = "blobs"
MODEL = b"model-weights-" * 1000


def ctx(email: str, namespace: str, **kw: object) -> TransportContext:
    return TransportContext(
        transport="memory",
        app_name=APP,
        email=email,
        aggregator=AGG,
        datasites=(DS1, DS2, DS3),
        options={"namespace": namespace},
        **kw,  # type: ignore[arg-type]
    )


class Plain:
    """Unsealed memory roles (encryption off), made by the hooks directly."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.roles: list[memory.MemoryRPC | memory.MemoryEvents] = []

    def rpc(self, email: str = AGG, **kw: object) -> memory.MemoryRPC:
        c = ctx(email, self.namespace, **kw)
        role = memory.syftflwr_make_rpc(memory.syftflwr_make_client(c), c)
        self.roles.append(role)
        return role

    def events(self, email: str, **kw: object) -> memory.MemoryEvents:
        c = ctx(email, self.namespace, **kw)
        role = memory.syftflwr_make_events(memory.syftflwr_make_client(c), c)
        self.roles.append(role)
        return role

    def stored(self) -> dict[tuple[str, str, str], memory.StoredBlob]:
        return memory.broker(self.namespace).blobs


@pytest.fixture
def plain(memory_namespace: str) -> Iterator[Plain]:
    fed = Plain(memory_namespace)
    yield fed
    for role in fed.roles:
        role.close()


def test_memory_declares_and_offers_shared_blobs(plain: Plain) -> None:
    assert memory.syftflwr_transport_info().capabilities.shares_objects
    assert offers(plain.rpc(), SharesBlobs)
    assert offers(plain.events(DS1), ReadsBlobs)


def test_one_copy_for_every_recipient_each_reads_it(plain: Plain) -> None:
    rpc = plain.rpc()
    half = len(MODEL) // 2
    ref = rpc.put_blob(
        [MODEL[:half], memoryview(MODEL[half:])], app=APP, recipients=[DS1, DS2], expires_at=None
    )
    assert (ref.size, ref.sha256) == (len(MODEL), hashlib.sha256(MODEL).hexdigest())
    assert ref.key is None and ref.digest is None
    assert ref.sha256 not in ref.name and len(plain.stored()) == 1  # random name, one copy
    for email in (DS1, DS2):
        assert plain.events(email).get_blob(ref, sender=AGG, app=APP) == MODEL
    other = rpc.put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    assert other.name != ref.name and other.sha256 == ref.sha256  # a new blob, a new name


def test_a_participant_outside_the_push_cannot_read_it(plain: Plain) -> None:
    ref = plain.rpc().put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    with pytest.raises(MessageRejectedError, match=f"not shared with {DS3}"):
        plain.events(DS3).get_blob(ref, sender=AGG, app=APP)


def test_stored_bytes_changed_or_swapped_are_refused(plain: Plain) -> None:
    rpc = plain.rpc()
    ref = rpc.put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    earlier = rpc.put_blob([MODEL[::-1]], app=APP, recipients=[DS1], expires_at=None)
    reader = plain.events(DS1)
    key = (AGG, APP, ref.name)
    flipped = bytearray(MODEL)
    flipped[100] ^= 1
    plain.stored()[key] = replace(plain.stored()[key], data=bytes(flipped))
    with pytest.raises(MalformedMessageError, match="SHA-256 differs"):
        reader.get_blob(ref, sender=AGG, app=APP)
    # another blob's content put back under this blob's name (same size): refused
    plain.stored()[key] = plain.stored()[(AGG, APP, earlier.name)]
    with pytest.raises(MalformedMessageError, match="SHA-256 differs"):
        reader.get_blob(ref, sender=AGG, app=APP)
    plain.stored()[key] = replace(plain.stored()[key], data=MODEL[:-1])
    with pytest.raises(MalformedMessageError, match="message says"):
        reader.get_blob(ref, sender=AGG, app=APP)


def test_dropped_blob_is_gone_and_drop_is_idempotent(plain: Plain) -> None:
    rpc = plain.rpc()
    ref = rpc.put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    rpc.drop_blob(ref, app=APP)
    rpc.drop_blob(ref, app=APP)
    assert plain.stored() == {}
    with pytest.raises(MalformedMessageError, match="is gone: it expired, or its sender dropped"):
        plain.events(DS1).get_blob(ref, sender=AGG, app=APP)


def test_a_blob_is_only_found_under_its_sender_and_app(plain: Plain) -> None:
    ref = plain.rpc().put_blob([MODEL], app=APP, recipients=[DS1, DS2], expires_at=None)
    reader = plain.events(DS1)
    for sender, app in ((DS2, APP), (AGG, "other")):
        with pytest.raises(MalformedMessageError, match="is gone"):
            reader.get_blob(ref, sender=sender, app=app)


def test_a_sealed_ref_is_refused_by_a_plain_reader(plain: Plain) -> None:
    ref = plain.rpc().put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    sealed = replace(ref, key=b"k" * 32, digest="0" * 64)
    with pytest.raises(EncryptionError, match="sealed, but encryption is off here"):
        plain.events(DS1).get_blob(sealed, sender=AGG, app=APP)


def test_blobs_above_max_message_size_are_refused_both_ways(plain: Plain) -> None:
    with pytest.raises(MessageTooLargeError, match="blob is 14,000 bytes"):
        plain.rpc(max_message_size=1000).put_blob(
            [MODEL], app=APP, recipients=[DS1], expires_at=None
        )
    assert plain.stored() == {}
    ref = plain.rpc().put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    with pytest.raises(MessageTooLargeError, match="above max_message_size"):
        plain.events(DS1, max_message_size=1000).get_blob(ref, sender=AGG, app=APP)


def test_a_path_shaped_name_is_refused(plain: Plain) -> None:
    ref = plain.rpc().put_blob([MODEL], app=APP, recipients=[DS1], expires_at=None)
    with pytest.raises(ValueError, match="invalid"):
        plain.events(DS1).get_blob(replace(ref, name="../x"), sender=AGG, app=APP)


def test_many_threads_put_read_and_drop_concurrently(plain: Plain) -> None:
    rpc = plain.rpc()
    readers = [plain.events(e) for e in (DS1, DS2, DS3)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(25):
                data = f"{i}-{j}".encode() * 500
                ref = rpc.put_blob([data], app=APP, recipients=[DS1, DS2, DS3], expires_at=None)
                for reader in readers:
                    assert reader.get_blob(ref, sender=AGG, app=APP) == data
                rpc.drop_blob(ref, app=APP)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and plain.stored() == {}


# --------------------------------------------------------------------------- sealed
PROJECT = f"""[project]
name = "blobs"

[tool.syftflwr]
app_name = "{APP}"
aggregator = "{AGG}"
datasites = ["{DS1}", "{DS2}", "{DS3}"]
transport = "memory"
"""


@pytest.fixture
def sealed(tmp_path: Path, memory_namespace: str) -> Iterator[dict[str, Participant]]:
    project = tmp_path / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(PROJECT)
    opened: dict[str, Participant] = {}
    for email in (AGG, DS1, DS2):
        env = {
            "SYFTFLWR_STATE_DIR": str(tmp_path / "state" / email),
            "SYFTFLWR_MEMORY_NAMESPACE": memory_namespace,
            "SYFTFLWR_HOME": str(tmp_path / "home"),
        }
        opened[email] = connect(project, email=email, env=env, allow_in_process=True)
    yield opened
    for participant in opened.values():
        participant.close()


def test_sealed_roles_store_ciphertext_once_and_open_it(
    sealed: dict[str, Participant], memory_namespace: str
) -> None:
    assert sealed[AGG].encryption == "core"
    rpc = cast(SharesBlobs, sealed[AGG].rpc())
    ref = rpc.put_blob([MODEL], app=APP, recipients=[DS1, DS2], expires_at=None)
    assert ref.key is not None and ref.digest == hashlib.sha256(MODEL).hexdigest()
    (stored,) = memory.broker(memory_namespace).blobs.values()
    assert MODEL[:64] not in stored.data and ref.sha256 == hashlib.sha256(stored.data).hexdigest()
    for email in (DS1, DS2):
        reader = cast(ReadsBlobs, sealed[email].events())
        assert reader.get_blob(ref, sender=AGG, app=APP) == MODEL
    # the plain ref (no key) a tampering co-recipient might hand out: refused sealed-side
    with pytest.raises(EncryptionError, match="not sealed, but encryption is on"):
        cast(ReadsBlobs, sealed[DS1].events()).get_blob(
            replace(ref, key=None, digest=None), sender=AGG, app=APP
        )
