"""The offline log checks: witness cosignatures (m of n) and consistency with a trusted checkpoint."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sealroom.errors import ProofInvalid, StatementFormatError, VerificationFailed
from sealroom.transparency.checkpoint import Checkpoint, NoteSigner, sign_checkpoint, split_note
from sealroom.transparency.cosignature import WitnessPolicy, add_signature_lines
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.bundle import ConsistencyProof, ProofBundle
from sealroom.verification.checks import (
    CHECKS,
    checks_for,
    log_consistency,
    witness_cosignatures,
)
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import BundleRejected, verify_bundle
from tests.transparency.witness_helpers import cosigner
from tests.verification.scenario import LOG_NAME, Job, build_job, context, pinned

REGRESSION = Path(__file__).resolve().parent.parent / "vectors" / "proof_bundles"
T = 1_790_000_500
WITNESSES = [cosigner(f"w{i}.test/witness") for i in range(3)]
VKEYS = [w.key.vkey for w in WITNESSES]


@pytest.fixture(scope="module")
def job() -> Job:
    return build_job()


def cosign(bundle: ProofBundle, *indices: int) -> ProofBundle:
    note = bundle.log.checkpoint
    body, _ = split_note(note)
    lines = [WITNESSES[i].cosign(body, T + i) for i in indices]
    log = dataclasses.replace(bundle.log, checkpoint=add_signature_lines(note, lines))
    return dataclasses.replace(bundle, log=log)


def checkpoint_at(job: Job, size: int, log: TransparencyLog | None = None) -> str:
    """A checkpoint of ``log`` (the job's by default) at an earlier ``size``, signed by its key."""
    source = log or job.log
    return sign_checkpoint(Checkpoint(LOG_NAME, size, source.root_at(size)), job.log_signer)


def extended(job: Job, more: int, tag: bytes = b"later") -> TransparencyLog:
    """A copy of the job's log with ``more`` entries after it."""
    log = TransparencyLog(MemoryLogStore())
    log.append_many([job.log.entry(i) for i in range(job.log.size())])
    log.append_many([tag + b" %d" % i for i in range(more)])
    return log


def with_proof(bundle: ProofBundle, size: int, proof: list[bytes]) -> ProofBundle:
    log = dataclasses.replace(bundle.log, consistency=(ConsistencyProof(size, tuple(proof)),))
    return dataclasses.replace(bundle, log=log)


# --- which checks run ----------------------------------------------------------------------


def test_the_log_checks_run_only_when_asked_for() -> None:
    assert checks_for(trust_policy()) == CHECKS
    names = [c.name for c in checks_for(trust_policy(witnesses=WitnessPolicy.parse(VKEYS, 1)))]
    assert names[-3:] == ["log checkpoint", "witness cosignatures", "log inclusion"]
    both = trust_policy(checkpoint="x", witnesses=WitnessPolicy.parse(VKEYS, 1))
    assert [c.name for c in checks_for(both)][-4:] == [
        "log checkpoint",
        "witness cosignatures",
        "log consistency",
        "log inclusion",
    ]


@pytest.mark.parametrize("name", ["overlap-cloudmolty", "stats-dp-analyst"])
def test_regression_bundles_against_their_own_checkpoint_and_witnesses(name: str) -> None:
    bundle = ProofBundle.from_json((REGRESSION / name / "bundle.json").read_bytes())
    own = trust_policy(allow_simulated=True, checkpoint=bundle.log.checkpoint)
    report = verify_bundle(bundle, trust=own)
    assert "log consistency" in [c.name for c in report.checks]
    witnessed = trust_policy(allow_simulated=True, witnesses=WitnessPolicy.parse(VKEYS[:1]))
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=witnessed)
    assert [c.name for c in info.value.report.failures] == ["witness cosignatures"]


# --- witness cosignatures ------------------------------------------------------------------


def test_witness_cosignatures_m_of_n(job: Job) -> None:
    policy = WitnessPolicy.parse(VKEYS, 2)
    two = cosign(job.bundle, 0, 2)
    passed = witness_cosignatures(
        context(dataclasses.replace(job, bundle=two), pinned(job, witnesses=policy))
    )
    assert "2 of the 3 named witnesses" in passed.detail
    assert f"at unix time {T}" in passed.detail
    one = cosign(job.bundle, 1)
    with pytest.raises(ProofInvalid, match="1 of the 2 required"):
        witness_cosignatures(
            context(dataclasses.replace(job, bundle=one), pinned(job, witnesses=policy))
        )
    with pytest.raises(VerificationFailed, match="no witnesses"):
        witness_cosignatures(context(job))
    # the whole pipeline: a cosigned bundle verifies, and the cosignatures change nothing else
    report = verify_bundle(two, trust=pinned(job, witnesses=policy), outputs=[job.output])
    assert report.checks[-2].name == "witness cosignatures"


