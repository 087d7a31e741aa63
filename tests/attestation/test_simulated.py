from __future__ import annotations

import json

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.attestation import (
    DcapPolicy,
    DcapVerifier,
    MeasurementAllowlist,
    SimulatedEnclave,
    SimulatedVerifier,
    SimulationRoot,
    TeeEvidence,
    report_data_for,
)
from sealroom.attestation.simulated import (
    SIGNATURE_DOMAIN,
    SIMULATED_MEASUREMENT,
    SIMULATED_PROVIDER,
)
from sealroom.errors import AttestationInvalid, InvalidInput

KEY_DOC = b'{"enclave":"keys","v":1}'
NOW = 1_750_000_000
SEED = bytes(range(32))


@pytest.fixture(scope="module")
def root() -> SimulationRoot:
    return SimulationRoot.from_private_bytes(SEED)


@pytest.fixture(scope="module")
def evidence(root: SimulationRoot) -> TeeEvidence:
    return SimulatedEnclave(root).attest(KEY_DOC)


def allowing(root: SimulationRoot) -> SimulatedVerifier:
    return SimulatedVerifier(root.public_key, allow_simulated=True)


def resign(root: SimulationRoot, report: dict[str, object] | bytes) -> TeeEvidence:
    """Evidence for an arbitrary report, validly signed by the trusted root."""
    quote = report if isinstance(report, bytes) else rfc8785.dumps(report)  # type: ignore[arg-type]
    return TeeEvidence(
        tee="simulated",
        simulated=True,
        provider=SIMULATED_PROVIDER,
        quote=quote,
        signature=root.sign_report(quote),
    )


def report_of(evidence: TeeEvidence) -> dict[str, object]:
    data: dict[str, object] = json.loads(evidence.quote)
    return data


def test_allowed_simulated_evidence_verifies_and_says_so(
    root: SimulationRoot, evidence: TeeEvidence
) -> None:
    verified = allowing(root).verify_at_time(evidence, key_document=KEY_DOC, at_time=NOW)
    assert verified.tee == "simulated"
    assert verified.simulated is True
    assert verified.provider == SIMULATED_PROVIDER
    assert verified.tcb_status == "Simulated"
    assert verified.report_data == report_data_for(KEY_DOC)
    assert verified.verified_at == NOW
    assert verified.advisory_ids == ()
    assert len(verified.warnings) == 1
    assert verified.warnings[0].startswith("SIMULATED TEE: ")
    assert verified.measurements == {"simulated_measurement": SIMULATED_MEASUREMENT}


def test_report_is_canonical_json_and_labelled_simulated(
    root: SimulationRoot, evidence: TeeEvidence
) -> None:
    report = report_of(evidence)
    assert rfc8785.dumps(report) == evidence.quote  # type: ignore[arg-type]
    assert evidence.tee == "simulated"
    assert evidence.simulated is True
    assert report["tee"] == "simulated"
    assert report["report_data"] == report_data_for(KEY_DOC).hex()
    assert len(bytes.fromhex(str(report["report_data"]))) == 64
    assert str(report["warning"]).startswith("SIMULATED TEE: ")
    assert bytes.fromhex(str(report["simulated_measurement"])).startswith(b"SIMULATED/")
    assert report["root_key"] == root.public_key.hex()


def test_signature_is_domain_separated(root: SimulationRoot, evidence: TeeEvidence) -> None:
    public = Ed25519PublicKey.from_public_bytes(root.public_key)
    public.verify(evidence.signature, SIGNATURE_DOMAIN + evidence.quote)
    with pytest.raises(InvalidSignature):
        public.verify(evidence.signature, evidence.quote)


def test_rejected_by_default_with_instructions(root: SimulationRoot, evidence: TeeEvidence) -> None:
    verifier = SimulatedVerifier(root.public_key, allow_simulated=False)
    with pytest.raises(AttestationInvalid, match="not trusted") as info:
        verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=NOW)
    assert "allow_simulated=True" in str(info.value)


