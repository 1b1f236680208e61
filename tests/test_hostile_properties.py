"""Property-based tests of every decoder and every path built from message fields, with
hostile input in mind (issue 8). What ``tests/test_envelope.py``, ``tests/test_names.py``
and ``tests/mailbox/test_mailbox_layout.py`` already cover (random bytes, generated
names never escaping the root) is not repeated: these go after the shapes that broke
the decoders before — JSON that parses but is not what the decoder expects (huge
integers, NaN, deep nesting, wrong types), mutated valid objects, names with a trailing
newline, and markers read back from storage.

The contract for every decoder: it returns a valid object or raises
:class:`~syftflwr.errors.MalformedMessageError` / :class:`~syftflwr.errors.UnsafeNameError`
— never anything else, which would escape the runner's rejection path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import socket
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from syftflwr.envelope import MAGIC, Request, Response, decode, encode
from syftflwr.errors import MalformedMessageError, UnsafeNameError
from syftflwr.frame import pack_prefix, read_header
from syftflwr.mailbox.chunking import MANIFEST_MAGIC, Manifest, is_manifest
from syftflwr.mailbox.claims import journal_of, owner_is_dead
from syftflwr.mailbox.layout import (
    OUTBOX_PREFIX,
    ObjectKind,
    Route,
    discover_senders,
    outbox,
    parse_name,
)
from syftflwr.mailbox.profile import NATIVE
from syftflwr.names import (
    is_valid_email,
    validate_email,
    validate_identifier,
    validate_message_id,
)

SENDER, RECIPIENT = "agg@example.org", "ds1@example.org"
SAFE_ERRORS = (MalformedMessageError, UnsafeNameError)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_JSON_TEXT = [
    "9" * 400,  # float() overflows
    "9" * 5000,  # int() refuses (Python's digit limit): ValueError, not JSONDecodeError
    "[" * 5000 + "]" * 5000,  # RecursionError in the JSON parser
    "NaN",
    "-Infinity",
    '"\\ud800"',  # lone surrogate
]


def _frame(magic: bytes, version: int, raw: bytes, body: bytes = b"") -> bytes:
    return pack_prefix(magic, version, len(raw)) + raw + body


def _valid_request(body: bytes = b"payload") -> Request:
    """Fixed fields, so every example encodes to the same shape (hypothesis replays)."""
    return Request(
        id="0123456789abcdef0123456789abcdef",
        sender=SENDER,
        recipient=RECIPIENT,
        app="app",
        endpoint="echo",
        body=body,
        created_at=1_700_000_000.25,
        expires_at=1_700_000_060.5,
    )


def _header(envelope: Request | Response) -> dict[str, Any]:
    frame = read_header(encode(envelope), magic=MAGIC, versions=(1,), max_length=1 << 16,
                        what="envelope", source="test")  # fmt: skip
    assert frame is not None
    return frame.fields


def _decode_safely(data: bytes) -> Request | Response | None:
    try:
        return decode(data, source="inbox/x.request")
    except SAFE_ERRORS:
        return None


# --------------------------------------------------------------------------- envelope
@given(field=st.sampled_from(sorted(_header(_valid_request()))), value=json_values)
@settings(max_examples=300)
def test_envelope_any_json_in_any_header_field(field: str, value: object) -> None:
    """Each field replaced by any JSON value: a valid envelope or a clean rejection."""
    header = _header(_valid_request(b""))
    header[field] = value
    raw = json.dumps(header).encode()  # allow_nan: NaN/Infinity appear on the wire
    envelope = _decode_safely(_frame(MAGIC, 1, raw))
    if envelope is not None:
        envelope.validate()
        assert math.isfinite(envelope.created_at)
        assert envelope.expires_at is None or math.isfinite(envelope.expires_at)


@pytest.mark.parametrize("text", HOSTILE_JSON_TEXT)
@pytest.mark.parametrize("field", ["created_at", "expires_at", "body_size", "id", None])
def test_envelope_hostile_json_numbers_and_nesting(field: str | None, text: str) -> None:
    if field is None:
        raw = text.encode()  # the whole header
    else:
        fields = json.dumps({k: v for k, v in _header(_valid_request(b"")).items() if k != field})
        raw = (fields[:-1] + f',"{field}":{text}}}').encode()
    if len(raw) > 64 * 1024:
        pytest.skip("above the header limit: refused before parsing")
    with pytest.raises(SAFE_ERRORS):
        decode(_frame(MAGIC, 1, raw), source="x")


@given(
    data=st.data(),
    body=st.binary(max_size=64),
    response=st.booleans(),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_valid_envelopes(data: st.DataObject, body: bytes, response: bool) -> None:
    """Flip, drop, insert or truncate bytes of a valid envelope: whatever still decodes
    is a fully validated envelope whose body size matches what is left."""
    request = _valid_request(body)
    reply = dataclasses.replace(request.reply(body), created_at=request.created_at)
    original = encode(reply if response else request)
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]), label="op")
        if not mutated:
            break
        pos = data.draw(st.integers(0, len(mutated) - 1), label="pos")
        if op == "flip":
            mutated[pos] ^= data.draw(st.integers(1, 255), label="mask")
        elif op == "drop":
            del mutated[pos]
        elif op == "insert":
            mutated.insert(pos, data.draw(st.integers(0, 255), label="byte"))
        else:
            del mutated[pos:]
    envelope = _decode_safely(bytes(mutated))
    if envelope is not None:
        envelope.validate()
        assert envelope.body_size == len(mutated) - (len(original) - len(body))


@given(st.binary(max_size=600))
@example(b"")
@example(MAGIC)
@example(_frame(MAGIC, 1, b'{"body_size": 99}'))
@example(_frame(MAGIC, 1, ("[" * 5000 + "]" * 5000).encode()))
def test_incomplete_detection_never_raises(data: bytes) -> None:
    """The runner's "still being written?" check sees the same hostile bytes as decode."""
    assert NATIVE.incomplete(data) in (True, False)
    assert NATIVE.incomplete(MAGIC + data) in (True, False)


