"""Chunking: messages above max_object_size travel as parts + a manifest written last,
are reassembled into one buffer and verified; every kind of damage is rejected."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from syftflwr.envelope import Request, decode, encode_parts
from syftflwr.errors import MalformedMessageError, MessageTooLargeError
from syftflwr.mailbox import LocalDirStorage, chunking
from syftflwr.mailbox.chunking import Manifest
from syftflwr.mailbox.layout import ObjectKind, Route
from syftflwr.mailbox.profile import NATIVE

KIB = 1024
ROUTE = Route("agg@example.org", "ds@example.org", "app", "ep")


@pytest.fixture
def storage(tmp_path: Path) -> LocalDirStorage:
    return LocalDirStorage(tmp_path / "root")


def _request(size: int) -> Request:
    return Request.new(
        sender=ROUTE.sender,
        recipient=ROUTE.recipient,
        app="app",
        endpoint="ep",
        body=os.urandom(size),
    )


def _publish(storage: LocalDirStorage, request: Request, limit: int | None) -> str:
    path = ROUTE.request_path(request.id)
    assert chunking.publish(storage, path, encode_parts(request), max_object_size=limit)
    return path


def test_small_messages_are_one_object(storage: LocalDirStorage) -> None:
    request = _request(1000)
    path = _publish(storage, request, 64 * KIB)
    assert storage.list(ROUTE.folder) == [f"{request.id}.request"]
    data = chunking.read(storage, path, max_size=None)
    assert data is not None and decode(data).body == request.body


def test_multi_megabyte_round_trip_in_64k_parts(storage: LocalDirStorage) -> None:
    request = _request(3 * 1024 * KIB + 123)
    path = _publish(storage, request, 64 * KIB)
    names = storage.list(ROUTE.folder)
    parts = sorted(n for n in names if ".part-" in n)
    size = sum(memoryview(p).nbytes for p in encode_parts(request))
    assert len(parts) == -(-size // (64 * KIB)) and f"{request.id}.request" in names
    for part in parts:
        assert (storage.local_path(f"{ROUTE.folder}/{part}").stat().st_size) <= 64 * KIB
    manifest = storage.get(path)
    assert manifest is not None and chunking.is_manifest(manifest)
    data = chunking.read(storage, path, max_size=None)
    assert data is not None
    envelope = decode(data)
    assert envelope.id == request.id and bytes(envelope.body) == bytes(request.body)
    chunking.delete(storage, path, parts=len(parts))
    assert storage.list(ROUTE.folder) == []


def test_delete_by_listing_removes_leftover_parts_only(storage: LocalDirStorage) -> None:
    request, other = _request(200 * KIB), _request(200 * KIB)
    path = _publish(storage, request, 64 * KIB)
    _publish(storage, other, 64 * KIB)
    storage.put(f"{ROUTE.folder}/notes.txt", [b"not mine to delete"])
    chunking.delete(storage, path, parts=None)
    left = storage.list(ROUTE.folder)
    assert not any(n.startswith(request.id) for n in left)
    assert "notes.txt" in left and f"{other.id}.request" in left


def _parts(storage: LocalDirStorage, request: Request) -> list[str]:
    return sorted(n for n in storage.list(ROUTE.folder) if n.startswith(f"{request.id}.request."))


def test_flipped_byte_fails_the_digest(storage: LocalDirStorage) -> None:
    request = _request(300 * KIB)
    path = _publish(storage, request, 64 * KIB)
    part = storage.local_path(f"{ROUTE.folder}/{_parts(storage, request)[2]}")
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(MalformedMessageError, match="SHA-256"):
        chunking.read(storage, path, max_size=None)


def test_missing_part_is_rejected(storage: LocalDirStorage) -> None:
    request = _request(300 * KIB)
    path = _publish(storage, request, 64 * KIB)
    storage.delete(f"{ROUTE.folder}/{_parts(storage, request)[1]}")
    with pytest.raises(MalformedMessageError, match=r"part 2 of \d+ is missing"):
        chunking.read(storage, path, max_size=None)


def test_truncated_or_overlong_part_is_rejected(storage: LocalDirStorage) -> None:
    request = _request(300 * KIB)
    path = _publish(storage, request, 64 * KIB)
    part = storage.local_path(f"{ROUTE.folder}/{_parts(storage, request)[0]}")
    part.write_bytes(part.read_bytes()[:-1])
    with pytest.raises(MalformedMessageError, match="part 1 of"):
        chunking.read(storage, path, max_size=None)
    part.write_bytes(b"x" * (64 * KIB + 1))
    with pytest.raises(MessageTooLargeError):
        chunking.read(storage, path, max_size=None)


def test_manifest_for_another_message_is_rejected(storage: LocalDirStorage) -> None:
    request, other = _request(300 * KIB), _request(300 * KIB)
    _publish(storage, request, 64 * KIB)
    other_path = _publish(storage, other, 64 * KIB)
    # copy request's manifest over other's: it names the wrong message
    storage.put(other_path, [storage.get(ROUTE.request_path(request.id)) or b""])
    with pytest.raises(MalformedMessageError, match="describes"):
        chunking.read(storage, other_path, max_size=None)


@pytest.mark.parametrize(
    "manifest",
    [
        Manifest("0123456789abcdef", ObjectKind.REQUEST, 100, 10, 11, "0" * 64),  # wrong count
        Manifest("0123456789abcdef", ObjectKind.REQUEST, 100, 10, 10, "xyz"),  # bad digest
        Manifest("0123456789abcdef", ObjectKind.REQUEST, 10**9, 1, 10**9, "0" * 64),  # too many
        Manifest("0123456789abcdef", ObjectKind.REQUEST, 0, 10, 0, "0" * 64),  # empty
    ],
)
def test_impossible_manifests_are_rejected(manifest: Manifest) -> None:
    with pytest.raises(MalformedMessageError):
        Manifest.decode(manifest.encode(), source="test")


def test_garbage_manifest_is_rejected(storage: LocalDirStorage) -> None:
    path = ROUTE.request_path("0123456789abcdef")
    storage.put(path, [b"SYFC\x01\x00\x00\x00\x05{bad}"])
    with pytest.raises(MalformedMessageError, match="chunk manifest header is not valid JSON"):
        chunking.read(storage, path, max_size=None)
    storage.put(path, [b"SYFC\x07\x00\x00\x00\x02{}"])
    with pytest.raises(MalformedMessageError, match="version 7"):
        chunking.read(storage, path, max_size=None)


def test_declared_size_above_the_limit_is_refused_before_reading_parts(
    storage: LocalDirStorage,
) -> None:
    request = _request(300 * KIB)
    path = _publish(storage, request, 64 * KIB)
    with pytest.raises(MessageTooLargeError, match="chunked message"):
        chunking.read(storage, path, max_size=100 * KIB)


def test_manifest_digest_is_sha256_of_the_encoded_message(storage: LocalDirStorage) -> None:
    request = _request(150 * KIB)
    path = _publish(storage, request, 64 * KIB)
    manifest = Manifest.decode(storage.get(path) or b"", source=path)
    prefix, body = encode_parts(request)
    assert manifest.sha256 == hashlib.sha256(prefix + bytes(body)).hexdigest()
    assert manifest.size == len(prefix) + len(body)


class _CountingStorage(LocalDirStorage):
    """Records how many bytes whole-object reads returned (``read_head`` is the head)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[tuple[str, int]] = []

    def get(
        self, path: str, *, max_size: int | None = None
    ) -> bytes | bytearray | memoryview | None:
        data = super().get(path, max_size=max_size)
        self.read.append((path, 0 if data is None else memoryview(data).nbytes))
        return data