def test_allow_simulated_must_be_chosen_explicitly(root: SimulationRoot) -> None:
    with pytest.raises(TypeError):
        SimulatedVerifier(root.public_key)  # type: ignore[call-arg]


def test_truthy_non_bool_does_not_allow(root: SimulationRoot, evidence: TeeEvidence) -> None:
    verifier = SimulatedVerifier(root.public_key, allow_simulated="yes")  # type: ignore[arg-type]
    with pytest.raises(AttestationInvalid, match="not trusted"):
        verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=NOW)


def test_dcap_verifier_never_accepts_software_simulation(evidence: TeeEvidence) -> None:
    policy = DcapPolicy(measurements=MeasurementAllowlist.unsafe_any())
    for allow in (False, True):
        with pytest.raises(AttestationInvalid, match="not 'tdx'"):
            DcapVerifier(policy, allow_simulated=allow).verify_at_time(
                evidence, key_document=KEY_DOC, at_time=NOW
            )


def test_other_root_is_rejected(evidence: TeeEvidence) -> None:
    other = SimulationRoot.generate()
    with pytest.raises(AttestationInvalid, match="signature does not verify"):
        allowing(other).verify_at_time(evidence, key_document=KEY_DOC, at_time=NOW)


def test_other_key_document_fails_key_binding(root: SimulationRoot, evidence: TeeEvidence) -> None:
    with pytest.raises(AttestationInvalid, match="key binding"):
        allowing(root).verify_at_time(evidence, key_document=KEY_DOC + b" ", at_time=NOW)


@pytest.mark.parametrize("offset", [0, 1, 10, 40, 100, 200, -60, -1])
def test_tampered_report_is_rejected(
    root: SimulationRoot, evidence: TeeEvidence, offset: int
) -> None:
    quote = bytearray(evidence.quote)
    quote[offset] ^= 0x01
    tampered = TeeEvidence(
        tee="simulated",
        simulated=True,
        provider=evidence.provider,
        quote=bytes(quote),
        signature=evidence.signature,
    )
    with pytest.raises(AttestationInvalid, match="signature"):
        allowing(root).verify_at_time(tampered, key_document=KEY_DOC, at_time=NOW)


@pytest.mark.parametrize("offset", [0, 31, 32, 63])
def test_tampered_signature_is_rejected(
    root: SimulationRoot, evidence: TeeEvidence, offset: int
) -> None:
    signature = bytearray(evidence.signature)
    signature[offset] ^= 0x80
    tampered = TeeEvidence(
        tee="simulated",
        simulated=True,
        provider=evidence.provider,
        quote=evidence.quote,
        signature=bytes(signature),
    )
    with pytest.raises(AttestationInvalid, match="signature"):
        allowing(root).verify_at_time(tampered, key_document=KEY_DOC, at_time=NOW)


def test_missing_signature_is_rejected(root: SimulationRoot, evidence: TeeEvidence) -> None:
    unsigned = TeeEvidence(
        tee="simulated", simulated=True, provider=evidence.provider, quote=evidence.quote
    )
    with pytest.raises(AttestationInvalid, match="signature"):
        allowing(root).verify_at_time(unsigned, key_document=KEY_DOC, at_time=NOW)


def test_non_canonical_report_is_rejected_even_if_signed(
    root: SimulationRoot, evidence: TeeEvidence
) -> None:
    pretty = json.dumps(report_of(evidence), indent=1).encode()
    with pytest.raises(AttestationInvalid, match="canonical"):
        allowing(root).verify_at_time(resign(root, pretty), key_document=KEY_DOC, at_time=NOW)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tee", "tdx", "tee must be"),
        ("type", "something-else", "type must be"),
        ("version", 2, "version must be"),
        ("version", "1", "version must be"),
        ("simulated_measurement", "00" * 48, "simulated_measurement must be"),
        ("warning", "all good", "warning must be"),
        ("report_data", "00" * 63, "report_data must be"),
        ("report_data", "00" * 65, "report_data must be"),
        ("report_data", "AB" * 64, "report_data must be"),
        ("report_data", "zz" * 64, "not hex"),
        ("report_data", 7, "report_data must be"),
        ("root_key", "00" * 32, "different simulation root"),
    ],
)
def test_signed_but_malformed_reports_are_rejected(
    root: SimulationRoot, evidence: TeeEvidence, field: str, value: object, message: str
) -> None:
    report = report_of(evidence)
    report[field] = value
    with pytest.raises(AttestationInvalid, match=message):
        allowing(root).verify_at_time(resign(root, report), key_document=KEY_DOC, at_time=NOW)


