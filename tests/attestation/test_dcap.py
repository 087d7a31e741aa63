from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import dcap_qvl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.attestation import (
    DcapPolicy,
    DcapVerifier,
    MeasurementAllowlist,
    TeeEvidence,
    check_key_binding,
    report_data_for,
    verify_dcap_quote,
)
from sealroom.attestation.quote_format import check_quote_framing
from sealroom.errors import AttestationInvalid, InvalidInput

if TYPE_CHECKING:
    from tests.attestation.conftest import Dcap, DstackRecording

VECTOR_TIME = 1750809600  # 2025-06-25T00:00:00Z
KEY_DOC = b'{"enclave":"keys","v":1}'
# Offsets inside a v4 TDX quote: 48-byte header, then the TD report.
OFF_TD_ATTRIBUTES = 48 + 120
OFF_MR_SIGNER_SEAM = 48 + 64
OFF_MRTD = 48 + 136
OFF_MR_CONFIG_ID = 48 + 184
OFF_REPORT_DATA = 48 + 520

TDX_QUOTE_MEASUREMENTS = {
    "mrtd": "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7",
    "rtmr0": "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c"
    "48aca29b220b80b6a540cf994b9bc9c0",
    "rtmr1": "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7"
    "aea8c323c173019b3093d54e579e9378",
    "rtmr2": "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3"
    "ba80b70870d7330733642e01d48c3132",
    "rtmr3": "00" * 48,
    "mr_config_id": "00" * 48,
}
DSTACK_COMPOSE_HASH = "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9"

UNSAFE = DcapPolicy(measurements=MeasurementAllowlist.unsafe_any())


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def tdx_evidence(
    quote: bytes, collateral: str, event_log: str = "[]", *, simulated: bool = False
) -> TeeEvidence:
    return TeeEvidence(
        tee="tdx",
        simulated=simulated,
        provider="dstack",
        quote=quote,
        event_log=event_log,
        collateral=collateral,
    )


def allowlist_for(quote: bytes, **extra: frozenset[str]) -> MeasurementAllowlist:
    report = dcap_qvl.parse_quote(quote).report
    values = {
        "mrtd": frozenset({report.mr_td.hex()}),
        "rtmr0": frozenset({report.rt_mr0.hex()}),
        "rtmr1": frozenset({report.rt_mr1.hex()}),
        "rtmr2": frozenset({report.rt_mr2.hex()}),
        "mr_config_id": frozenset({report.mr_config_id.hex()}),
    }
    values.update(extra)
    return MeasurementAllowlist(**values)  # type: ignore[arg-type]


# ------------------------------------------------------------- the vectors


def test_tdx_quote_verifies_up_to_date_at_vector_time(dcap_vectors: Dcap) -> None:
    result = verify_dcap_quote(
        dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, at_time=VECTOR_TIME
    )
    assert result.tcb_status == "UpToDate"
    assert result.advisory_ids == ()
    assert result.quote_version == 4
    assert result.td_report is not None
    assert result.td_report.measurements() == TDX_QUOTE_MEASUREMENTS


@pytest.mark.parametrize("at_time", [1750329147, VECTOR_TIME, 1752919234])
def test_tdx_quote_validity_window(dcap_vectors: Dcap, at_time: int) -> None:
    """2025-06-19T10:32:27Z (QE identity issued) .. 2025-07-19T10:00:34Z (PCK CRL expires)."""
    result = verify_dcap_quote(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, at_time=at_time)
    assert result.tcb_status == "UpToDate"


@pytest.mark.parametrize(
    ("at_time", "message"),
    [
        (1719273600, "TCBInfo issue date is in the future"),  # 2024-06-25
        (1750329146, "QE Identity issue date is in the future"),  # window start - 1 s
        (1752919235, "CrlExpired"),  # window end + 1 s: the PCK CRL's nextUpdate
        (1752969600, "TCBInfo expired"),  # 2025-07-20
        (1775260800, "CrlExpired"),  # 2026-04-04
        (2000000000, "CrlExpired"),
    ],
)
def test_tdx_quote_fails_outside_the_collateral_window(
    dcap_vectors: Dcap, at_time: int, message: str
) -> None:
    with pytest.raises(AttestationInvalid, match=f"DCAP: quote verification failed.*{message}"):
        verify_dcap_quote(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, at_time=at_time)


