from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.errors import SealroomError, StatementFormatError
from sealroom.statements import Receipt, ReleasedOutput, canonical_json
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, TrustPolicy, verify_bundle
from tests.helpers import T0, identity
from tests.verification.scenario import LOG_NAME, Job, build_job

JOB = build_job()


def pinned(job: Job = JOB, **overrides: object) -> TrustPolicy:
    options: dict[str, object] = {
        "allow_simulated": True,
        "log_key": job.log_signer.verifier.vkey,
        "simulation_root": job.root.public_key,
    }
    options.update(overrides)
    return trust_policy(**options)  # type: ignore[arg-type]


def failures(bundle: ProofBundle, trust: TrustPolicy, **kw: object) -> dict[str, str]:
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=trust, **kw)  # type: ignore[arg-type]
    return {c.name: c.detail for c in info.value.report.failures}


def test_complete_bundle_verifies() -> None:
    report = verify_bundle(JOB.bundle, trust=pinned(), outputs=[JOB.output])
    names = [c.name for c in report.checks]
    assert names == [
        "enclave key statement",
        "TEE evidence",
        "receipt signature",
        "receipt names this enclave",
        "computation request",
        "computation code",
        "timing",
        "dataset attestations",
        "owner approvals",
        "recipients",
        names[10],
        "log checkpoint",
        "log inclusion",
    ]
    assert names[10].startswith("output for ")
    assert all(c.passed for c in report.checks)
    assert report.simulated
    assert any("SIMULATED TEE" in w for w in report.warnings)


def test_bundle_round_trips_canonically() -> None:
    data = JOB.bundle.to_json()
    assert ProofBundle.from_json(data) == JOB.bundle
    assert ProofBundle.from_json(data).to_json() == data


def test_simulated_evidence_is_refused_by_default() -> None:
    failed = failures(JOB.bundle, pinned(allow_simulated=False))
    assert list(failed) == ["TEE evidence"]
    assert "allow_simulated" in failed["TEE evidence"]


def test_unpinned_keys_are_accepted_with_warnings() -> None:
    report = verify_bundle(JOB.bundle, trust=trust_policy(allow_simulated=True))
    text = " ".join(report.warnings)
    assert "not pinned with --log-key" in text
    assert "simulation root taken from the evidence itself" in text


def test_wrong_simulation_root() -> None:
    other = build_job().root.public_key[::-1]
    failed = failures(JOB.bundle, pinned(simulation_root=other))
    assert "TEE evidence" in failed


def test_wrong_log_key() -> None:
    other = NoteSigner.from_seed(LOG_NAME, b"\x01" * 32).verifier.vkey
    failed = failures(JOB.bundle, pinned(log_key=other))
    assert failed == {"log checkpoint": "the bundle names a different log key from the one pinned"}
    # And a bundle that carries the other key cannot satisfy the pinned one either.
    swapped = dataclasses.replace(
        JOB.bundle, log=dataclasses.replace(JOB.bundle.log, verifier_key=other)
    )
    assert "log checkpoint" in failures(swapped, pinned(log_key=other))


def test_approval_by_someone_other_than_the_owner() -> None:
    job = build_job(approver=identity("mallory"))
    failed = failures(job.bundle, pinned(job))
    assert "is not signed by the owner" in failed["owner approvals"]


def test_rejection_is_not_an_approval() -> None:
    job = build_job(approval_overrides={"decision": "reject"})
    assert "is a rejection" in failures(job.bundle, pinned(job))["owner approvals"]


def test_missing_statement() -> None:
    bundle = dataclasses.replace(JOB.bundle, statements=JOB.bundle.statements[:1])
    failed = failures(bundle, pinned())
    assert "is not in the bundle" in failed["dataset attestations"]
    assert "is not in the bundle" in failed["owner approvals"]


def test_room_policy_is_listed_and_verifies() -> None:
    job = build_job(room=True)
    verify_bundle(job.bundle, trust=pinned(job), outputs=[job.output])
    receipt = job.bundle.receipt.open(Receipt).statement
    room = receipt.decisions[0].room_policy
    assert room is not None
    assert room in receipt.policies
    assert job.bundle.statement(room) is not None


def test_room_policy_mismatches_are_caught() -> None:
    # The enclave decided without the room policy the request named.
    dropped = build_job(room=True, decision_room=None)
    assert (
        "omits the room policy" in failures(dropped.bundle, pinned(dropped))["dataset attestations"]
    )
    missing = build_job(room=True, bundle_room=False)
    assert (
        "is not in the bundle" in failures(missing.bundle, pinned(missing))["dataset attestations"]
    )
    added = build_job(decision_room="sha256:" + "ab" * 32)
    assert (
        "names another room policy" in failures(added.bundle, pinned(added))["dataset attestations"]
    )


def test_receipt_after_request_expiry() -> None:
    job = build_job(receipt_time=T0 + 7200)
    assert "outside the request's validity" in failures(job.bundle, pinned(job))["timing"]


def test_output_that_differs_from_the_receipt() -> None:
    forged = dataclasses.replace(JOB.output, body=b'{"rows":4}')
    failed = failures(JOB.bundle, pinned(), outputs=[forged])
    (name,) = failed
    assert name.startswith("output for ")
    assert "differs from what the enclave committed" in failed[name]


def test_output_for_another_party() -> None:
    stranger = dataclasses.replace(JOB.output, recipient=identity("stranger").party_id)
    (detail,) = failures(JOB.bundle, pinned(), outputs=[stranger]).values()
    assert "released nothing to" in detail


def test_receipt_signed_by_another_key() -> None:
    other = build_job()  # a different enclave (fresh keys)
    bundle = dataclasses.replace(JOB.bundle, receipt=other.bundle.receipt)
    failed = failures(bundle, pinned())
    assert "other than the attested enclave key" in failed["receipt signature"]


def test_statement_missing_from_log() -> None:
    entries = tuple(e for e in JOB.bundle.log.entries if e.digest != JOB.bundle.receipt.digest)
    bundle = dataclasses.replace(
        JOB.bundle, log=dataclasses.replace(JOB.bundle.log, entries=entries)
    )
    assert "no log proof for sealroom.receipt" in failures(bundle, pinned())["log inclusion"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "unknown proof bundle version 2"),
        (lambda d: d.update(type="x"), "not a proof bundle"),
        (lambda d: d.update(extra=1), "unknown \\['extra'\\]"),
        (lambda d: d["log"]["entries"][0].update(index=-1), "non-negative integer"),
        (lambda d: d["log"]["entries"][0]["proof"].append("AA=="), "expected 32 bytes"),
    ],
)
def test_malformed_bundles(mutate: object, message: str) -> None:
    doc = json.loads(JOB.bundle.to_json())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(StatementFormatError, match=message):
        ProofBundle.from_json(canonical_json(doc))


def test_trailing_garbage() -> None:
    with pytest.raises(StatementFormatError):
        ProofBundle.from_json(JOB.bundle.to_json() + b"\n")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_fails(data: st.DataObject) -> None:
    bundle = dataclasses.replace(JOB.bundle, outputs=(JOB.output,))
    raw = bytearray(bundle.to_json())
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(SealroomError):
        verify_bundle(ProofBundle.from_json(bytes(raw)), trust=pinned())


def test_released_output_parsing() -> None:
    data = JOB.output.to_json()
    assert ReleasedOutput.from_json(data) == JOB.output
    with pytest.raises(StatementFormatError):
        ReleasedOutput.from_json(data.replace(b'"version":1', b'"version":2'))