@given(st.binary(max_size=600))
@example(_frame(MAGIC, 1, b'{"body_size": 99}'))
@example(_frame(MAGIC, 1, b'{"body_size": -1}'))
@example(_frame(MAGIC, 1, b'{"body_size": true}'))
@example(_frame(MAGIC, 7, b"{}"))
def test_the_head_check_refuses_or_declares_a_size(data: bytes) -> None:
    """What the reader checks before reading a body: refused (MalformedMessageError),
    a declared size that decode agrees with, or None (the header is not all there)."""
    for head in (data, MAGIC + data, _frame(MAGIC, 1, data)):
        try:
            size = NATIVE.check_head(head, source="x")
        except MalformedMessageError:
            continue
        assert size is None or size >= 9
        if size is not None and size == len(head):
            _decode_safely(head)  # raises nothing else either


# --------------------------------------------------------------------------- manifest
manifest_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.just("a" * 32) | st.just("../../etc"),
        "kind": json_values | st.sampled_from([k.value for k in ObjectKind]),
        "size": json_values,
        "part_size": json_values,
        "parts": json_values | st.integers(0, 200_000),
        "sha256": json_values | st.just("0" * 64),
    },
)


@given(fields=manifest_fields | json_values, version=st.integers(0, 255))
@settings(max_examples=300)
def test_manifest_decoder_on_any_json(fields: object, version: int) -> None:
    raw = json.dumps(fields).encode()
    try:
        manifest = Manifest.decode(_frame(MANIFEST_MAGIC, version, raw), source="x.request")
    except MalformedMessageError:
        return
    # accepted: its numbers describe a real split, and every part name it makes is a
    # well-formed sibling of the object (one path component, parsed back to itself)
    assert 1 <= manifest.parts <= 99_999 and manifest.size >= 1
    validate_message_id(manifest.id)
    for index, name in enumerate(manifest.part_names()[:3], start=1):
        parsed = parse_name(name)
        assert parsed is not None and (parsed.id, parsed.part) == (manifest.id, index)
        assert PurePosixPath(name).parts == (name,)


@pytest.mark.parametrize("text", HOSTILE_JSON_TEXT)
def test_manifest_decoder_on_hostile_json_text(text: str) -> None:
    with pytest.raises(MalformedMessageError):
        Manifest.decode(_frame(MANIFEST_MAGIC, 1, text.encode()), source="x.request")


