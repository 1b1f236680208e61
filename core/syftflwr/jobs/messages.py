"""What the jobs channel carries, as bytes: a job (the aggregator's signed offer, the
FAB's signature in Flower's record format, the signer's public key, then the FAB) and a
decision (the datasite's signed statement). Both are frames (:mod:`syftflwr.frame`):
a reader validates the header before it touches the body, and nothing here trusts what
it reads — :mod:`.review` verifies every signature against the key it believes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from syftflwr.errors import MalformedMessageError
from syftflwr.frame import encode_frame, read_header

JOB_MAGIC = b"SYFJ"
DECISION_MAGIC = b"SYFD"
VERSION = 1
MAX_HEADER = 64 * 1024
"""Bytes a header may have (statements are at most 16 KiB, records 4 KiB)."""


@dataclass(frozen=True)
class JobMessage:
    """One job as sent to one datasite; nothing in it is verified yet."""

    offer: bytes
    """The offer's canonical encoding (:meth:`~syftflwr.jobs.statements.JobOffer.encode`)."""
    offer_signature: bytes
    fab_record: bytes
    """Flower's verification record of the FAB (:func:`~syftflwr.jobs.fabsig.sign_fab`)."""
    signer: bytes
    """The raw Ed25519 key the submitter signed with (checked against the one believed)."""
    fab: bytes

    def encode(self) -> bytes:
        header = {
            "offer": _text(self.offer),
            "offer_signature": _b64(self.offer_signature),
            "fab_record": _text(self.fab_record),
            "signer": _b64(self.signer),
        }
        return encode_frame(JOB_MAGIC, VERSION, header) + self.fab

    @classmethod
    def decode(cls, data: bytes, *, source: str) -> JobMessage:
        """:raises MalformedMessageError: not a job, or a field of the wrong shape."""
        fields, end = _header(data, JOB_MAGIC, "job", source)
        return cls(
            offer=_bytes_of(fields, "offer", source),
            offer_signature=_unb64(fields, "offer_signature", source),
            fab_record=_bytes_of(fields, "fab_record", source),
            signer=_unb64(fields, "signer", source),
            fab=bytes(memoryview(data)[end:]),
        )


@dataclass(frozen=True)
class DecisionMessage:
    """One decision as sent back to the aggregator; nothing in it is verified yet."""

    decision: bytes
    """The decision's canonical encoding (:meth:`~syftflwr.jobs.statements.Decision.encode`)."""
    signature: bytes

    def encode(self) -> bytes:
        header = {"decision": _text(self.decision), "signature": _b64(self.signature)}
        return encode_frame(DECISION_MAGIC, VERSION, header)

    @classmethod
    def decode(cls, data: bytes, *, source: str) -> DecisionMessage:
        """:raises MalformedMessageError: not a decision, or a field of the wrong shape."""
        fields, end = _header(data, DECISION_MAGIC, "decision", source)
        if end != len(data):
            raise MalformedMessageError(f"{source}: a decision carries nothing after its header")
        return cls(
            decision=_bytes_of(fields, "decision", source),
            signature=_unb64(fields, "signature", source),
        )


def _header(data: bytes, magic: bytes, what: str, source: str) -> tuple[dict[str, Any], int]:
    header = read_header(
        data, magic=magic, versions=(VERSION,), max_length=MAX_HEADER, what=what, source=source
    )
    if header is None:
        raise MalformedMessageError(f"{source}: truncated {what}")
    return header.fields, header.end


def _text(raw: bytes) -> str:
    return raw.decode("ascii")  # canonical statements and records are ASCII JSON


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _bytes_of(fields: dict[str, Any], name: str, source: str) -> bytes:
    value = fields.get(name)
    if not isinstance(value, str) or not value.isascii():
        raise MalformedMessageError(f"{source}: {name} is missing or not ASCII text")
    return value.encode("ascii")


def _unb64(fields: dict[str, Any], name: str, source: str) -> bytes:
    value = fields.get(name)
    if not isinstance(value, str):
        raise MalformedMessageError(f"{source}: {name} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessageError(f"{source}: {name} is not base64") from None
