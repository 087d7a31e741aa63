"""The "enclave pins" check: a receipt's enclave must satisfy every input owner's pin."""

from __future__ import annotations

import hashlib

import pytest

from sealroom.attestation.simulated import SimulationRoot
from sealroom.errors import VerificationFailed
from sealroom.verification.checks import enclave_pins
from sealroom.verification.verify import BundleRejected, verify_bundle
from tests.verification.scenario import build_job, context, pinned

ATTACKER = SimulationRoot.from_private_bytes(hashlib.sha256(b"attacker-root").digest())
DEPLOYMENT = SimulationRoot.from_private_bytes(hashlib.sha256(b"sim-root").digest())  # scenario's


def _pin(root: SimulationRoot) -> dict[str, object]:
    return {"k": 5, "enclave": {"simulation_root": root.public_key.hex()}}


def test_a_receipt_from_the_pinned_enclave_passes_and_names_the_pin() -> None:
    job = build_job(dataset_policy=True, policy_rules=_pin(DEPLOYMENT))
    report = verify_bundle(job.bundle, trust=pinned(job), outputs=[job.output])
    check = next(c for c in report.checks if c.name == "enclave pins")
    assert check.passed
    assert DEPLOYMENT.public_key.hex() in check.detail


def test_a_receipt_from_another_enclave_is_refused_whatever_the_verifier_trusts() -> None:
    """The attacker's enclave signs a receipt; the verifier was even told to trust its root
    (or took the root from the evidence): the owner's pin still refuses it."""
    job = build_job(dataset_policy=True, policy_rules=_pin(DEPLOYMENT), enclave_root=ATTACKER)
    for trust in (
        pinned(job, simulation_root=ATTACKER.public_key),
        pinned(job, simulation_root=None),
    ):
        with pytest.raises(BundleRejected) as caught:
            verify_bundle(job.bundle, trust=trust, outputs=[job.output])
        failed = {c.name: c.detail for c in caught.value.report.failures}
        assert list(failed) == ["enclave pins"]
        assert failed["enclave pins"].startswith("rule enclave: the evidence does not satisfy")


def test_the_deployment_root_refuses_a_forged_bundle_of_an_unpinned_policy() -> None:
    """No pin in the policy: verify with the deployment's root (--simulation-root) refuses
    the attacker's enclave in "TEE evidence"; the unpinned policy is a warning."""
    job = build_job(dataset_policy=True, enclave_root=ATTACKER)
    with pytest.raises(BundleRejected) as caught:
        verify_bundle(job.bundle, trust=pinned(job), outputs=[job.output])
    assert [c.name for c in caught.value.report.failures] == ["TEE evidence"]
    assert "enclave pins" not in {c.name for c in caught.value.report.checks}
    with pytest.raises(VerificationFailed, match="no policy pins an enclave"):
        enclave_pins(context(job, pinned(job, simulation_root=ATTACKER.public_key)))
