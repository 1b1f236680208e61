"""How long a datasite waits for a shared blob its sender named while it uploaded: the
ref's ``ready_by`` (the sender's bound on the upload), never past the request's expiry,
``clock_skew`` allowed. Until then a missing blob hands the request back
(``HandleLater``); after it, or for a ref stored before it was sent, it is refused."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from syftflwr.envelope import Request
from syftflwr.errors import BlobGoneError
from syftflwr.flower.blobs import (
    BLOBS_HEADER,
    FIRST_STEP,
    WAIT_STEP,
    Named,
    header_value,
    resolve_blobs,
    with_refs,
)
from syftflwr.flower.serde import array_record_parts
from syftflwr.names import new_message_id
from syftflwr.plugin import blob_gone
from syftflwr.roles import BlobRef, HandleLater

AGG, DS1 = "agg@example.org", "ds1@example.org"
ARRAYS = ArrayRecord({"w": Array(np.arange(5, dtype=np.float32))})
BLOB = b"".join(bytes(p) for p in array_record_parts(ARRAYS)[0])
REF = BlobRef(name=new_message_id(), sha256=hashlib.sha256(BLOB).hexdigest(), size=len(BLOB))


class Reader:
    """A ReadsBlobs whose blob is stored once ``stored`` is set."""

    def __init__(self, stored: bool = False) -> None:
        self.stored = stored
        self.reads = 0

    def get_blob(self, ref: BlobRef, *, sender: str, app: str) -> bytes:
        self.reads += 1
        if not self.stored:
            raise blob_gone(f"blob {ref.name} from {sender}")
        return BLOB


def resolve(ready_by: float | None, *, expires_in: float = 600.0, age: float = 0.0,
            reader: Reader | None = None, skew: float = 0.0) -> RecordDict:  # fmt: skip
    refs = {"arrays": Named(REF, 1, ready_by)}
    content = with_refs(RecordDict({"config": ConfigRecord({"a": 1}), "arrays": ARRAYS}), refs)
    now = time.time()
    request = Request(id=new_message_id(), sender=AGG, recipient=DS1, app="app",
                      endpoint="messages", body=b"", created_at=now - age,
                      expires_at=now + expires_in,
                      headers={BLOBS_HEADER: header_value({"arrays": REF})})  # fmt: skip
    return resolve_blobs(content, request, reader or Reader(), clock_skew=skew)


def test_a_blob_not_stored_yet_hands_its_request_back_until_ready_by() -> None:
    with pytest.raises(HandleLater, match="not stored yet") as young:
        resolve(time.time() + 60)
    assert young.value.delay == FIRST_STEP  # a fresh request: asked again soon
    with pytest.raises(HandleLater) as old:
        resolve(time.time() + 60, age=30)
    assert old.value.delay == WAIT_STEP  # an old one: at most once a second
    content = resolve(time.time() + 60, reader=Reader(stored=True))
    assert list(content.keys()) == ["config", "arrays"]  # back in its place


def test_past_ready_by_or_the_requests_expiry_a_missing_blob_is_refused() -> None:
    with pytest.raises(BlobGoneError, match="is gone"):
        resolve(time.time() - 1)
    with pytest.raises(BlobGoneError):  # the request expires first: that is the bound
        resolve(time.time() + 60, expires_in=-1)
    with pytest.raises(HandleLater):  # the clock skew is allowed on top
        resolve(time.time() - 1, skew=30)


def test_a_blob_stored_before_its_message_went_is_never_waited_for() -> None:
    reader = Reader()
    with pytest.raises(BlobGoneError):
        resolve(None, reader=reader)
    assert reader.reads == 1