def test_a_forged_cosignature_fails_the_bundle(job: Job) -> None:
    two = cosign(job.bundle, 0, 1)
    body, sigs = split_note(two.log.checkpoint)
    bad = sigs[-1].signature[:-1] + bytes([sigs[-1].signature[-1] ^ 0x40])
    forged = body + "\n" + "".join(s.line() for s in sigs[:-1])
    forged += type(sigs[-1])(sigs[-1].name, sigs[-1].key_id, bad).line()
    bundle = dataclasses.replace(two, log=dataclasses.replace(two.log, checkpoint=forged))
    with pytest.raises(BundleRejected) as info:
        verify_bundle(bundle, trust=pinned(job, witnesses=WitnessPolicy.parse(VKEYS, 1)))
    assert [c.name for c in info.value.report.failures] == ["witness cosignatures"]


# --- consistency with a trusted checkpoint -------------------------------------------------


def consistency(job: Job, bundle: ProofBundle, trusted: str) -> str:
    ctx = context(dataclasses.replace(job, bundle=bundle), pinned(job, checkpoint=trusted))
    return log_consistency(ctx).detail


def test_the_same_checkpoint_is_consistent(job: Job) -> None:
    assert "is the trusted one" in consistency(job, job.bundle, job.bundle.log.checkpoint)


def test_a_later_trusted_checkpoint_needs_a_carried_proof(job: Job) -> None:
    later = extended(job, 9)
    size = job.log.size()
    trusted = checkpoint_at(job, size + 9, later)
    with pytest.raises(ProofInvalid, match="carries no consistency proof"):
        consistency(job, job.bundle, trusted)
    proved = with_proof(job.bundle, size + 9, later.consistency_proof(size, size + 9))
    assert "is a prefix of the trusted one" in consistency(job, proved, trusted)
    wrong = with_proof(job.bundle, size + 9, later.consistency_proof(size - 1, size + 9))
    with pytest.raises(ProofInvalid, match="not consistent"):
        consistency(job, wrong, trusted)


def test_an_earlier_trusted_checkpoint_is_extended_by_the_bundle(job: Job) -> None:
    size = job.log.size()
    trusted = checkpoint_at(job, 2)
    proved = with_proof(job.bundle, 2, job.log.consistency_proof(2, size))
    assert "extends the trusted one" in consistency(job, proved, trusted)
    empty = sign_checkpoint(Checkpoint(LOG_NAME, 0, job.log.root_at(0)), job.log_signer)
    assert "extends" in consistency(job, job.bundle, empty)  # the empty tree needs no proof


def test_a_fork_with_the_same_key_is_refused(job: Job) -> None:
    size = job.log.size()
    # the same key signs another history of the same size ...
    other = TransparencyLog(MemoryLogStore())
    other.append_many([b"forged %d" % i for i in range(size)])
    with pytest.raises(VerificationFailed, match="fork"):
        consistency(job, job.bundle, checkpoint_at(job, size, other))
    # ... or a larger one, with a proof from its own tree
    bigger = TransparencyLog(MemoryLogStore())
    bigger.append_many([job.log.entry(0), *(b"forged %d" % i for i in range(size + 3))])
    proved = with_proof(job.bundle, size + 4, bigger.consistency_proof(size, size + 4))
    with pytest.raises(ProofInvalid, match="fork or bad proof"):
        consistency(job, proved, checkpoint_at(job, size + 4, bigger))


def test_a_checkpoint_of_another_log_is_refused(job: Job) -> None:
    stranger = NoteSigner.from_seed(LOG_NAME, b"\x99" * 32)
    note = sign_checkpoint(
        Checkpoint(LOG_NAME, job.log.size(), job.log.root_at(job.log.size())), stranger
    )
    with pytest.raises(ProofInvalid, match="not a checkpoint of this bundle's log"):
        consistency(job, job.bundle, note)


# --- the bundle format ---------------------------------------------------------------------