def test_extra_or_missing_report_fields_are_rejected(
    root: SimulationRoot, evidence: TeeEvidence
) -> None:
    extra = report_of(evidence) | {"note": "hi"}
    missing = report_of(evidence)
    del missing["warning"]
    for report in (extra, missing):
        with pytest.raises(AttestationInvalid, match="fields must be"):
            allowing(root).verify_at_time(resign(root, report), key_document=KEY_DOC, at_time=NOW)


@pytest.mark.parametrize("quote", [b"", b"\xff\xfe", b"[]", b"null", b"not json"])
def test_garbage_reports_are_rejected(root: SimulationRoot, quote: bytes) -> None:
    with pytest.raises(AttestationInvalid, match="simulated report"):
        allowing(root).verify_at_time(resign(root, quote), key_document=KEY_DOC, at_time=NOW)


def test_tdx_evidence_is_not_simulated_evidence(
    root: SimulationRoot, evidence: TeeEvidence
) -> None:
    tdx = TeeEvidence(
        tee="tdx",
        simulated=True,
        provider="x",
        quote=evidence.quote,
        signature=evidence.signature,
    )
    with pytest.raises(AttestationInvalid, match="expected tee 'simulated'"):
        allowing(root).verify_at_time(tdx, key_document=KEY_DOC, at_time=NOW)


def test_evidence_survives_serialisation(root: SimulationRoot, evidence: TeeEvidence) -> None:
    again = TeeEvidence.from_dict(json.loads(json.dumps(evidence.to_dict())))
    assert again == evidence
    allowing(root).verify_at_time(again, key_document=KEY_DOC, at_time=NOW)


@pytest.mark.parametrize("at_time", [-1, True, 1.5, "1750000000", 1 << 63])
def test_at_time_must_be_an_explicit_unix_time(
    root: SimulationRoot, evidence: TeeEvidence, at_time: object
) -> None:
    with pytest.raises(InvalidInput, match="at_time"):
        allowing(root).verify_at_time(evidence, key_document=KEY_DOC, at_time=at_time)  # type: ignore[arg-type]


def test_root_from_private_bytes_round_trips() -> None:
    root = SimulationRoot.from_private_bytes(SEED)
    assert root.private_bytes() == SEED
    assert SimulationRoot.from_private_bytes(root.private_bytes()).public_key == root.public_key
    assert len(root.public_key) == 32
    assert SimulationRoot.generate().public_key != root.public_key
    assert SEED.hex() not in repr(root)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_root_rejects_bad_seeds(seed: bytes) -> None:
    with pytest.raises(InvalidInput):
        SimulationRoot.from_private_bytes(seed)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_verifier_rejects_bad_root_keys(key: bytes) -> None:
    with pytest.raises(InvalidInput):
        SimulatedVerifier(key, allow_simulated=True)


def test_enclave_requires_bytes(root: SimulationRoot) -> None:
    with pytest.raises(InvalidInput):
        SimulatedEnclave(root).attest("text")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(doc=st.binary(max_size=200), other=st.binary(max_size=200))
def test_binding_holds_for_arbitrary_key_documents(doc: bytes, other: bytes) -> None:
    root = SimulationRoot.from_private_bytes(SEED)
    evidence = SimulatedEnclave(root).attest(doc)
    verifier = allowing(root)
    assert verifier.verify_at_time(evidence, key_document=doc, at_time=NOW).report_data == (
        report_data_for(doc)
    )
    if other != doc:
        with pytest.raises(AttestationInvalid, match="key binding"):
            verifier.verify_at_time(evidence, key_document=other, at_time=NOW)
