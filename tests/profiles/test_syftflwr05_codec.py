"""The syft-flwr-0.5 P2P codec against an independent reading of upstream's source
(``_upstream.py``): bytes upstream writes are read by ours, ours are read by upstream's
reader, paths and node ids agree, and cut-short files are told from finished ones."""

from __future__ import annotations

import json
import os
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

import contextlib

import _upstream as up
import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import Error
from hypothesis import given, settings
from hypothesis import strategies as st
from syftflwr.envelope import Request, Response
from syftflwr.errors import MalformedMessageError
from syftflwr.flower.compat import make_message, make_metadata
from syftflwr.flower.node_ids import node_ids_for
from syftflwr.flower.serde import decode_message, encode_message
from syftflwr.mailbox.layout import ObjectKind, Route
from syftflwr.profiles import P2P, mailbox_profile

AGG = "agg@example.org"
DS = "ds1@example.org"
APP = "quickstart"


def instruction(payload: int = 1000, *, message_id: str = "a" * 32) -> Message:
    metadata = make_metadata(
        run_id=42, message_id=message_id, src_node_id=up.AGGREGATOR_NODE_ID,
        dst_node_id=up.str_to_int(DS), reply_to_message_id="", group_id="1",
        created_at=1_767_225_600.0, ttl=600.0, message_type="train",
    )  # fmt: skip
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.arange(payload, dtype=np.float32)]),
            "config": ConfigRecord({"lr": 0.1, "server-round": 1}),
        }
    )
    return make_message(metadata, content=content)


def reply_to(message: Message) -> Message:
    return Message(RecordDict({"metrics": MetricRecord({"loss": 0.5})}), reply_to=message)


def route_of(sender: str, recipient: str) -> Route:
    return Route(sender, recipient, P2P.wire_app(APP), up.ENDPOINT)


def decode(data: bytes, kind: ObjectKind, sender: str, recipient: str, message_id: str):
    return P2P.decode(
        data, source="test", kind=kind, route=route_of(sender, recipient),
        message_id=message_id, app=APP,
    )  # fmt: skip


# ----------------------------------------------------------------------------- bytes
def test_our_flower_encoding_is_byte_identical_to_upstreams() -> None:
    """What our Grid and runner put in a file is exactly upstream's serde output."""
    for message in (instruction(0), instruction(5000), reply_to(instruction())):
        assert encode_message(message) == up.to_bytes(message)
    error = Message(Error(code=0, reason="boom"), reply_to=instruction())
    assert encode_message(error) == up.to_bytes(error)


def test_upstream_request_is_read_as_our_request() -> None:
    message = instruction()
    future_id = up.new_future_id()  # uuid4 with hyphens, as upstream names files
    request = decode(up.to_bytes(message), ObjectKind.REQUEST, AGG, DS, future_id)
    assert isinstance(request, Request)
    assert (request.id, request.sender, request.recipient) == (future_id, AGG, DS)
    assert (request.app, request.endpoint) == (APP, "messages")
    assert bytes(request.body) == up.to_bytes(message)
    back = decode_message(request.body)
    assert back.metadata.message_id == message.metadata.message_id
    assert back.content["arrays"].to_numpy_ndarrays()[0].tolist() == list(range(1000))


def test_upstream_reply_and_error_reply_are_read_as_responses() -> None:
    reply = reply_to(instruction())
    ok = decode(up.to_bytes(reply), ObjectKind.RESPONSE, DS, AGG, "b" * 32)
    assert isinstance(ok, Response) and ok.ok
    assert decode_message(ok.body).metadata.reply_to_message_id == "a" * 32
    # a golden vector: exactly the bytes upstream's events loop writes when a handler raises
    golden = b'{"error": "Client failed: boom", "timestamp": "2026-01-01T00:00:00.123456+00:00"}'
    when = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert up.error_bytes("Client failed: boom", when) == golden
    failed = decode(golden, ObjectKind.RESPONSE, DS, AGG, "b" * 32)
    assert isinstance(failed, Response) and not failed.ok
    assert failed.error_text == "Client failed: boom"


def test_our_files_are_read_by_upstreams_reader() -> None:
    message = instruction()
    request = Request(
        id="c" * 32, sender=AGG, recipient=DS, app=APP, endpoint="messages",
        body=encode_message(message),
    )  # fmt: skip
    data = b"".join(bytes(p) for p in P2P.encode(request))
    parsed = up.from_bytes(data)
    assert parsed.metadata.dst_node_id == up.str_to_int(DS)  # type: ignore[attr-defined]
    assert up.to_bytes(parsed) == data  # nothing but the protobuf: no header, no framing
    error = Response(
        id="c" * 32, sender=DS, recipient=AGG, app=APP, endpoint="messages",
        body=b"rejected: too big", status="error",
    )  # fmt: skip
    fields = json.loads(b"".join(bytes(p) for p in P2P.encode(error)))
    assert fields["error"] == "rejected: too big"
    assert abs(datetime.fromisoformat(fields["timestamp"]).timestamp() - time.time()) < 60


def test_paths_and_node_ids_are_upstreams(tmp_path: Path) -> None:
    future_id = up.new_future_id()
    route = route_of(AGG, DS)
    assert tmp_path / route.request_path(future_id) == (
        up.endpoint_dir(tmp_path, AGG, DS, APP) / f"{future_id}.request"
    )
    assert tmp_path / route.response_path(future_id) == (
        up.endpoint_dir(tmp_path, DS, AGG, APP) / f"{future_id}.response"
    )
    assert node_ids_for([DS], "syft-flwr-0.5")[DS] == zlib.crc32(DS.encode()) == up.str_to_int(DS)
    assert mailbox_profile("syft-flwr-0.5") is P2P and not P2P.chunking


# ----------------------------------------------------------------------------- torn files
def test_cut_short_files_are_incomplete_not_messages() -> None:
    """A reader racing a non-atomic writer must wait, never hand on a cut-short
    protobuf: every prefix either fails as incomplete or is a whole-field prefix."""
    data = up.to_bytes(instruction(64))
    whole_field_prefixes = 0
    for cut in range(len(data)):
        prefix = data[:cut]
        try:
            decode(prefix, ObjectKind.REQUEST, AGG, DS, "d" * 32)
        except MalformedMessageError:
            assert P2P.incomplete(prefix), cut
        else:
            whole_field_prefixes += 1  # cut exactly between two top-level fields
    assert whole_field_prefixes <= 2
    error = up.error_bytes("boom")
    for cut in range(1, len(error)):
        assert P2P.incomplete(error[:cut]), cut
    assert not P2P.incomplete(error) and not P2P.incomplete(data)


@pytest.mark.parametrize(
    "garbage", [b"\x00\x01", b"not a protobuf", b"\xff" * 20, b"{json}", b'{"no_error": 1}']
)
def test_garbage_is_malformed_and_not_waited_for(garbage: bytes) -> None:
    for kind in (ObjectKind.REQUEST, ObjectKind.RESPONSE):
        with pytest.raises(MalformedMessageError):
            decode(garbage, kind, AGG, DS, "e" * 32)
    assert not P2P.incomplete(garbage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([ObjectKind.REQUEST, ObjectKind.RESPONSE]))
def test_any_bytes_decode_or_raise_malformed(data: bytes, kind: ObjectKind) -> None:
    with contextlib.suppress(MalformedMessageError):
        decode(data, kind, AGG, DS, "f" * 32)
    P2P.incomplete(data)  # never raises
