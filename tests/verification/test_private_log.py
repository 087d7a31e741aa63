"""Bundles of private statements logged as salted commitments: they verify offline with the
salts they carry, and no other opening (another salt, none, another statement) passes."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from sealroom.errors import StatementFormatError
from sealroom.statements import is_public
from sealroom.transparency.entries import SALT_SIZE, parse_committed_entry
from sealroom.verification.bundle import LogEntryProof, ProofBundle
from sealroom.verification.verify import BundleRejected, verify_bundle
from tests.verification.scenario import build_job, pinned

JOB = build_job()


def _with_entry(bundle: ProofBundle, digest: str, **changes: object) -> ProofBundle:
    entries = tuple(
        dataclasses.replace(e, **changes) if e.digest == digest else e  # type: ignore[arg-type]
        for e in bundle.log.entries
    )
    return dataclasses.replace(bundle, log=dataclasses.replace(bundle.log, entries=entries))


def _log_failure(bundle: ProofBundle) -> str:
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=pinned(JOB))
    failed = {c.name: c.detail for c in info.value.report.failures}
    assert list(failed) == ["log inclusion"]
    return failed["log inclusion"]


def test_private_statements_are_committed_leaves_and_verify_with_their_salts() -> None:
    bundle = JOB.bundle
    private = {e.digest for e in (bundle.receipt, *bundle.statements) if not is_public(e.type)}
    assert len(private) == 3  # request, approval, receipt
    for proof in bundle.log.entries:
        leaf = JOB.log.entry(proof.index)
        if proof.digest in private:
            assert proof.salt is not None
            assert len(proof.salt) == SALT_SIZE
            assert parse_committed_entry(leaf) is not None
            assert b"computation" not in leaf
            assert JOB.requester.party_id.encode() not in leaf
        else:
            assert proof.salt is None
            assert parse_committed_entry(leaf) is None
    report = verify_bundle(bundle, trust=pinned(JOB), outputs=[JOB.output])
    inclusion = next(c for c in report.checks if c.name == "log inclusion")
    assert inclusion.passed
    assert "3 as salted commitments" in inclusion.detail


def test_another_salt_does_not_open_the_leaf() -> None:
    digest = JOB.bundle.receipt.digest
    forged = _with_entry(JOB.bundle, digest, salt=hashlib.sha256(b"guess").digest())
    _log_failure(forged)


def _proof(digest: str) -> LogEntryProof:
    found = JOB.bundle.log.entry_for(digest)
    assert found is not None
    return found


REQUEST = JOB.bundle.statements[0]
APPROVAL = JOB.bundle.statements[1]


def test_a_committed_statement_cannot_be_passed_off_as_a_clear_leaf() -> None:
    request = _proof(REQUEST.digest)
    assert request.salt is not None
    _log_failure(_with_entry(JOB.bundle, request.digest, salt=None))


def test_a_salt_on_a_clear_leaf_does_not_verify() -> None:
    evidence = JOB.bundle.evidence.digest
    _log_failure(_with_entry(JOB.bundle, evidence, salt=b"\x01" * SALT_SIZE))


def test_salts_round_trip_canonically_and_bad_salts_are_format_errors() -> None:
    bundle = JOB.bundle
    assert ProofBundle.from_json(bundle.to_json()) == bundle
    entry = next(e for e in bundle.log.entries if e.salt is not None)
    as_dict = entry.to_dict()
    for bad in ("AAAA", 7, None):
        with pytest.raises(StatementFormatError):
            LogEntryProof.from_dict({**as_dict, "salt": bad})
    with pytest.raises(StatementFormatError):
        LogEntryProof.from_dict({**as_dict, "extra": 1})


def test_bundles_logged_in_clear_still_verify_unchanged() -> None:
    clear = build_job(committed=False)
    assert all(e.salt is None for e in clear.bundle.log.entries)
    assert b'"salt"' not in clear.bundle.to_json()
    report = verify_bundle(clear.bundle, trust=pinned(clear), outputs=[clear.output])
    assert all(c.passed for c in report.checks)
    inclusion = next(c for c in report.checks if c.name == "log inclusion")
    assert "commitments" not in inclusion.detail


def test_the_wrong_statement_under_a_salt_is_refused() -> None:
    # The request's salt and leaf, but the approval's statement bytes under that digest.
    bundle = JOB.bundle
    req, appr = _proof(REQUEST.digest), _proof(APPROVAL.digest)
    swapped = _with_entry(bundle, appr.digest, index=req.index, proof=req.proof, salt=req.salt)
    with pytest.raises(BundleRejected):
        verify_bundle(swapped, trust=pinned(JOB))
