"""Publishing and reading one message, chunked when it exceeds a transport's
``max_object_size`` — the same code path for requests and responses.

A message no larger than ``max_object_size`` is one object. A larger one is written as
parts FIRST::

    {id}.request.part-00001-of-00042 ... {id}.request.part-00042-of-00042

and then a small manifest LAST at ``{id}.request`` itself, so readers (which only react
to ``{id}.request``) never see an incomplete message. The manifest is a
:mod:`syftflwr.frame` without a body::

    b"SYFC" | u8 version | u32 json_len (big endian) | JSON
    {"id", "kind", "size", "part_size", "parts", "sha256"}

The reader builds part names itself from the manifest's count (never from names in
storage), reassembles into one preallocated buffer, and checks every part's size and
the SHA-256 of the whole before anyone decodes it: a missing, short, extra-long or
corrupted part rejects the message with :class:`~syftflwr.errors.MalformedMessageError`.

Reads check a message's first bytes before the rest (:func:`read_object`, given a
profile's ``check_head``) on storages that can read a head: garbage costs its header.

Chunking is invisible above this module: it wraps the encoded envelope, so a chunked
message decodes exactly like an unchunked one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import cast

from syftflwr._deprecation import mark_private as _mark_private
from syftflwr.envelope import HEAD_SIZE, Buffer
from syftflwr.errors import MalformedMessageError, MessageTooLargeError, StorageError
from syftflwr.frame import PREFIX_SIZE, encode_frame, read_header
from syftflwr.mailbox.layout import MAX_PARTS, ObjectKind, parse_name, part_name
from syftflwr.mailbox.storage import PutsNew, Storage, check_max_size, total_size, views
from syftflwr.names import is_valid_message_id
from syftflwr.roles import offers

MANIFEST_MAGIC = b"SYFC"
MANIFEST_VERSION = 1
MAX_MANIFEST_SIZE = 64 * 1024

HeadCheck = Callable[..., "int | None"]
"""``check(head, *, source=...)``: a wire profile's ``check_head``."""
HeadReader = Callable[[str, int], "tuple[Buffer, int] | None"]
"""A storage's optional ``read_head`` (see :mod:`syftflwr.mailbox.storage`)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a reader needs to reassemble and verify a chunked message."""

    id: str
    kind: ObjectKind
    size: int
    part_size: int
    parts: int
    sha256: str

    def encode(self) -> bytes:
        return encode_frame(MANIFEST_MAGIC, MANIFEST_VERSION, asdict(self))

    @classmethod
    def decode(cls, data: Buffer, *, source: str) -> Manifest:
        view = memoryview(data).cast("B")
        frame = read_header(
            view,
            magic=MANIFEST_MAGIC,
            versions=(MANIFEST_VERSION,),
            max_length=MAX_MANIFEST_SIZE - PREFIX_SIZE,
            what="chunk manifest",
            source=source,
        )
        if frame is None or frame.end != view.nbytes:
            raise MalformedMessageError(f"{source}: truncated chunk manifest")
        values = frame.fields
        try:
            numbers = {n: _int(values[n]) for n in ("size", "part_size", "parts")}
            kind = ObjectKind(values["kind"])
            manifest = cls(id=str(values["id"]), kind=kind, sha256=str(values["sha256"]), **numbers)
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedMessageError(f"{source}: invalid chunk manifest ({exc})") from None
        manifest.check(source)
        return manifest

    def check(self, source: str) -> None:
        """Refuse a manifest whose numbers do not describe a real split."""
        if not (1 <= self.parts <= MAX_PARTS and self.part_size >= 1 and self.size >= 1):
            raise MalformedMessageError(f"{source}: chunk manifest has impossible sizes")
        if -(-self.size // self.part_size) != self.parts:
            raise MalformedMessageError(
                f"{source}: {self.size} bytes in parts of {self.part_size} cannot make "
                f"{self.parts} parts"
            )
        if not is_valid_message_id(self.id):
            raise MalformedMessageError(f"{source}: chunk manifest has an invalid id")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise MalformedMessageError(f"{source}: chunk manifest digest is not a SHA-256")

    def part_names(self) -> list[str]:
        base = f"{self.id}.{self.kind.value}"
        return [part_name(base, i, self.parts) for i in range(1, self.parts + 1)]

    def part_length(self, index: int) -> int:
        """Expected byte length of part ``index`` (1-based)."""
        if index < self.parts:
            return self.part_size
        return self.size - self.part_size * (self.parts - 1)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def is_manifest(data: Buffer) -> bool:
    view = memoryview(data).cast("B")
    return view.nbytes >= PREFIX_SIZE and bytes(view[:4]) == MANIFEST_MAGIC


def _split(path: str) -> tuple[str, str]:
    folder, _, name = path.rpartition("/")
    return folder, name


def _slices(bufs: Sequence[memoryview], size: int) -> Iterator[list[memoryview]]:
    """Consecutive runs of ``size`` bytes across ``bufs``, as views (no copies)."""
    current: list[memoryview] = []
    room = size
    for buf in bufs:
        view = buf
        while view.nbytes:
            take = min(room, view.nbytes)
            current.append(view[:take])
            view = view[take:]
            room -= take
            if room == 0:
                yield current
                current, room = [], size
    if current:
        yield current


# --------------------------------------------------------------------------- publish
def publish(
    storage: Storage,
    path: str,
    parts: Sequence[Buffer],
    *,
    max_object_size: int | None,
    exclusive: bool = True,
    new: bool = False,
) -> bool:
    """Write the message ``parts`` (e.g. :func:`~syftflwr.envelope.encode_parts`) at
    ``path`` — one object, or parts then a manifest when larger than ``max_object_size``.

    With ``exclusive`` the message is published only if ``path`` does not exist yet
    (returns False otherwise); ``new``: the caller vouches nothing was ever written there
    (:class:`~syftflwr.mailbox.storage.PutsNew`, used when the storage offers it).
    Chunked publishing relies on the mailbox's single-writer rule for ids (fresh ids for
    requests, a claim for responses): parts are plain puts.
    """
    size = total_size(parts)
    if max_object_size is None or size <= max_object_size:
        return _publish_one(storage, path, parts, exclusive=exclusive, new=new)
    folder, name = _split(path)
    parsed = parse_name(name)
    if parsed is None or parsed.is_part:
        raise ValueError(f"{path} is not a mailbox message path")
    bufs = views(parts)
    digest = hashlib.sha256()
    for buf in bufs:
        digest.update(buf)
    part_size = max(1, min(max_object_size, size))
    manifest = Manifest(
        id=parsed.id,
        kind=parsed.kind,
        size=size,
        part_size=part_size,
        parts=-(-size // part_size),
        sha256=digest.hexdigest(),
    )
    if manifest.parts > MAX_PARTS:
        raise MessageTooLargeError(
            f"{path}: {size:,} bytes would need {manifest.parts:,} parts of "
            f"{part_size:,} bytes (at most {MAX_PARTS:,}); raise the transport's max_object_size"
        )
    prefix = f"{folder}/" if folder else ""
    for part, chunk in zip(manifest.part_names(), _slices(bufs, part_size), strict=True):
        storage.put(prefix + part, chunk)
    return _publish_one(storage, path, [manifest.encode()], exclusive=exclusive, new=new)


def _publish_one(
    storage: Storage, path: str, parts: Sequence[Buffer], *, exclusive: bool, new: bool
) -> bool:
    if exclusive and new and offers(storage, PutsNew):
        cast(PutsNew, storage).put_new(path, parts)
        return True
    if exclusive:
        return storage.put_if_absent(path, parts)
    storage.put(path, parts)
    return True


# --------------------------------------------------------------------------- read
def read_object(
    storage: Storage, path: str, *, max_size: int | None, check: HeadCheck | None = None
) -> Buffer | None:
    """One stored object (a whole message, a manifest or a part), or None if there is
    none; with ``check``, its first bytes are checked before the rest is read.

    On a storage with ``read_head`` (see :mod:`syftflwr.mailbox.storage`), an object
    ``check`` refuses costs at most :data:`~syftflwr.envelope.HEAD_SIZE` bytes, and one
    that is longer than its header declares is refused unread. Elsewhere the whole
    object is read and the decoder refuses it.
    """
    read_head = cast("HeadReader | None", getattr(storage, "read_head", None))
    if check is None or read_head is None:
        return storage.get(path, max_size=max_size)
    found = read_head(path, HEAD_SIZE)
    if found is None:
        return None
    head, size = found
    check_max_size(path, size, max_size)
    if is_manifest(head):  # decoded by the caller
        if size > MAX_MANIFEST_SIZE:
            raise MalformedMessageError(
                f"{path} is a chunk manifest of {size:,} bytes (at most "
                f"{MAX_MANIFEST_SIZE:,}); not read"
            )
        declared: int | None = size
    else:
        declared = check(head, source=path)
    if declared is not None and max_size is not None and declared > max_size:
        raise MessageTooLargeError(
            f"{path} declares {declared:,} bytes, above the {max_size:,} bytes allowed "
            "here; raise [tool.syftflwr] max_message_size if such messages are expected"
        )
    if declared is not None and size > declared:
        raise MalformedMessageError(
            f"{path} is {size:,} bytes, but its header declares {declared:,}; not read"
        )
    if memoryview(head).nbytes >= size:
        return head
    if declared is None:
        return storage.get(path, max_size=max_size)
    try:
        return storage.get(path, max_size=declared)
    except MessageTooLargeError:  # it grew since its head was read: not what it says
        raise MalformedMessageError(
            f"{path} grew beyond the {declared:,} bytes its header declares; not read"
        ) from None


def read(
    storage: Storage, path: str, *, max_size: int | None, check: HeadCheck | None = None
) -> Buffer | None:
    """The complete message stored at ``path`` (reassembled if chunked), or None if
    there is none. Raises :class:`MalformedMessageError` on a damaged chunked message
    and :class:`MessageTooLargeError` when it exceeds ``max_size``. ``check``: see
    :func:`read_object` (for a chunked message it checks the first part's head)."""
    limit = None if max_size is None else max(max_size, MAX_MANIFEST_SIZE)
    data = read_object(storage, path, max_size=limit, check=check)
    if data is None or not is_manifest(data):
        return data
    folder, name = _split(path)
    manifest = Manifest.decode(data, source=path)
    parsed = parse_name(name)
    if parsed is None or (parsed.id, parsed.kind) != (manifest.id, manifest.kind):
        raise MalformedMessageError(
            f"{path}: chunk manifest describes {manifest.id}.{manifest.kind.value}, not this object"
        )
    if max_size is not None and manifest.size > max_size:
        raise MessageTooLargeError(
            f"{path}: chunked message of {manifest.size:,} bytes exceeds the "
            f"{max_size:,} bytes allowed; raise [tool.syftflwr] max_message_size if expected"
        )
    buffer = bytearray(manifest.size)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    pos = 0
    prefix = f"{folder}/" if folder else ""
    for index, part in enumerate(manifest.part_names(), start=1):
        expected = manifest.part_length(index)
        if index == 1:
            chunk = _first_part(storage, prefix + part, expected, manifest, check, path)
        else:
            chunk = storage.get(prefix + part, max_size=expected)
        if chunk is None:
            raise MalformedMessageError(f"{path}: part {index} of {manifest.parts} is missing")
        got = memoryview(chunk).nbytes
        if got != expected:
            raise MalformedMessageError(
                f"{path}: part {index} of {manifest.parts} has {got} bytes, expected {expected}"
            )
        view[pos : pos + got] = memoryview(chunk).cast("B")
        digest.update(view[pos : pos + got])
        pos += got
    if digest.hexdigest() != manifest.sha256:
        raise MalformedMessageError(f"{path}: reassembled message fails its SHA-256 check")
    return buffer


def _first_part(
    storage: Storage,
    part: str,
    expected: int,
    manifest: Manifest,
    check: HeadCheck | None,
    path: str,
) -> Buffer | None:
    """Part 1, whose head is the message's: checked (against the manifest's size too)
    before the part is read."""
    if check is None or getattr(storage, "read_head", None) is None:
        return storage.get(part, max_size=expected)

    def whole_message(head: Buffer, *, source: str) -> int | None:
        declared = check(head, source=source)
        if declared is not None and declared != manifest.size:
            raise MalformedMessageError(
                f"{path}: the message's header declares {declared:,} bytes, its chunk "
                f"manifest {manifest.size:,}"
            )
        return None  # the part holds only the first part_size bytes of it

    return read_object(storage, part, max_size=expected, check=whole_message)


# --------------------------------------------------------------------------- delete
def delete(storage: Storage, path: str, *, parts: int | None = 0) -> None:
    """Delete the message at ``path``: the object (or manifest) first, so readers stop
    reacting to it, then its parts.

    ``parts``: the known part count (0 = unchunked, nothing else to delete), or None
    to find leftover parts by listing the folder (a message of unknown shape).
    """
    folder, name = _split(path)
    storage.delete(path)
    prefix = f"{folder}/" if folder else ""
    if parts is None:
        try:
            names = storage.list(folder)
        except StorageError:
            return
        for other in names:
            parsed = parse_name(other)
            if parsed is not None and parsed.is_part and other.startswith(name + "."):
                storage.delete(prefix + other)
        return
    if parts:
        base = name
        for index in range(1, parts + 1):
            storage.delete(prefix + part_name(base, index, parts))


def part_count(size: int, max_object_size: int | None) -> int:
    """How many parts a message of ``size`` bytes is published as (0 = unchunked)."""
    if max_object_size is None or size <= max_object_size:
        return 0
    return -(-size // max_object_size)


_mark_private(__name__)  # plugins importing plugin-API names from here get a warning
