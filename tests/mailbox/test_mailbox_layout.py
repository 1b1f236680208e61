"""The mailbox layout: syft-flwr's paths, name parsing, path safety (property-based)."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.errors import StorageError, UnsafeNameError
from syftflwr.mailbox import LocalDirStorage
from syftflwr.mailbox.layout import (
    BLOB_PREFIX,
    LAYOUT_FILE,
    OUTBOX_PREFIX,
    ObjectKind,
    Route,
    blob_folder,
    blob_path,
    discover_senders,
    ensure_layout,
    inbox_routes,
    parse_name,
    part_name,
)
from syftflwr.mailbox.storage import split_path

ID = "0123456789abcdef0123456789abcdef"


def test_paths_follow_syft_flwr_layout() -> None:
    route = Route("agg@example.org", "ds@example.org", "app", "messages")
    assert route.request_path(ID) == (
        f"syft_outbox_inbox_agg@example.org_to_ds@example.org/app/rpc/messages/{ID}.request"
    )
    # the response and the claim live in the responder's own outbox toward the requester
    assert route.response_path(ID) == (
        f"syft_outbox_inbox_ds@example.org_to_agg@example.org/app/rpc/messages/{ID}.response"
    )
    assert route.claim_path(ID).endswith(f"_to_agg@example.org/app/rpc/messages/{ID}.claim")
    assert route.reverse().reverse() == route


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"{ID}.request", (ID, ObjectKind.REQUEST, None, None)),
        (f"{ID}.response", (ID, ObjectKind.RESPONSE, None, None)),
        (f"{ID}.claim", (ID, ObjectKind.CLAIM, None, None)),
        (f"{ID}.request.part-00002-of-00042", (ID, ObjectKind.REQUEST, 2, 42)),
    ],
)
def test_parse_name_accepts_mailbox_objects(name: str, expected: tuple[object, ...]) -> None:
    parsed = parse_name(name)
    assert parsed is not None
    assert (parsed.id, parsed.kind, parsed.part, parsed.parts) == expected
    assert str(parsed) == name


@pytest.mark.parametrize(
    "name",
    [
        "..request",
        "../../etc/passwd.request",
        f"{ID}.tmp",
        f".{ID}.request",
        "short.request",
        f"{ID}.request.part-00043-of-00042",
        f"{ID}.request.part-0002-of-00042",
        f"{ID}.request.part-00000-of-00042",
        f"{ID} .request",
        "syftperm.yaml",
        f"{ID}.request\x00",
        "",
    ],
)
def test_parse_name_ignores_everything_else(name: str) -> None:
    assert parse_name(name) is None


def test_part_names_are_bounded() -> None:
    assert part_name(f"{ID}.request", 1, 3) == f"{ID}.request.part-00001-of-00003"
    with pytest.raises(ValueError):
        part_name("x", 0, 3)
    with pytest.raises(ValueError):
        part_name("x", 1, 100_000)


@pytest.mark.parametrize(
    "fields",
    [
        ("../x@example.org", "ds@example.org", "app", "ep"),
        ("agg@example.org", "ds@example.org", "..", "ep"),
        ("agg@example.org", "ds@example.org", "app", "a/b"),
        ("agg@example.org", "ds/../x@example.org", "app", "ep"),
    ],
)
def test_routes_refuse_path_shaped_names(fields: tuple[str, str, str, str]) -> None:
    with pytest.raises(UnsafeNameError):
        Route(*fields)


def test_routes_refuse_path_shaped_ids() -> None:
    route = Route("agg@example.org", "ds@example.org", "app", "ep")
    for bad in ("../../../etc", "a/b/c/d/e/f", "x" * 200, ""):
        with pytest.raises(UnsafeNameError):
            route.request_path(bad)


text = st.text(min_size=0, max_size=40)


@settings(max_examples=400, deadline=None)
@given(sender=text, recipient=text, app=text, endpoint=text, message_id=text)
def test_no_generated_name_escapes_the_root(
    sender: str, recipient: str, app: str, endpoint: str, message_id: str
) -> None:
    """Whatever a message claims, a path is either refused or stays below the root,
    five components deep, with every component free of separators."""
    try:
        path = Route(sender, recipient, app, endpoint).request_path(message_id)
    except UnsafeNameError:
        return
    parts = split_path(path)
    assert len(parts) == 5
    assert not posixpath.isabs(path)
    assert posixpath.normpath(path) == path
    assert all(p not in ("", ".", "..") and "\\" not in p and "\x00" not in p for p in parts)


@settings(max_examples=400, deadline=None)
@given(sender=text, app=st.one_of(text, st.just("flwr/app")), blob_id=text)
def test_no_blob_path_escapes_its_senders_blob_folder(sender: str, app: str, blob_id: str) -> None:
    """A blob's path from any sender, app and id a message may name: refused, or below
    ``syftflwr_blobs_{sender}/`` (never an outbox), every component free of separators."""
    try:
        path = blob_path(sender, app, blob_id)
    except UnsafeNameError:
        return
    parts = split_path(path)
    assert parts[0] == f"{BLOB_PREFIX}{sender}" and not parts[0].startswith(OUTBOX_PREFIX)
    assert len(parts) == 3 + app.count("/") + 1
    assert posixpath.normpath(path) == path and path.startswith(blob_folder(sender, app, blob_id))
    assert parts[-1] == f"{blob_id}.blob" and parse_name(parts[-1]) is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_split_path_never_yields_an_escaping_component(path: str) -> None:
    try:
        parts = split_path(path)
    except UnsafeNameError:
        return
    assert all(p not in ("", ".", "..") and "/" not in p for p in parts)


def test_inbox_routes_and_sender_discovery() -> None:
    me = "ds@example.org"
    routes = inbox_routes(me, ["agg@example.org", me], "app", ["b", "a"])
    assert [(r.sender, r.endpoint) for r in routes] == [
        ("agg@example.org", "a"),
        ("agg@example.org", "b"),
        (me, "a"),  # my own outbox to myself is an inbox too (doctor's loopback)
        (me, "b"),
    ]
    names = [
        f"syft_outbox_inbox_agg@example.org_to_{me}",
        f"syft_outbox_inbox_x_to_y@example.org_to_{me}",  # '_to_' inside an email
        f"syft_outbox_inbox_../evil_to_{me}",
        f"syft_outbox_inbox_{me}_to_agg@example.org",
        ".syftflwr",
    ]
    assert discover_senders(names, me) == ["agg@example.org", "x_to_y@example.org"]


def test_layout_version_marker(tmp_path: Path) -> None:
    storage = LocalDirStorage(tmp_path)
    assert ensure_layout(storage) == 1
    assert ensure_layout(storage) == 1  # idempotent
    storage.put(LAYOUT_FILE, [b'{"layout": "syft_outbox_inbox", "version": 99}'])
    with pytest.raises(StorageError, match="upgrade syftflwr"):
        ensure_layout(storage)
    storage.put(LAYOUT_FILE, [b"garbage"])
    with pytest.raises(StorageError, match="unreadable"):
        ensure_layout(storage)
