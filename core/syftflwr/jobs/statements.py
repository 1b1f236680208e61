"""What each side of a job signs: the aggregator's offer of one FAB to one datasite, and
the datasite's decision on it (issue 19, item 5).

A statement is signed as its canonical encoding: JSON with sorted keys, no whitespace,
ASCII only, and a format tag naming the kind of statement, behind a fixed domain prefix
(so no signature over one kind, or over anything else signed with the same key such as
a FAB's verification record, can pass for another). Every field is bound: aggregator,
datasite, app, version, FAB hash, creation time, rollback flag, signer, the job id, and
the federation the app runs in (its ``app_name`` and datasites, which ``serve`` uses) —
an offer replayed under a new job id, sent to another datasite or carrying another FAB
fails. A decision embeds the whole offer it answers, so it cannot be moved to another
job, datasite or FAB either. Decoding accepts only the canonical form of a statement of
this format: what was verified is byte for byte what is read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

from packaging.version import InvalidVersion, Version

from syftflwr.crypto.keys import fingerprint, short
from syftflwr.crypto.signing import SigningIdentity, verify_signature
from syftflwr.errors import SignatureError, SyftflwrError
from syftflwr.names import (
    validate_app_name,
    validate_email,
    validate_identifier,
    validate_message_id,
)

OFFER_FORMAT = "syftflwr-job-offer/1"
DECISION_FORMAT = "syftflwr-job-decision/1"
DOMAIN = b"syftflwr signed statement\x00"
"""Prefixed to a statement's encoding before signing (domain separation)."""
MAX_STATEMENT = 16 * 1024
MAX_REASON = 2000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
Verdict = Literal["approved", "rejected"]
VERDICTS: tuple[Verdict, ...] = ("approved", "rejected")


class StatementError(SyftflwrError):
    """A signed statement that is malformed, not signed by its signer, or does not bind
    what it is used for; the one-line message says which."""


def _encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise StatementError(what)


def fab_digest(data: bytes) -> str:
    """The hex SHA-256 of a FAB, as an offer binds it (and as Flower computes it)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class JobOffer:
    """What the aggregator signs for ONE datasite: this FAB, of this app and version, as
    this job. ``signer`` is the fingerprint of the aggregator's signing key."""

    job_id: str
    aggregator: str
    datasite: str
    app: str
    version: str
    fab_hash: str
    created_at: float
    rollback: bool
    signer: str
    app_name: str
    """The ``[tool.syftflwr] app_name`` the aggregator runs the app under: the mailbox
    ``syftflwr serve`` serves it in (the FAB leaves ``[tool.syftflwr]`` out)."""
    datasites: tuple[str, ...]
    """The federation's datasites, in order: a datasite's position is its Flower
    ``partition-id`` (``num-partitions`` their number), as under ``syftflwr run``."""

    def __post_init__(self) -> None:
        _require(
            isinstance(self.datasites, list | tuple) and bool(self.datasites),
            "job offer: datasites is not a non-empty list",
        )
        object.__setattr__(self, "datasites", tuple(self.datasites))
        try:
            validate_message_id(self.job_id)
            validate_email(self.aggregator)
            validate_email(self.datasite)
            validate_identifier(self.app, "app name")
            validate_app_name(self.app_name, profile="native")
            for email in self.datasites:
                validate_email(email)
        except ValueError as exc:
            raise StatementError(f"job offer: {exc}") from None
        _require(
            self.datasite in self.datasites,
            f"job offer: {self.datasite} is not among its datasites",
        )
        _require(isinstance(self.version, str), "job offer: the version is not text")
        try:
            Version(self.version)
        except InvalidVersion:
            raise StatementError(
                f"job offer: version {self.version[:64]!r} is not a PEP 440 version"
            ) from None
        _require(
            isinstance(self.fab_hash, str) and bool(_HEX64.fullmatch(self.fab_hash)),
            "job offer: the FAB hash is not 64 lowercase hex digits",
        )
        _require(
            type(self.created_at) in (float, int) and math.isfinite(self.created_at),
            "job offer: created_at is not a finite number",
        )
        _require(type(self.rollback) is bool, "job offer: rollback is not true or false")
        _require(
            isinstance(self.signer, str) and bool(_FINGERPRINT.fullmatch(self.signer)),
            "job offer: the signer is not a sha256:<64 hex> fingerprint",
        )
        object.__setattr__(self, "created_at", float(self.created_at))

    def _doc(self) -> dict[str, Any]:
        return {"format": OFFER_FORMAT, **asdict(self), "datasites": list(self.datasites)}

    def encode(self) -> bytes:
        """The canonical bytes that get signed."""
        return _encode(self._doc())

    @classmethod
    def decode(cls, data: bytes) -> JobOffer:
        """The offer in ``data``; :class:`StatementError` unless it is a canonical
        encoding of a valid offer."""
        return cls._from_doc(_parse(data, OFFER_FORMAT), data)

    @classmethod
    def _from_doc(cls, doc: dict[str, Any], data: bytes | None) -> JobOffer:
        _require(doc.pop("format", None) == OFFER_FORMAT, f"not a {OFFER_FORMAT} statement")
        names = {f.name for f in fields(cls)}
        _require(set(doc) == names, f"job offer: fields {sorted(set(doc) ^ names)} wrong")
        offer = cls(**doc)
        if data is not None:
            _require(offer.encode() == data, "job offer: not in canonical form")
        return offer


