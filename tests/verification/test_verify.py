"""The pipeline: every check in order on what the earlier ones established; a failure raises."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import SealroomError
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.checks import CHECKS, Context, NamedCheck, tee_evidence
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import (
    BundleRejected,
    TrustPolicy,
    run_checks,
    verify_bundle,
)
from tests.verification.scenario import LOG_NAME, build_job, pinned

JOB = build_job()
OUTPUT_CHECK = f"output for {JOB.output.recipient[:12]}..."


def failures(bundle: ProofBundle, trust: TrustPolicy, **kw: object) -> dict[str, str]:
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=trust, **kw)  # type: ignore[arg-type]
    return {c.name: c.detail for c in info.value.report.failures}


def test_complete_bundle_runs_every_check_in_order() -> None:
    report = verify_bundle(JOB.bundle, trust=pinned(JOB), outputs=[JOB.output])
    # "enclave pins" runs only when a policy pins an enclave; this job's has no policy.
    expected = [OUTPUT_CHECK if c.per_output else c.name for c in CHECKS if c.applies is None]
    assert [c.name for c in report.checks] == expected
    pinned_job = build_job(
        dataset_policy=True,
        policy_rules={"k": 5, "enclave": {"simulation_root": JOB.root.public_key.hex()}},
    )
    report = verify_bundle(pinned_job.bundle, trust=pinned(pinned_job), outputs=[pinned_job.output])
    assert [c.name for c in report.checks] == [
        OUTPUT_CHECK if c.per_output else c.name for c in CHECKS
    ]
    assert all(c.passed for c in report.checks)
    assert report.simulated
    assert any("SIMULATED TEE" in w for w in report.warnings)


def test_each_output_is_checked_the_bundles_and_the_callers() -> None:
    bundle = dataclasses.replace(JOB.bundle, outputs=(JOB.output,))
    report = verify_bundle(bundle, trust=pinned(JOB), outputs=[JOB.output])
    assert [c.name for c in report.checks].count(OUTPUT_CHECK) == 2
    forged = dataclasses.replace(JOB.output, body=b'{"rows":4}')
    carried = dataclasses.replace(JOB.bundle, outputs=(forged,))
    assert "differs from what the enclave committed" in failures(carried, pinned(JOB))[OUTPUT_CHECK]


def test_a_failed_check_skips_only_the_checks_that_need_it() -> None:
    other = build_job()  # another enclave's receipt for the same job
    bundle = dataclasses.replace(JOB.bundle, receipt=other.bundle.receipt)
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=pinned(JOB), outputs=[JOB.output])
    report = info.value.report
    assert [(c.name, c.passed) for c in report.checks] == [
        ("enclave key statement", True),
        ("TEE evidence", True),
        ("receipt signature", False),
        ("log checkpoint", True),
        ("log inclusion", False),  # the other receipt was never logged here
    ]


def test_every_independent_failure_is_reported() -> None:
    bundle = dataclasses.replace(JOB.bundle, statements=JOB.bundle.statements[:1])
    failed = failures(bundle, pinned(JOB))
    assert "is not in the bundle" in failed["dataset attestations"]
    assert "is not in the bundle" in failed["owner approvals"]


def test_a_check_listed_before_what_it_needs_fails_closed() -> None:
    context = Context(bundle=JOB.bundle, trust=pinned(JOB))
    report = run_checks(context, (NamedCheck("TEE evidence", tee_evidence), *CHECKS))
    first = report.checks[0]
    assert (first.name, first.passed) == ("TEE evidence", False)
    assert first.detail == "not run: no earlier check established the evidence"


def test_no_checks_is_no_verdict() -> None:
    assert run_checks(Context(bundle=JOB.bundle, trust=pinned(JOB)), ()).checks == ()


def test_unreadable_evidence_counts_as_simulated() -> None:
    bundle = dataclasses.replace(JOB.bundle, evidence=JOB.bundle.receipt)
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=pinned(JOB))
    assert info.value.report.simulated
    assert info.value.report.failures[0].name == "enclave key statement"


def test_simulated_evidence_is_refused_by_default() -> None:
    failed = failures(JOB.bundle, pinned(JOB, allow_simulated=False))
    assert list(failed) == ["TEE evidence"]
    assert "allow_simulated" in failed["TEE evidence"]


def test_unpinned_keys_are_accepted_with_warnings() -> None:
    report = verify_bundle(JOB.bundle, trust=trust_policy(allow_simulated=True))
    text = " ".join(report.warnings)
    assert "not pinned with --log-key" in text
    assert "simulation root taken from the evidence itself" in text


def test_wrong_log_key() -> None:
    other = NoteSigner.from_seed(LOG_NAME, b"\x01" * 32).verifier.vkey
    failed = failures(JOB.bundle, pinned(JOB, log_key=other))
    assert failed == {"log checkpoint": "the bundle names a different log key from the one pinned"}


def test_rejection_explains_every_failure() -> None:
    with pytest.raises(BundleRejected) as info:
        verify_bundle(JOB.bundle, trust=pinned(JOB, allow_simulated=False))
    assert str(info.value) == "failed checks: TEE evidence"
    assert "  - TEE evidence: simulated TEE evidence is not trusted" in info.value.diagnostics()
    assert info.value.report.to_dict()["verified"] is False


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_fails(data: st.DataObject) -> None:
    bundle = dataclasses.replace(JOB.bundle, outputs=(JOB.output,))
    raw = bytearray(bundle.to_json())
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(SealroomError):
        verify_bundle(ProofBundle.from_json(bytes(raw)), trust=pinned(JOB))
