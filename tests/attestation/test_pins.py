"""Enclave pins: measurements (incl. compose_hash) for TDX, a pinned root for simulation,
freshness for live decisions, and refusals that name the rule."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import dcap_qvl
import pytest

from sealroom.attestation import report_data_for
from sealroom.attestation.pins import (
    DEFAULT_MAX_EVIDENCE_AGE,
    EnclavePin,
    parse_enclave_pin,
    parse_simulation_root,
)
from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.errors import AttestationInvalid, InvalidInput
from tests.attestation.conftest import DstackRecording
from tests.attestation.test_dcap import DSTACK_COMPOSE_HASH, KEY_DOC, dstack_evidence

ROOT = SimulationRoot.from_private_bytes(hashlib.sha256(b"pins-root").digest())
OTHER = SimulationRoot.from_private_bytes(hashlib.sha256(b"pins-other").digest())
T = 1_800_000_000


def measurements_of(recording: DstackRecording, compose_hash: str) -> dict[str, list[str]]:
    """The pin's JSON for the recorded quote's firmware/OS, with ``compose_hash`` pinned."""
    report = dcap_qvl.parse_quote(recording.quote).report
    return {
        "mrtd": [report.mr_td.hex()],
        "rtmr0": [report.rt_mr0.hex()],
        "rtmr1": [report.rt_mr1.hex()],
        "rtmr2": [report.rt_mr2.hex()],
        "mr_config_id": [report.mr_config_id.hex()],
        "compose_hash": [compose_hash],
    }


def test_the_pinned_compose_hash_admits_the_measured_app(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    pin = parse_enclave_pin(
        {"measurements": measurements_of(dstack_recording, DSTACK_COMPOSE_HASH)}
    )
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    verified = pin.check_as_of(evidence, key_document=KEY_DOC, at_time=T)
    assert verified.measurements["compose_hash"] == DSTACK_COMPOSE_HASH


def test_a_pinned_measurement_mismatch_is_refused_by_the_enclave_rule(
    dstack_recording: DstackRecording, stub_dcap: Callable[..., list[int]]
) -> None:
    stub_dcap()
    pin = parse_enclave_pin({"measurements": measurements_of(dstack_recording, "11" * 32)})
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    with pytest.raises(AttestationInvalid, match=r"^rule enclave: .*compose_hash 86b0e55f"):
        pin.check_as_of(evidence, key_document=KEY_DOC, at_time=T)


def test_tdx_evidence_against_a_simulation_only_pin_is_refused(
    dstack_recording: DstackRecording,
) -> None:
    pin = EnclavePin(simulation_root=ROOT.public_key)
    evidence = dstack_evidence(dstack_recording, report_data=report_data_for(KEY_DOC))
    with pytest.raises(AttestationInvalid, match="rule enclave: tdx evidence, but no measurement"):
        pin.check_as_of(evidence, key_document=KEY_DOC, at_time=T)


def test_simulated_evidence_needs_the_pinned_root() -> None:
    evidence = SimulatedEnclave(OTHER).attest(KEY_DOC)
    pinned = EnclavePin(simulation_root=ROOT.public_key)
    with pytest.raises(AttestationInvalid, match=r"^rule enclave: .*trusted simulation root"):
        pinned.check_as_of(evidence, key_document=KEY_DOC, at_time=T)
    measurements_only = EnclavePin(
        measurements=parse_enclave_pin({"measurements": {}}).measurements
    )
    with pytest.raises(AttestationInvalid, match="no simulation root is pinned"):
        measurements_only.check_as_of(evidence, key_document=KEY_DOC, at_time=T)
    ok = EnclavePin(simulation_root=OTHER.public_key).check_as_of(
        evidence, key_document=KEY_DOC, at_time=T
    )
    assert ok.simulated


def test_live_decisions_refuse_stale_and_future_evidence() -> None:
    evidence = SimulatedEnclave(ROOT).attest(KEY_DOC)
    pin = EnclavePin(simulation_root=ROOT.public_key, max_evidence_age=3600)
    assert pin.check_fresh(evidence, key_document=KEY_DOC, created_at=T - 3600, now=T).simulated
    with pytest.raises(AttestationInvalid, match=r"stale \(3601 s old; at most 3600 s"):
        pin.check_fresh(evidence, key_document=KEY_DOC, created_at=T - 3601, now=T)
    with pytest.raises(AttestationInvalid, match="dated in the future"):
        pin.check_fresh(evidence, key_document=KEY_DOC, created_at=T + 301, now=T)
    # Offline, as of a past time, age does not matter: a report never changes.
    assert pin.check_as_of(evidence, key_document=KEY_DOC, at_time=T - 10**6).simulated


def test_pins_parse_strictly() -> None:
    pin = parse_enclave_pin({"simulation_root": ROOT.public_key.hex()})
    assert pin.simulation_root == ROOT.public_key
    assert pin.max_evidence_age == DEFAULT_MAX_EVIDENCE_AGE
    assert ROOT.public_key.hex() in pin.describe()
    bad: list[object] = [
        {},
        [],
        {"simulation_root": ROOT.public_key.hex().upper()},
        {"simulation_root": "ab"},
        {"simulation_root": ROOT.public_key.hex(), "extra": 1},
        {"simulation_root": ROOT.public_key.hex(), "max_evidence_age": 0},
        {"simulation_root": ROOT.public_key.hex(), "max_evidence_age": True},
        {"measurements": {"mrtd": ["zz"]}},
        {"measurements": {"unknown": []}},
    ]
    for value in bad:
        with pytest.raises(InvalidInput, match="enclave pin|simulation_root"):
            parse_enclave_pin(value)
    with pytest.raises(InvalidInput):
        parse_simulation_root("00" * 31)