def test_tdx_quote_with_unsafe_allowlist_gets_as_far_as_key_binding(dcap_vectors: Dcap) -> None:
    """Every check before key binding passes; we cannot find a key document whose
    SHA-512 equals this quote's report_data, so the binding must fail."""
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="^key binding: report_data is not"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


def test_tdx_quote_is_rejected_later_by_the_verifier(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="TCBInfo expired"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=1752969600)


def test_default_policy_denies_every_measurement(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="measurement mrtd: the allowlist is empty"):
        DcapVerifier(DcapPolicy()).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=VECTOR_TIME
        )


@pytest.mark.parametrize("field", ["mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id"])
def test_each_measurement_is_checked(dcap_vectors: Dcap, field: str) -> None:
    allowlist = dataclasses.replace(
        allowlist_for(dcap_vectors.tdx_quote),
        **{field: frozenset({"ab" * 48})},  # type: ignore[arg-type]
    )
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match=f"measurement {field} [0-9a-f]{{96}} is not in"):
        DcapVerifier(DcapPolicy(measurements=allowlist)).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=VECTOR_TIME
        )


@pytest.mark.parametrize("field", ["mrtd", "rtmr0", "rtmr1", "rtmr2", "mr_config_id"])
def test_an_empty_field_in_the_allowlist_denies(dcap_vectors: Dcap, field: str) -> None:
    allowlist = dataclasses.replace(allowlist_for(dcap_vectors.tdx_quote), **{field: frozenset()})  # type: ignore[arg-type]
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match=f"measurement {field}: the allowlist is empty"):
        DcapVerifier(DcapPolicy(measurements=allowlist)).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=VECTOR_TIME
        )


def test_exact_measurements_without_a_compose_hash_event_are_rejected(
    dcap_vectors: Dcap,
) -> None:
    allowlist = allowlist_for(dcap_vectors.tdx_quote, compose_hash=frozenset({DSTACK_COMPOSE_HASH}))
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="no compose-hash event"):
        DcapVerifier(DcapPolicy(measurements=allowlist)).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=VECTOR_TIME
        )


def test_event_log_that_does_not_replay_is_rejected(dcap_vectors: Dcap) -> None:
    log = json.dumps(
        [{"imr": 3, "event_type": 0x08000001, "digest": "", "event": "x", "event_payload": ""}]
    )
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, log)
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


def test_missing_event_log_is_rejected(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, "")
    with pytest.raises(AttestationInvalid, match="event log: not valid JSON"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


def test_sgx_quote_reports_its_status_and_advisories(dcap_vectors: Dcap) -> None:
    result = verify_dcap_quote(
        dcap_vectors.sgx_quote, dcap_vectors.sgx_collateral, at_time=VECTOR_TIME
    )
    assert result.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert result.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert result.quote_version == 3
    assert result.td_report is None


def test_sgx_quote_is_rejected_by_the_default_policy(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.sgx_quote, dcap_vectors.sgx_collateral)
    with pytest.raises(
        AttestationInvalid,
        match="TCB status 'ConfigurationAndSWHardeningNeeded' is not accepted by the policy",
    ):
        DcapVerifier(DcapPolicy()).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=VECTOR_TIME
        )


def test_sgx_quote_advisories_must_be_listed(dcap_vectors: Dcap) -> None:
    policy = DcapPolicy(
        measurements=MeasurementAllowlist.unsafe_any(),
        accepted_tcb_statuses=frozenset({"UpToDate", "ConfigurationAndSWHardeningNeeded"}),
        allowed_advisory_ids=frozenset({"INTEL-SA-00615"}),
    )
    evidence = tdx_evidence(dcap_vectors.sgx_quote, dcap_vectors.sgx_collateral)
    with pytest.raises(AttestationInvalid, match=r"advisories \['INTEL-SA-00289'\] are not"):
        DcapVerifier(policy).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


def test_sgx_quote_is_never_tdx_evidence(dcap_vectors: Dcap) -> None:
    policy = DcapPolicy(
        measurements=MeasurementAllowlist.unsafe_any(),
        accepted_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}),
        allowed_advisory_ids=frozenset({"INTEL-SA-00289", "INTEL-SA-00615"}),
    )
    evidence = tdx_evidence(dcap_vectors.sgx_quote, dcap_vectors.sgx_collateral)
    with pytest.raises(AttestationInvalid, match="SGX quote, not a TDX quote"):
        DcapVerifier(policy).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


