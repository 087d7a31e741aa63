"""Which enclave an owner's client accepts to seal to: pins, options, first use, freshness."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sealroom.attestation.pins import EnclavePin
from sealroom.attestation.simulated import SimulationRoot
from sealroom.client.local import pin_simulation_root, pinned_simulation_root
from sealroom.client.trust import SealingTrust, verify_enclave_evidence
from sealroom.errors import AttestationInvalid, ProofInvalid
from sealroom.statements import Envelope
from tests.client.client_world import now
from tests.services import enclave_keys

DEPLOYMENT = SimulationRoot.from_private_bytes(hashlib.sha256(b"client-deployment").digest())
STRANGER = SimulationRoot.from_private_bytes(hashlib.sha256(b"client-stranger").digest())
ALLOW = SealingTrust(allow_simulated=True)


def _evidence(root: SimulationRoot, *, age: int = 0) -> Envelope:
    return enclave_keys(now=now() - age, root=root).evidence.envelope


def test_simulated_evidence_needs_explicit_permission() -> None:
    with pytest.raises(AttestationInvalid, match="allow simulated evidence explicitly"):
        verify_enclave_evidence(_evidence(DEPLOYMENT), pins=(), trust=SealingTrust(), now=now())


def test_without_any_pin_the_root_is_taken_on_first_use_and_said_so() -> None:
    got = verify_enclave_evidence(_evidence(STRANGER), pins=(), trust=ALLOW, now=now())
    assert got.first_use_root == STRANGER.public_key
    assert any("pinned on first use" in w for w in got.warnings)
    # Once pinned, another root is refused.
    later = SealingTrust(allow_simulated=True, first_use_root=DEPLOYMENT.public_key)
    with pytest.raises(AttestationInvalid, match="rule enclave"):
        verify_enclave_evidence(_evidence(STRANGER), pins=(), trust=later, now=now())
    ok = verify_enclave_evidence(_evidence(DEPLOYMENT), pins=(), trust=later, now=now())
    assert ok.first_use_root is None


def test_every_pin_must_hold_the_policy_and_the_option() -> None:
    policy = EnclavePin(simulation_root=DEPLOYMENT.public_key)
    ok = verify_enclave_evidence(_evidence(DEPLOYMENT), pins=(policy,), trust=ALLOW, now=now())
    assert ok.first_use_root is None  # the policy pins the root: nothing taken on first use
    with pytest.raises(AttestationInvalid, match="rule enclave: the evidence does not satisfy"):
        verify_enclave_evidence(_evidence(STRANGER), pins=(policy,), trust=ALLOW, now=now())
    option = SealingTrust(allow_simulated=True, simulation_root=STRANGER.public_key)
    for evidence in (_evidence(DEPLOYMENT), _evidence(STRANGER)):  # the two pins disagree
        with pytest.raises(AttestationInvalid, match="rule enclave"):
            verify_enclave_evidence(evidence, pins=(policy,), trust=option, now=now())


def test_the_strictest_max_evidence_age_applies_at_the_current_time() -> None:
    loose = EnclavePin(simulation_root=DEPLOYMENT.public_key)
    strict = EnclavePin(simulation_root=DEPLOYMENT.public_key, max_evidence_age=600)
    old = _evidence(DEPLOYMENT, age=3600)
    assert verify_enclave_evidence(old, pins=(loose,), trust=ALLOW, now=now()).simulated
    with pytest.raises(AttestationInvalid, match="stale"):
        verify_enclave_evidence(old, pins=(loose, strict), trust=ALLOW, now=now())
    # Also the client's own option gets the policies' bound, not a looser default.
    option = SealingTrust(allow_simulated=True, simulation_root=DEPLOYMENT.public_key)
    with pytest.raises(AttestationInvalid, match="stale"):
        verify_enclave_evidence(old, pins=(strict,), trust=option, now=now())


def test_the_first_use_root_is_kept_per_coordinator(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1"
    assert pinned_simulation_root(tmp_path, url) is None
    assert pin_simulation_root(tmp_path, url, DEPLOYMENT.public_key.hex())
    assert not pin_simulation_root(tmp_path, url, DEPLOYMENT.public_key.hex())
    with pytest.raises(ProofInvalid, match="different simulation root"):
        pin_simulation_root(tmp_path, url, STRANGER.public_key.hex())
    assert pinned_simulation_root(tmp_path, url) == DEPLOYMENT.public_key.hex()
    assert pinned_simulation_root(tmp_path, "http://other") is None