def _sparse(storage: LocalDirStorage, path: str, head: bytes, size: int) -> None:
    local = storage.local_path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    with local.open("wb") as f:
        f.write(head)
        f.truncate(size)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"", "not a syftflwr envelope"),  # zeros
        (b"SYFL\x07\x00\x00\x00\x02{}", "format version 7"),
        (b"SYFL\x01\xff\xff\xff\xff", "oversized syftflwr envelope header"),
        (b'SYFL\x01\x00\x00\x00\x0f{"body_size":1}', "its header declares 25"),
        (b"SYFC\x01\x00\x00\x00\x02{}", "chunk manifest of 268,435,456 bytes"),
    ],
)
def test_a_refused_object_costs_its_head_not_its_size(
    tmp_path: Path, head: bytes, reason: str
) -> None:
    storage = _CountingStorage(tmp_path / "root")
    path = ROUTE.request_path("0123456789abcdef")
    _sparse(storage, path, head, 256 << 20)
    with pytest.raises(MalformedMessageError, match=reason):
        chunking.read(storage, path, max_size=1 << 30, check=NATIVE.check_head)
    assert storage.read == []  # refused from read_head's first 64 KiB


def test_a_header_declaring_more_than_allowed_is_refused_unread(tmp_path: Path) -> None:
    storage = _CountingStorage(tmp_path / "root")
    path = ROUTE.request_path("0123456789abcdef")
    _sparse(storage, path, b'SYFL\x01\x00\x00\x00\x16{"body_size":99999999}', 1 << 20)
    with pytest.raises(MessageTooLargeError, match="declares 100,000,030 bytes"):
        chunking.read(storage, path, max_size=1 << 20, check=NATIVE.check_head)
    assert storage.read == []


@pytest.mark.parametrize("limit", [None, 64 * KIB])
def test_valid_messages_read_head_first_are_whole(tmp_path: Path, limit: int | None) -> None:
    storage = _CountingStorage(tmp_path / "root")
    for size in (10, 70 * KIB, 300 * KIB):
        request = _request(size)
        path = _publish(storage, request, limit)
        data = chunking.read(storage, path, max_size=1 << 20, check=NATIVE.check_head)
        assert data is not None
        assert bytes(decode(data).body) == bytes(request.body)


def test_a_first_part_at_odds_with_its_manifest_is_refused_before_it_is_read(
    tmp_path: Path,
) -> None:
    storage = _CountingStorage(tmp_path / "root")
    request = _request(300 * KIB)
    path = _publish(storage, request, 100 * KIB)
    first = ROUTE.request_path(request.id) + ".part-00001-of-00004"
    _sparse(storage, first, b"", 100 * KIB)  # zeros where the envelope starts
    with pytest.raises(MalformedMessageError, match="not a syftflwr envelope"):
        chunking.read(storage, path, max_size=1 << 20, check=NATIVE.check_head)
    assert [p for p, _ in storage.read if p.endswith(".part-00001-of-00004")] == []