@pytest.mark.parametrize(
    ("at_time", "message"),
    [
        (1771500000, "No matching TCB level found"),
        (VECTOR_TIME, "TCBInfo issue date is in the future"),
    ],
)
def test_outdated_tdx_quote_is_rejected(dcap_vectors: Dcap, at_time: int, message: str) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_outdated, dcap_vectors.tdx_outdated_collateral)
    with pytest.raises(AttestationInvalid, match=f"DCAP: quote verification failed.*{message}"):
        DcapVerifier(DcapPolicy()).verify_at_time(evidence, key_document=KEY_DOC, at_time=at_time)


def test_outdated_quote_is_a_v5_quote_that_frames(dcap_vectors: Dcap) -> None:
    assert check_quote_framing(dcap_vectors.tdx_outdated).version == 5


def test_collateral_for_another_platform_is_rejected(dcap_vectors: Dcap) -> None:
    with pytest.raises(AttestationInvalid, match="Fmspc mismatch"):
        verify_dcap_quote(
            dcap_vectors.tdx_quote, dcap_vectors.tdx_outdated_collateral, at_time=1771500000
        )


@pytest.mark.parametrize(
    ("collateral", "message"),
    [("", "no collateral"), ("{}", "collateral does not parse"), ("nope", "does not parse")],
)
def test_bad_collateral_is_rejected(dcap_vectors: Dcap, collateral: str, message: str) -> None:
    with pytest.raises(AttestationInvalid, match=message):
        verify_dcap_quote(dcap_vectors.tdx_quote, collateral, at_time=VECTOR_TIME)


# ---------------------------------------------------------- one-bit changes

BIT_FLIP_OFFSETS = [
    0,  # header: version
    2,  # header: attestation key type
    4,  # header: TEE type
    12,  # header: QE vendor id
    47,  # header: user data
    48,  # TD report: TEE TCB SVN
    OFF_MRTD,
    OFF_MR_CONFIG_ID + 10,
    48 + 328,  # RTMR0
    48 + 472,  # RTMR3
    OFF_REPORT_DATA,
    OFF_REPORT_DATA + 63,
    632,  # signature data length
    636,  # quote signature
    700,  # attestation public key
    764,  # certification data type
    766,  # certification data size
    800,  # QE report
    1160,  # QE report signature
    1218,  # QE auth data size
    1230,  # QE auth data
    1252,  # PCK chain type
    1254,  # PCK chain size
    1270,  # PCK leaf certificate (PEM)
    1285,  # a PEM line break (dcap-qvl alone accepts this flip)
    2500,  # intermediate certificate
    3990,  # root certificate BEGIN line (dcap-qvl alone accepts this flip)
    4500,  # root certificate body (dcap-qvl alone accepts this flip)
    4934,  # NUL after the PEM chain (dcap-qvl alone accepts this flip)
    4936,  # zero padding after the quote (dcap-qvl alone accepts this flip)
    5005,  # last byte
]


@pytest.mark.parametrize("offset", BIT_FLIP_OFFSETS)
@pytest.mark.parametrize("bit", [0, 5])
def test_one_bit_change_anywhere_fails(dcap_vectors: Dcap, offset: int, bit: int) -> None:
    quote = bytearray(dcap_vectors.tdx_quote)
    quote[offset] ^= 1 << bit
    with pytest.raises(AttestationInvalid, match="^(DCAP|quote framing): "):
        verify_dcap_quote(bytes(quote), dcap_vectors.tdx_collateral, at_time=VECTOR_TIME)


