from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import SealroomError, SignatureInvalid, StatementFormatError
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    sign_statement,
)
from sealroom.statements.envelope import pae
from tests.helpers import approval, attestation, identity, request

VECTORS = Path(__file__).parent / "vectors"
OWNER = identity("owner")
REQUESTER = identity("requester")


def signed_attestation() -> Envelope:
    return sign_statement(attestation(OWNER), OWNER).envelope


def test_round_trip() -> None:
    envelope = signed_attestation()
    again = Envelope.from_json(envelope.to_json())
    opened = again.open(DatasetAttestation)
    assert opened.statement == attestation(OWNER)
    assert opened.digest == envelope.digest


def test_digest_is_stable_across_machines() -> None:
    # A fixed statement has fixed bytes and digest: any change to canonicalisation, PAE or
    # the model's serialisation breaks every stored reference and must be deliberate.
    vector = json.loads((VECTORS / "dataset-attestation-v1.json").read_text())
    statement = attestation(OWNER)
    assert statement.payload() == vector["payload"].encode()
    by_hand = b"sealroom-statement-v1 28 sealroom.dataset-attestation 1 %d %s" % (
        len(vector["payload"].encode()),
        vector["payload"].encode(),
    )
    assert statement.digest() == "sha256:" + hashlib.sha256(by_hand).hexdigest()
    assert statement.digest() == vector["digest"]


def test_pae_layout() -> None:
    assert pae("t.x", 1, b"{}") == b"sealroom-statement-v1 3 t.x 1 2 {}"


def test_signature_cannot_be_replayed_as_another_type() -> None:
    env = signed_attestation()
    forged = Envelope(
        type=Approval.TYPE,
        version=env.version,
        payload=env.payload,
        signer=env.signer,
        signature=env.signature,
    )
    with pytest.raises(SignatureInvalid):
        forged.open(Approval)


def test_signature_cannot_be_replayed_as_another_version() -> None:
    env = signed_attestation()
    forged = Envelope(env.type, 2, env.payload, env.signer, env.signature)
    with pytest.raises(StatementFormatError, match="unknown version 2"):
        forged.open(DatasetAttestation)
    with pytest.raises(SignatureInvalid):
        forged.verify_signature()


def test_wrong_type_requested() -> None:
    with pytest.raises(StatementFormatError, match="expected a sealroom.approval"):
        signed_attestation().open(Approval)


def test_signer_must_be_the_named_owner() -> None:
    statement = attestation(OWNER)
    with pytest.raises(SignatureInvalid, match="owner"):
        sign_statement(statement, REQUESTER)
    # A forged envelope (signed correctly, but by someone else) is rejected on open.
    payload = statement.payload()
    env = Envelope(
        statement.TYPE,
        1,
        payload,
        REQUESTER.public,
        REQUESTER.sign(pae(statement.TYPE, 1, payload)),
    )
    with pytest.raises(SignatureInvalid, match="owner named in the statement"):
        env.open(DatasetAttestation)


def _with_payload(payload: bytes) -> Envelope:
    return Envelope(
        DatasetAttestation.TYPE,
        1,
        payload,
        OWNER.public,
        OWNER.sign(pae(DatasetAttestation.TYPE, 1, payload)),
    )


def _payload_dict() -> dict[str, object]:
    value = json.loads(attestation(OWNER).payload())
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra=1), "extra: Extra inputs are not permitted"),
        (lambda d: d.update(row_count="3"), "row_count: Input should be a valid integer"),
        (lambda d: d.update(row_count=True), "row_count: Input should be a valid integer"),
        (lambda d: d.update(title="x" * 201), "title: String should have at most 200"),
        (lambda d: d.update(row_count=-1), "row_count: Input should be greater than or equal"),
        (lambda d: d.pop("created_at"), "created_at: Field required"),
        (lambda d: d.update(owner="alice"), "owner: String should match pattern"),
        (lambda d: d.update(policy="sha256:XYZ"), "policy: String should match pattern"),
        (lambda d: d["commitment"].update(root="AAAA"), "expected 32 bytes"),  # type: ignore[attr-defined]
        (lambda d: d["commitment"].update(root="!!"), "not valid base64"),  # type: ignore[attr-defined]
        (lambda d: d.update(row_count=4), "row_count differs from commitment.rows"),
    ],
)
def test_strict_payload_rejections(mutate: object, message: str) -> None:
    value = _payload_dict()
    mutate(value)  # type: ignore[operator]
    payload = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(StatementFormatError, match=message):
        _with_payload(payload).open(DatasetAttestation)


def test_non_canonical_payload_rejected() -> None:
    payload = json.dumps(_payload_dict(), indent=1, sort_keys=True).encode()
    with pytest.raises(StatementFormatError, match="canonical"):
        _with_payload(payload).open(DatasetAttestation)


def test_envelope_parsing_rejections() -> None:
    good = json.loads(signed_attestation().to_json())
    cases = [
        ({**good, "extra": 1}, "unknown \\['extra'\\]"),
        ({k: v for k, v in good.items() if k != "signer"}, "missing \\['signer'\\]"),
        ({**good, "version": "1"}, "version must be an integer"),
        ({**good, "signature": good["signature"][:-4]}, "expected 64 bytes"),
        ({**good, "payload": "***"}, "not valid base64"),
    ]
    for doc, message in cases:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        with pytest.raises(StatementFormatError, match=message):
            Envelope.from_json(data)
    with pytest.raises(StatementFormatError, match="canonical"):
        Envelope.from_json(json.dumps(good, indent=2).encode())
    with pytest.raises(StatementFormatError, match="trailing|not valid JSON"):
        Envelope.from_json(signed_attestation().to_json() + b"x")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_byte_change_fails(data: st.DataObject) -> None:
    raw = bytearray(signed_attestation().to_json())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SealroomError):
        Envelope.from_json(bytes(raw)).open(DatasetAttestation)


def test_all_statement_types_round_trip() -> None:
    att = sign_statement(attestation(OWNER), OWNER)
    req = sign_statement(request(REQUESTER, (att.digest,)), REQUESTER)
    appr = sign_statement(approval(OWNER, req.digest, att.digest), OWNER)
    for signed, cls in ((req, ComputationRequest), (appr, Approval)):
        opened = Envelope.from_json(signed.envelope.to_json()).open(cls)
        assert opened.statement == signed.statement


def test_request_and_approval_rules() -> None:
    att = sign_statement(attestation(OWNER), OWNER)
    with pytest.raises(ValueError, match="duplicate dataset"):
        request(REQUESTER, (att.digest, att.digest))
    with pytest.raises(ValueError, match="expires_at"):
        request(REQUESTER, (att.digest,), expires_at=0)
    with pytest.raises(ValueError, match="must name the policy"):
        approval(OWNER, att.digest, att.digest, mode="policy")
    with pytest.raises(ValueError, match="nonce.*expected 16 bytes"):
        request(REQUESTER, (att.digest,), nonce=base64.b64encode(b"x" * 15).decode())


def test_free_form_objects_are_bounded() -> None:
    att = sign_statement(attestation(OWNER), OWNER)
    with pytest.raises(ValueError, match=r"parameters\n.*exceeds 64 KiB"):
        request(REQUESTER, (att.digest,), parameters={"x": "a" * (64 << 10)})