@dataclass(frozen=True)
class Decision:
    """What the datasite signs and sends back: its verdict on one offer (embedded whole),
    who decided (the datasite's email), when, and whether a policy decided it."""

    offer: JobOffer
    verdict: Verdict
    reason: str
    decided_by: str
    decided_at: float
    automatic: bool

    def __post_init__(self) -> None:
        _require(isinstance(self.offer, JobOffer), "decision: no job offer")
        _require(self.verdict in VERDICTS, "decision: the verdict is not approved or rejected")
        _require(
            isinstance(self.reason, str) and len(self.reason) <= MAX_REASON,
            f"decision: the reason is not text of at most {MAX_REASON} characters",
        )
        try:
            validate_email(self.decided_by)
        except ValueError as exc:
            raise StatementError(f"decision: {exc}") from None
        _require(
            type(self.decided_at) in (float, int) and math.isfinite(self.decided_at),
            "decision: decided_at is not a finite number",
        )
        _require(type(self.automatic) is bool, "decision: automatic is not true or false")
        object.__setattr__(self, "decided_at", float(self.decided_at))

    def encode(self) -> bytes:
        """The canonical bytes that get signed."""
        doc = {"format": DECISION_FORMAT, **asdict(self)}
        doc["offer"] = self.offer._doc()
        return _encode(doc)

    @classmethod
    def decode(cls, data: bytes) -> Decision:
        """The decision in ``data``; :class:`StatementError` unless canonical and valid."""
        doc = _parse(data, DECISION_FORMAT)
        _require(doc.pop("format") == DECISION_FORMAT, f"not a {DECISION_FORMAT} statement")
        names = {f.name for f in fields(cls)}
        _require(set(doc) == names, f"decision: fields {sorted(set(doc) ^ names)} wrong")
        offer = doc.pop("offer")
        _require(isinstance(offer, dict), "decision: the offer is not an object")
        decision = cls(offer=JobOffer._from_doc(cast(dict[str, Any], offer), None), **doc)
        _require(decision.encode() == data, "decision: not in canonical form")
        return decision


def _parse(data: bytes, kind: str) -> dict[str, Any]:
    raw = bytes(data)
    _require(len(raw) <= MAX_STATEMENT, f"{kind}: {len(raw)} bytes, more than {MAX_STATEMENT}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StatementError(f"{kind}: not JSON") from None
    _require(isinstance(doc, dict), f"{kind}: not a JSON object")
    _require(doc.get("format") == kind, f"not a {kind} statement")
    return cast(dict[str, Any], doc)


def _sign(encoded: bytes, identity: SigningIdentity) -> bytes:
    return identity.sign(DOMAIN + encoded)


def _verify(encoded: bytes, signature: bytes, public: bytes, what: str) -> None:
    try:
        verify_signature(public, signature, DOMAIN + encoded)
    except SignatureError as exc:
        raise StatementError(f"{what}: {exc}") from None


def sign_offer(offer: JobOffer, identity: SigningIdentity) -> bytes:
    """The aggregator's signature of ``offer`` (its ``signer`` must be this key)."""
    if offer.signer != identity.fingerprint or offer.aggregator != identity.email:
        raise StatementError(
            f"job offer names {offer.aggregator} with key {short(offer.signer)}, not "
            f"{identity.email} with key {short(identity.fingerprint)}, who signs it"
        )
    return _sign(offer.encode(), identity)


def verify_offer(
    encoded: bytes,
    signature: bytes,
    public: bytes,
    *,
    sender: str,
    recipient: str,
    job_id: str,
    fab: bytes | None = None,
) -> JobOffer:
    """The offer in ``encoded``, if ``public`` (the signing key trusted for ``sender``)
    signed it and it binds what it arrived as: from ``sender`` to ``recipient`` as job
    ``job_id``, with the FAB ``fab`` (when given).

    :raises StatementError: one line naming what does not hold.
    """
    offer = JobOffer.decode(encoded)
    where = f"job {offer.job_id} from {offer.aggregator}"
    _verify(encoded, signature, public, where)
    _require(
        offer.signer == fingerprint(public),
        f"{where}: names the signer {short(offer.signer)}, but it was verified with "
        f"{short(fingerprint(public))}",
    )
    _require(offer.aggregator == sender, f"{where}: arrived from {sender}, not from its signer")
    _require(offer.datasite == recipient, f"{where}: is for {offer.datasite}, not {recipient}")
    _require(
        offer.job_id == job_id,
        f"{where}: arrived as job {job_id}; a signed offer replayed under a new id",
    )
    if fab is not None:
        _require(
            fab_digest(fab) == offer.fab_hash,
            f"{where}: the FAB has hash {fab_digest(fab)[:16]}, not the signed "
            f"{offer.fab_hash[:16]} (altered in storage, or another FAB)",
        )
    return offer


def sign_decision(decision: Decision, identity: SigningIdentity) -> bytes:
    """The datasite's signature of ``decision`` (on an offer made to it)."""
    if decision.offer.datasite != identity.email:
        raise StatementError(
            f"a decision on job {decision.offer.job_id} made to {decision.offer.datasite} "
            f"cannot be signed by {identity.email}"
        )
    return _sign(decision.encode(), identity)


def verify_decision(
    encoded: bytes, signature: bytes, public: bytes, *, sender: str, offer: JobOffer
) -> Decision:
    """The decision in ``encoded``, if ``public`` (the signing key trusted for
    ``sender``) signed it, ``sender`` is the datasite the offer was made to, and it
    answers exactly ``offer`` (the one the aggregator sent, all fields).

    :raises StatementError: one line naming what does not hold.
    """
    decision = Decision.decode(encoded)
    where = f"decision on job {decision.offer.job_id} from {sender}"
    _verify(encoded, signature, public, where)
    _require(
        decision.offer.datasite == sender,
        f"{where}: answers the offer made to {decision.offer.datasite}, another datasite",
    )
    _require(
        decision.offer == offer,
        f"{where}: answers another offer than the one sent as job {offer.job_id}",
    )
    return decision