@pytest.mark.parametrize("offset", [OFF_MRTD, 1285, 4500])
def test_one_bit_change_fails_the_verifier_before_key_binding(
    dcap_vectors: Dcap, offset: int
) -> None:
    quote = bytearray(dcap_vectors.tdx_quote)
    quote[offset] ^= 1
    evidence = tdx_evidence(bytes(quote), dcap_vectors.tdx_collateral)
    with pytest.raises(AttestationInvalid, match="^(DCAP|quote framing): "):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=VECTOR_TIME)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_one_bit_changes_fail(dcap_vectors: Dcap, data: st.DataObject) -> None:
    quote = bytearray(dcap_vectors.tdx_quote)
    offset = data.draw(st.integers(0, len(quote) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    quote[offset] ^= 1 << bit
    with pytest.raises(AttestationInvalid, match="^(DCAP|quote framing): "):
        verify_dcap_quote(bytes(quote), dcap_vectors.tdx_collateral, at_time=VECTOR_TIME)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda q: q[:-71], "truncated"),
        (lambda q: q[:1000], "truncated"),
        (lambda q: q[:40], "truncated"),
        (lambda q: q + b"\x01", "non-zero bytes after the signature data"),
        (lambda q: b"", "truncated"),
    ],
)
def test_truncation_and_trailing_garbage_fail(
    dcap_vectors: Dcap, mutate: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(AttestationInvalid, match=message):
        verify_dcap_quote(mutate(dcap_vectors.tdx_quote), dcap_vectors.tdx_collateral, at_time=1)


def test_zero_padding_after_the_quote_is_tolerated(dcap_vectors: Dcap) -> None:
    """Real v4 quotes end in zero padding (70 bytes in tdx_quote); its length is not signed."""
    assert dcap_vectors.tdx_quote[4936:] == bytes(70)
    for quote in (dcap_vectors.tdx_quote[:4936], dcap_vectors.tdx_quote + bytes(3)):
        result = verify_dcap_quote(quote, dcap_vectors.tdx_collateral, at_time=VECTOR_TIME)
        assert result.tcb_status == "UpToDate"


# ------------------------------------------------------------- key binding


def test_key_binding_accepts_exactly_the_matching_report_data() -> None:
    check_key_binding(report_data_for(KEY_DOC), KEY_DOC)


@pytest.mark.parametrize("byte", [0, 1, 31, 32, 47, 48, 62, 63])
def test_key_binding_checks_all_64_bytes(byte: int) -> None:
    report_data = bytearray(report_data_for(KEY_DOC))
    report_data[byte] ^= 0x01
    with pytest.raises(AttestationInvalid, match="key binding"):
        check_key_binding(bytes(report_data), KEY_DOC)


@pytest.mark.parametrize(
    "report_data",
    [b"", report_data_for(KEY_DOC)[:32] + bytes(32), report_data_for(KEY_DOC)[:63]],
)
def test_key_binding_rejects_prefixes_and_padding(report_data: bytes) -> None:
    with pytest.raises(AttestationInvalid, match="key binding"):
        check_key_binding(report_data, KEY_DOC)


def test_key_binding_rejects_the_vector_quotes_own_report_data(dcap_vectors: Dcap) -> None:
    result = verify_dcap_quote(
        dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral, at_time=VECTOR_TIME
    )
    assert result.td_report is not None
    quoted = result.td_report.report_data
    assert len(quoted) == 64
    with pytest.raises(AttestationInvalid, match="key binding"):
        check_key_binding(quoted, KEY_DOC)


# ------------------------------------------- policy half, with DCAP stubbed


def test_patched_quote_fails_real_dcap(dcap_vectors: Dcap) -> None:
    """Writing our report_data into a genuine quote breaks its signature: the stubbed
    tests below exercise only what runs after the DCAP check."""
    quote = patch(dcap_vectors.tdx_quote, OFF_REPORT_DATA, report_data_for(KEY_DOC))
    check_quote_framing(quote)
    with pytest.raises(AttestationInvalid, match="DCAP: quote verification failed"):
        verify_dcap_quote(quote, dcap_vectors.tdx_collateral, at_time=VECTOR_TIME)


def dstack_evidence(
    recording: DstackRecording,
    *,
    report_data: bytes | None = None,
    quote: bytes | None = None,
    event_log: str | None = None,
    simulated: bool = False,
) -> TeeEvidence:
    raw = quote if quote is not None else recording.quote
    if report_data is not None:
        raw = patch(raw, OFF_REPORT_DATA, report_data)
    return tdx_evidence(
        raw,
        "collateral is not consulted: DCAP is stubbed",
        recording.event_log if event_log is None else event_log,
        simulated=simulated,
    )


def dstack_policy(recording: DstackRecording, **changes: object) -> DcapPolicy:
    allowlist = allowlist_for(recording.quote, compose_hash=frozenset({DSTACK_COMPOSE_HASH}))
    return DcapPolicy(measurements=allowlist, **changes)  # type: ignore[arg-type]


def test_stubbed_full_success_path(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    calls = stub_dcap()
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    verified = DcapVerifier(dstack_policy(dstack_recording)).verify_at_time(
        evidence, key_document=KEY_DOC, at_time=1_800_000_000
    )
    assert calls == [1_800_000_000]
    assert verified.tee == "tdx"
    assert verified.simulated is False
    assert verified.tcb_status == "UpToDate"
    assert verified.warnings == ()
    assert verified.report_data == report_data_for(KEY_DOC)
    assert verified.verified_at == 1_800_000_000
    assert verified.measurements["compose_hash"] == DSTACK_COMPOSE_HASH
    assert verified.measurements["app_id"] == "86b0e55f2fa8e4fb69d890f14f54d5612707646e"
    assert verified.measurements["rtmr3"].startswith("6f24c170")
    assert verified.measurements["mr_config_id"] == "01" + DSTACK_COMPOSE_HASH + "00" * 15
    assert all(v == v.lower() for v in verified.measurements.values())


def test_stubbed_replayed_quote_fails_only_key_binding(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    with pytest.raises(AttestationInvalid, match="^key binding"):
        DcapVerifier(dstack_policy(dstack_recording)).verify_at_time(
            dstack_evidence(dstack_recording), key_document=KEY_DOC, at_time=1
        )


def test_stubbed_compose_hash_not_allowlisted(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    allowlist = allowlist_for(dstack_recording.quote, compose_hash=frozenset({"11" * 32}))
    with pytest.raises(AttestationInvalid, match="measurement compose_hash 86b0e55f"):
        DcapVerifier(DcapPolicy(measurements=allowlist)).verify_at_time(
            dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC)),
            key_document=KEY_DOC,
            at_time=1,
        )


def test_stubbed_mr_config_id_must_name_the_same_compose_hash(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    quote = patch(dstack_recording.quote, OFF_MR_CONFIG_ID + 1, b"\xff")
    allowlist = allowlist_for(quote, compose_hash=frozenset({DSTACK_COMPOSE_HASH}))
    with pytest.raises(AttestationInvalid, match="mr_config_id names a different compose hash"):
        DcapVerifier(DcapPolicy(measurements=allowlist)).verify_at_time(
            dstack_evidence(dstack_recording, quote=quote, report_data=report_data_for(KEY_DOC)),
            key_document=KEY_DOC,
            at_time=1,
        )


def test_stubbed_tampered_event_log_fails_replay(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    log = dstack_recording.event_log.replace(DSTACK_COMPOSE_HASH, "11" * 32)
    assert log != dstack_recording.event_log
    with pytest.raises(AttestationInvalid, match="RTMR3 replay mismatch"):
        DcapVerifier(UNSAFE).verify_at_time(
            dstack_evidence(dstack_recording, event_log=log), key_document=KEY_DOC, at_time=1
        )


def test_stubbed_debug_td_is_rejected(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    quote = patch(dstack_recording.quote, OFF_TD_ATTRIBUTES, b"\x01")
    with pytest.raises(AttestationInvalid, match="debug mode"):
        DcapVerifier(UNSAFE).verify_at_time(
            dstack_evidence(dstack_recording, quote=quote), key_document=KEY_DOC, at_time=1
        )


def test_stubbed_foreign_tdx_module_is_rejected(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    quote = patch(dstack_recording.quote, OFF_MR_SIGNER_SEAM + 5, b"\x01")
    with pytest.raises(AttestationInvalid, match="not signed by Intel"):
        DcapVerifier(UNSAFE).verify_at_time(
            dstack_evidence(dstack_recording, quote=quote), key_document=KEY_DOC, at_time=1
        )


def test_stubbed_unsafe_allowlist_warns(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    verified = DcapVerifier(UNSAFE).verify_at_time(
        dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC)),
        key_document=KEY_DOC,
        at_time=1,
    )
    assert len(verified.warnings) == 1
    assert verified.warnings[0].startswith("UNSAFE: ")


def test_stubbed_simulated_evidence_needs_allow_simulated(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    calls = stub_dcap()
    evidence = dstack_evidence(
        dstack_recording, report_data=report_data_for(KEY_DOC), simulated=True
    )
    with pytest.raises(AttestationInvalid, match="not trusted") as info:
        DcapVerifier(dstack_policy(dstack_recording)).verify_at_time(
            evidence, key_document=KEY_DOC, at_time=1
        )
    assert "allow_simulated=True" in str(info.value)
    assert calls == []
    verified = DcapVerifier(dstack_policy(dstack_recording), allow_simulated=True).verify_at_time(
        evidence, key_document=KEY_DOC, at_time=1
    )
    assert verified.simulated is True
    assert [w for w in verified.warnings if w.startswith("SIMULATED TEE: ")]


@pytest.mark.parametrize(
    ("status", "advisories", "accepted", "allowed", "error"),
    [
        ("SWHardeningNeeded", ("INTEL-SA-00615",), {"UpToDate"}, set(), "TCB status"),
        ("SWHardeningNeeded", ("INTEL-SA-00615",), {"SWHardeningNeeded"}, set(), "advisories"),
        ("SWHardeningNeeded", ("INTEL-SA-00615",), {"SWHardeningNeeded"}, {"INTEL-SA-00615"}, None),
        ("UpToDate", ("INTEL-SA-00999",), {"UpToDate"}, set(), "advisories"),
        ("OutOfDate", (), {"UpToDate", "SWHardeningNeeded"}, set(), "TCB status"),
        ("Revoked", (), {"UpToDate"}, set(), "TCB status"),
    ],
)
def test_stubbed_tcb_policy(
    dstack_recording: DstackRecording,
    stub_dcap: Callable[..., list[int]],
    status: str,
    advisories: tuple[str, ...],
    accepted: set[str],
    allowed: set[str],
    error: str | None,
) -> None:
    stub_dcap(status, advisories)
    policy = dstack_policy(
        dstack_recording,
        accepted_tcb_statuses=frozenset(accepted),
        allowed_advisory_ids=frozenset(allowed),
    )
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    verifier = DcapVerifier(policy)
    if error is not None:
        with pytest.raises(AttestationInvalid, match=error):
            verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=1)
        return
    verified = verifier.verify_at_time(evidence, key_document=KEY_DOC, at_time=1)
    assert verified.tcb_status == status
    assert verified.advisory_ids == advisories
    assert any("SWHardeningNeeded" in w for w in verified.warnings)


# ------------------------------------------------------ policy construction


def test_allowlist_normalises_to_lowercase() -> None:
    allowlist = MeasurementAllowlist(mrtd=frozenset({"AB" * 48}))
    assert allowlist.mrtd == frozenset({"ab" * 48})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mrtd": frozenset({"ab" * 47})},
        {"mrtd": frozenset({"ab" * 49})},
        {"rtmr0": frozenset({"zz" * 48})},
        {"rtmr1": frozenset({" " + "ab" * 48})},
        {"mrtd": "ab" * 48},
        {"mrtd": frozenset({b"\xab" * 48})},
        {"compose_hash": frozenset({"ab" * 48})},
        {"unsafe_allow_any": True, "mrtd": frozenset({"ab" * 48})},
        {"unsafe_allow_any": 1},
    ],
)
def test_allowlist_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        MeasurementAllowlist(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accepted_tcb_statuses": frozenset({"UpToDat"})},
        {"accepted_tcb_statuses": frozenset({"UpToDate", "Revoked"})},
        {"accepted_tcb_statuses": "UpToDate"},
        {"allowed_advisory_ids": "INTEL-SA-00615"},
        {"allowed_advisory_ids": frozenset({1})},
        {"measurements": None},
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        DcapPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_defaults_are_strict() -> None:
    policy = DcapPolicy()
    assert policy.accepted_tcb_statuses == frozenset({"UpToDate"})
    assert policy.allowed_advisory_ids == frozenset()
    assert policy.measurements == MeasurementAllowlist()
    assert not policy.measurements.unsafe_allow_any


def test_verifier_requires_a_policy() -> None:
    with pytest.raises(InvalidInput):
        DcapVerifier(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("at_time", [-1, False, 3.0, None])
def test_verifier_requires_an_explicit_time(dcap_vectors: Dcap, at_time: object) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(InvalidInput, match="at_time"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document=KEY_DOC, at_time=at_time)  # type: ignore[arg-type]


def test_verifier_requires_a_bytes_key_document(dcap_vectors: Dcap) -> None:
    evidence = tdx_evidence(dcap_vectors.tdx_quote, dcap_vectors.tdx_collateral)
    with pytest.raises(InvalidInput, match="key_document"):
        DcapVerifier(UNSAFE).verify_at_time(evidence, key_document="x", at_time=VECTOR_TIME)  # type: ignore[arg-type]