def test_carried_proofs_round_trip_and_old_bundles_keep_their_bytes(job: Job) -> None:
    later = extended(job, 4)
    size = job.log.size()
    proved = with_proof(job.bundle, size + 4, later.consistency_proof(size, size + 4))
    assert ProofBundle.from_json(proved.to_json()) == proved
    assert b'"consistency"' not in job.bundle.to_json()
    for name in ("overlap-cloudmolty", "stats-dp-analyst"):
        raw = (REGRESSION / name / "bundle.json").read_bytes()
        assert ProofBundle.from_json(raw).to_json() == raw


@pytest.mark.parametrize(
    "consistency",
    [
        [],  # an empty list is not canonical (it is left out)
        [{"size": 9, "proof": []}, {"size": 9, "proof": []}],
        [{"size": 9, "proof": [], "extra": 1}],
        [{"size": -1, "proof": []}],
        [{"size": 9, "proof": ["AAAA"]}],
    ],
)
def test_malformed_carried_proofs_are_refused(job: Job, consistency: object) -> None:
    doc = json.loads(job.bundle.to_json())
    doc["log"]["consistency"] = consistency
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(StatementFormatError):
        ProofBundle.from_json(raw)


# --- `sealroom verify --checkpoint` in a real process --------------------------------------


def fork_of(job: Job, before: list[bytes]) -> ProofBundle:
    """The job's bundle re-made on another log under the same key: ``before``, then the job's
    entries (so every statement is in it, at other indices)."""
    log = TransparencyLog(MemoryLogStore())
    log.append_many(before)
    first = log.append_many([job.log.entry(i) for i in range(job.log.size())])
    return assemble_bundle(
        receipt=job.bundle.receipt,
        evidence=job.bundle.evidence,
        statements=job.bundle.statements,
        log=log,
        indices={e.digest: first + e.index for e in job.bundle.log.entries},
        checkpoint=log.checkpoint(job.log_signer),
        verifier_key=job.log_signer.verifier.vkey,
        salts={e.digest: e.salt for e in job.bundle.log.entries if e.salt is not None},
    )


def verify_cli(
    tmp_path: Path, bundle: ProofBundle, trusted: str
) -> tuple[int, list[dict[str, Any]]]:
    (tmp_path / "bundle.json").write_bytes(bundle.to_json())
    (tmp_path / "trusted.note").write_text(trusted)
    done = subprocess.run(
        [sys.executable, "-m", "sealroom.cli", "verify", str(tmp_path / "bundle.json"),
         "--allow-simulated", "--checkpoint", str(tmp_path / "trusted.note"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    failed = [c for c in json.loads(done.stdout)["checks"] if not c["passed"]]
    return done.returncode, failed


def test_verify_detects_a_forked_log(tmp_path: Path, job: Job) -> None:
    """Two forks of one log, both signed with its key: a bundle from one is refused against a
    trusted checkpoint of the other; a bundle from the trusted history passes."""
    size = job.log.size()
    forked = fork_of(job, [b"forged"])  # size + 1 entries, another history
    same_size = checkpoint_at(job, size + 1, extended(job, 1))
    code, failed = verify_cli(tmp_path, forked, same_size)
    assert code == 1
    assert [c["name"] for c in failed] == ["log consistency"]
    assert "fork" in failed[0]["detail"]

    longer = extended(job, 6)
    trusted = checkpoint_at(job, size + 6, longer)
    code, failed = verify_cli(tmp_path, forked, trusted)  # no proof can relate them offline
    assert (code, [c["name"] for c in failed]) == (1, ["log consistency"])
    assert "carries no consistency proof" in failed[0]["detail"]
    spliced = with_proof(forked, size + 6, longer.consistency_proof(size + 1, size + 6))
    code, failed = verify_cli(tmp_path, spliced, trusted)
    assert "fork or bad proof" in failed[0]["detail"]

    honest = with_proof(job.bundle, size + 6, longer.consistency_proof(size, size + 6))
    code, failed = verify_cli(tmp_path, honest, trusted)
    assert (code, failed) == (0, [])


def test_witnesses_required_needs_witnesses(tmp_path: Path, job: Job) -> None:
    from typer.testing import CliRunner

    from sealroom.cli.main import app

    (tmp_path / "bundle.json").write_bytes(job.bundle.to_json())
    args = ["verify", str(tmp_path / "bundle.json"), "--allow-simulated"]
    done = CliRunner().invoke(app, [*args, "--witnesses-required", "2"])
    assert done.exit_code == 2
    assert "needs at least one --witness" in done.output
    done = CliRunner().invoke(app, [*args, "--witness", VKEYS[0], "--witnesses-required", "2"])
    assert done.exit_code == 2
    assert "between 1 and 1" in done.output