@given(st.binary(max_size=200))
def test_manifest_decoder_on_any_bytes_after_the_magic(tail: bytes) -> None:
    data = MANIFEST_MAGIC + tail
    assert is_manifest(data) == (len(data) >= 9)
    with contextlib.suppress(MalformedMessageError):
        Manifest.decode(data, source="x.request")


# --------------------------------------------------------------------------- names & layout
name_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80
) | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{7,20}\n?(\.(request|response|claim))?\n?")


@given(name_text)
@example("abcdefgh\n")
@example("a@b.org\n")
def test_nothing_ending_in_a_newline_is_a_valid_name(text: str) -> None:
    """``$`` in a regex matches before a trailing newline: names must use fullmatch."""
    for validate in (validate_email, validate_identifier, validate_message_id):
        try:
            value = validate(text)
        except UnsafeNameError:
            continue
        assert value.isprintable() and "\n" not in value and value.strip() == value


@given(name_text)
@example("abcdefgh\n.request")
@example("abcdefgh.request.part-00001-of-00001\n")
@example("abcdefgh.request.part-00002-of-00001")
@example("abcdefgh.request.part-1-of-2")
@example("abcdefgh.request.part-00001-of-00002.part-00001-of-00002")
def test_parse_name_accepts_only_what_it_would_write(name: str) -> None:
    parsed = parse_name(name)
    if parsed is None:
        return
    assert str(parsed) == name  # a canonical name, nothing else
    validate_message_id(parsed.id)
    assert PurePosixPath(name).parts == (name,) and name.isprintable()
    if parsed.is_part:
        assert parsed.part is not None and parsed.parts is not None
        assert 1 <= parsed.part <= parsed.parts


emails = st.emails().filter(is_valid_email)
folder_names = st.one_of(
    name_text,
    st.builds(lambda s: f"{OUTBOX_PREFIX}{s}_to_{RECIPIENT}", name_text),
    st.builds(lambda e: f"{OUTBOX_PREFIX}{e}_to_{RECIPIENT}", emails),
    st.just(f"{OUTBOX_PREFIX}../../x@y.org_to_{RECIPIENT}"),
    st.just(f"{OUTBOX_PREFIX}{RECIPIENT}_to_{RECIPIENT}"),
    st.just(f"{OUTBOX_PREFIX}a@b.org\n_to_{RECIPIENT}"),
)


@given(st.lists(folder_names, max_size=12))
def test_discovered_senders_are_valid_and_their_outbox_exists(names: list[str]) -> None:
    found = discover_senders(names, RECIPIENT)
    assert found == sorted(set(found))
    for sender in found:
        assert validate_email(sender) == sender and sender != RECIPIENT
        assert outbox(sender, RECIPIENT) in names  # rebuilt from validated names


@given(
    sender=emails,
    message_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{7,40}", fullmatch=True),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_every_path_of_a_route_stays_in_its_two_folders(sender: str, message_id: str) -> None:
    route = Route(sender, RECIPIENT, "app", "echo")
    for path, folder in (
        (route.request_path(message_id), route.folder),
        (route.response_path(message_id), route.reverse().folder),
        (route.claim_path(message_id), route.reverse().folder),
    ):
        parent, _, name = path.rpartition("/")
        assert parent == folder and parse_name(name) is not None
        assert ".." not in PurePosixPath(path).parts


# --------------------------------------------------------------------------- claim markers
markers = st.text(max_size=60) | st.builds(
    "|".join,
    st.tuples(
        st.sampled_from([socket.gethostname(), "elsewhere"]),
        st.text(max_size=24) | st.integers(0, 10**25).map(str),
        st.text(max_size=8),
        st.text(max_size=8),
    ),
)


@given(markers)
@example(f"{socket.gethostname()}|\u00b2|x|j")  # a Unicode digit int() refuses
@example(f"{socket.gethostname()}|99999999999999999999|x|j")  # os.kill overflows
@example(f"{socket.gethostname()}|0|x|j")
@example("|||")
def test_claim_markers_read_from_storage_never_crash_the_runner(marker: str) -> None:
    """A claim's content is read back from storage: deciding whether its owner is dead,
    and which journal it names, must not raise on anything."""
    assert owner_is_dead(marker) in (True, False)
    assert isinstance(journal_of(marker), str)
