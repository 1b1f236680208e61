"""Signed job offers and decisions (issue 19, item 5): every bound field is checked, an
offer replayed under another job id, to another datasite or with another FAB is refused,
and a decision cannot be moved to another datasite's job."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
from syftflwr.crypto.signing import SigningIdentity
from syftflwr.jobs.bundle import BundleRefused
from syftflwr.jobs.fabsig import sign_fab, verify_fab
from syftflwr.jobs.statements import (
    DOMAIN,
    Decision,
    JobOffer,
    StatementError,
    fab_digest,
    sign_decision,
    sign_offer,
    verify_decision,
    verify_offer,
)

AGG, DS1, DS2 = "agg@uni.org", "ds1@hospital.org", "ds2@clinic.org"
FAB = b"PK\x03\x04 pretend this is a FAB"
JOB = "job0000000000000000000000000001"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, SigningIdentity]:
    return {e: SigningIdentity.load_or_create(tmp_path, e) for e in (AGG, DS1, DS2)}


def make_offer(agg: SigningIdentity, datasite: str = DS1, **changes: object) -> JobOffer:
    base = JobOffer(
        job_id=JOB,
        aggregator=AGG,
        datasite=datasite,
        app="quickstart",
        version="1.0.0",
        fab_hash=fab_digest(FAB),
        created_at=1_765_000_000.25,
        rollback=False,
        signer=agg.fingerprint,
        app_name="quickstart",
        datasites=(DS1, DS2),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def verify(offer_bytes: bytes, signature: bytes, agg: SigningIdentity, **kw: object) -> JobOffer:
    args: dict[str, object] = {"sender": AGG, "recipient": DS1, "job_id": JOB, "fab": FAB}
    args.update(kw)
    return verify_offer(offer_bytes, signature, agg.public, **args)  # type: ignore[arg-type]


def test_an_offer_round_trips_canonically(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    encoded = offer.encode()
    doc = json.loads(encoded)
    assert doc["format"] == "syftflwr-job-offer/1"
    assert list(doc) == sorted(doc) and b" " not in encoded
    assert JobOffer.decode(encoded) == offer
    assert verify(encoded, sign_offer(offer, keys[AGG]), keys[AGG]) == offer


BOUND = {
    "job_id": "job0000000000000000000000000002",
    "aggregator": "mallory@uni.org",
    "datasite": DS2,
    "app": "other-app",
    "version": "1.0.1",
    "fab_hash": "0" * 64,
    "created_at": 1_765_000_001.25,
    "rollback": True,
    "signer": "sha256:" + "1" * 64,
    "app_name": "otherapp",
    "datasites": (DS1, DS2, "ds3@example.org"),
}


def test_every_field_is_bound(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    signature = sign_offer(offer, keys[AGG])
    assert set(BOUND) == {f.name for f in dataclasses.fields(JobOffer)}
    for name, value in BOUND.items():
        changed = dataclasses.replace(offer, **{name: value})  # type: ignore[arg-type]
        with pytest.raises(StatementError, match="signature does not verify"):
            verify_offer(
                changed.encode(),
                signature,
                keys[AGG].public,
                sender=changed.aggregator,
                recipient=changed.datasite,
                job_id=changed.job_id,
            )


def test_an_offer_replayed_under_a_new_job_id_is_refused(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    signature = sign_offer(offer, keys[AGG])
    with pytest.raises(StatementError, match="replayed under a new id"):
        verify(offer.encode(), signature, keys[AGG], job_id="job0000000000000000000000000009")


def test_an_offer_must_bind_its_route_signer_and_fab(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    encoded, signature = offer.encode(), sign_offer(offer, keys[AGG])
    with pytest.raises(StatementError, match=f"arrived from {DS2}"):
        verify(encoded, signature, keys[AGG], sender=DS2)
    with pytest.raises(StatementError, match=f"is for {DS1}, not {DS2}"):
        verify(encoded, signature, keys[AGG], recipient=DS2)
    with pytest.raises(StatementError, match="altered in storage"):
        verify(encoded, signature, keys[AGG], fab=FAB + b"\x00")
    with pytest.raises(StatementError, match="signature does not verify"):  # another key
        verify_offer(encoded, signature, keys[DS2].public, sender=AGG, recipient=DS1, job_id=JOB)
    # signed by the right key, but naming another signer
    lying = make_offer(keys[AGG], signer=keys[DS2].fingerprint)
    with pytest.raises(StatementError, match=r"names .* with key"):
        sign_offer(lying, keys[AGG])
    forged = keys[AGG].sign(DOMAIN + lying.encode())
    with pytest.raises(StatementError, match="names the signer"):
        verify(lying.encode(), forged, keys[AGG])


def test_only_the_canonical_form_of_a_valid_offer_is_read(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    doc = json.loads(offer.encode())
    spaced = json.dumps(doc, sort_keys=True).encode()  # same content, other bytes
    with pytest.raises(StatementError, match="canonical"):
        JobOffer.decode(spaced)
    for name, value in {
        "aggregator": "not an email",
        "version": "one point oh",
        "fab_hash": "ABC",
        "created_at": float("inf"),
        "rollback": "yes",
        "job_id": "../../etc",
        "signer": "md5:1",
    }.items():
        with pytest.raises(StatementError):
            make_offer(keys[AGG], **{name: value})
    extra = dict(doc, extra=1)
    with pytest.raises(StatementError, match="fields"):
        JobOffer.decode(json.dumps(extra, sort_keys=True, separators=(",", ":")).encode())
    for garbage in (b"", b"[]", b"\xff", b"{" * 20000):
        with pytest.raises(StatementError):
            JobOffer.decode(garbage)


def decide(offer: JobOffer, by: str, verdict: str = "approved", reason: str = "") -> Decision:
    return Decision(
        offer=offer,
        verdict=verdict,  # type: ignore[arg-type]
        reason=reason,
        decided_by=by,
        decided_at=1_765_000_100.5,
        automatic=False,
    )


def test_a_decision_verifies_against_the_offer_sent(keys: dict[str, SigningIdentity]) -> None:
    offer = make_offer(keys[AGG])
    decision = decide(offer, DS1, "rejected", "uses the network")
    encoded, signature = decision.encode(), sign_decision(decision, keys[DS1])
    assert Decision.decode(encoded) == decision
    assert verify_decision(encoded, signature, keys[DS1].public, sender=DS1, offer=offer) == (
        decision
    )
    flipped = dataclasses.replace(decision, verdict="approved")
    with pytest.raises(StatementError, match="signature does not verify"):
        verify_decision(flipped.encode(), signature, keys[DS1].public, sender=DS1, offer=offer)
    newer = make_offer(keys[AGG], job_id="job0000000000000000000000000002", version="1.1")
    with pytest.raises(StatementError, match="answers another offer"):
        verify_decision(encoded, signature, keys[DS1].public, sender=DS1, offer=newer)
    # an offer signature is no decision signature, and the other way round
    with pytest.raises(StatementError, match="not a syftflwr-job-offer/1"):
        JobOffer.decode(encoded)


def test_a_decision_of_another_datasite_is_refused(keys: dict[str, SigningIdentity]) -> None:
    to_ds1, to_ds2 = make_offer(keys[AGG]), make_offer(keys[AGG], datasite=DS2)
    with pytest.raises(StatementError, match="cannot be signed by"):
        sign_decision(decide(to_ds1, DS2), keys[DS2])
    # DS2 signs a decision on DS1's offer anyway and sends it as its own
    stolen = decide(to_ds1, DS2)
    signature = keys[DS2].sign(DOMAIN + stolen.encode())
    with pytest.raises(StatementError, match="another datasite"):
        verify_decision(stolen.encode(), signature, keys[DS2].public, sender=DS2, offer=to_ds1)
    # DS2's genuine decision on its own offer does not answer DS1's
    own = decide(to_ds2, DS2)
    signed = sign_decision(own, keys[DS2])
    with pytest.raises(StatementError, match="answers another offer"):
        verify_decision(own.encode(), signed, keys[DS2].public, sender=DS2, offer=to_ds1)
    # and DS1's decision presented as coming from DS2 fails DS2's key
    mine = decide(to_ds1, DS1)
    with pytest.raises(StatementError, match="signature does not verify"):
        verify_decision(
            mine.encode(),
            sign_decision(mine, keys[DS1]),
            keys[DS2].public,
            sender=DS1,
            offer=to_ds1,
        )


def test_a_fab_signature_and_a_statement_signature_never_pass_for_each_other(
    keys: dict[str, SigningIdentity],
) -> None:
    """The same key signs FABs (Flower's 40-byte message: time + SHA-256) and statements
    (the domain prefix + canonical JSON, always longer): neither passes for the other."""
    agg = keys[AGG]
    offer = make_offer(agg)
    record = json.loads(sign_fab(FAB, agg.private, signed_at=1_765_000_000))
    fab_signature = base64.urlsafe_b64decode(record["signature"] + "==")
    with pytest.raises(StatementError, match="signature does not verify"):
        verify(offer.encode(), fab_signature, agg)
    record["signature"] = base64.urlsafe_b64encode(sign_offer(offer, agg)).decode().rstrip("=")
    with pytest.raises(BundleRefused, match="does not verify"):
        verify_fab(FAB, json.dumps(record).encode(), agg.public)
