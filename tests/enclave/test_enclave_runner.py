from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import pytest

from sealroom.computations import DEFAULT_K, Registry
from sealroom.crypto import sealing
from sealroom.crypto.commit import commit_bytes_stream, iter_canonical
from sealroom.crypto.keys import Identity, PartyId, b64encode
from sealroom.crypto.sealing import (
    SUITE_X25519_AES256GCM,
    SUITE_XWING_AES256GCM,
    SealContext,
    SealedHeader,
    open_sealed,
    seal,
)
from sealroom.enclave.ledger import SqlBudgetLedger
from sealroom.enclave.runner import JobFailed, JobMaterials, JobOutput, execute_job
from sealroom.enclave.state import EnclaveState
from sealroom.errors import (
    CommitmentMismatch,
    Conflict,
    DecryptionFailed,
    InvalidInput,
    NotFound,
    PolicyDenied,
    SealroomError,
    SignatureInvalid,
    VerificationFailed,
)
from sealroom.statements import (
    CommitmentRef,
    ComputationRef,
    ReleasedOutput,
    canonical_json,
    sign_statement,
)
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.trust import trust_policy
from sealroom.verification.verify import verify_bundle
from tests.enclave.enclave_world import (
    ALICE_RULES,
    NOW,
    PRIVATE,
    REGISTRY,
    SEAL_CHUNK,
    SHARED,
    WORLD,
    Case,
    attest,
    build_case,
    forge,
    seal_input,
    sign_policy,
    text_table,
)
from tests.helpers import T0, approval, attestation, digest_hex, request

CASE = build_case()
SALT = b"\x05" * 32


def run(
    materials: JobMaterials,
    *,
    now: int = NOW,
    registry: Registry = REGISTRY,
    ledger: SqlBudgetLedger | None = None,
) -> JobOutput:
    """Run a job; without ``ledger``, on fresh (empty) enclave state of its own."""
    own = EnclaveState.create_temporary()
    try:
        return execute_job(
            materials,
            keys=WORLD.enclave,
            registry=registry,
            ledger=ledger or own.ledger,
            history=own.history,
            now=now,
            random=lambda n: SALT[:n],
        )
    finally:
        own.close()


def refused(materials: JobMaterials, step: str, cause: type[SealroomError], **kw: Any) -> str:
    """Run a job that must fail at ``step`` with ``cause``; return its public reason."""
    with pytest.raises(JobFailed) as info:
        run(materials, **kw)
    err = info.value
    assert (err.step, type(err.cause)) == (step, cause), err.reason
    assert err.reason.startswith(f"{step}: ")
    assert err.code == "job_failed"
    return err.reason


def open_output(output: JobOutput, case: Case, who: Identity) -> ReleasedOutput:
    context = SealContext(
        request_digest=bytes.fromhex(case.request.digest.removeprefix("sha256:")),
        recipient=who.party_id,
        purpose="result",
    )
    return ReleasedOutput.from_json(open_sealed(output.sealed_outputs[who.party_id], who, context))


# --- the happy path -------------------------------------------------------------------------


def test_job_releases_to_all_parties_and_the_receipt_verifies() -> None:
    output = run(CASE.materials())
    receipt = output.receipt.statement
    expected = canonical_json({"rows": [4, 6], "shared_terms": ["attestation"]})
    parties = (WORLD.carol, WORLD.alice, WORLD.bob)
    assert set(output.sealed_outputs) == {p.party_id for p in parties}
    opened = [open_output(output, CASE, p) for p in parties]
    for party, released in zip(parties, opened, strict=True):
        assert released.body == expected  # k=2 for Alice (her policy), DEFAULT_K=5 for Bob
        assert released.recipient == party.party_id
        assert released.request == CASE.request.digest
        assert released.salt == SALT
    assert receipt.request == CASE.request.digest
    assert receipt.approvals == tuple(a.digest for a in CASE.approvals)
    assert [i.dataset for i in receipt.inputs] == [a.digest for a in CASE.attestations]
    assert [i.commitment_root for i in receipt.inputs] == [
        a.statement.commitment.root for a in CASE.attestations
    ]
    assert receipt.policies == (CASE.policies[0].digest,)
    assert receipt.computation == SHARED.ref()
    assert receipt.evidence == WORLD.enclave.evidence.digest
    assert (receipt.tee, receipt.simulated, receipt.issued_at) == ("simulated", True, NOW)
    assert output.receipt.envelope.signer == WORLD.enclave.public

    log = TransparencyLog(MemoryLogStore())
    log_signer = NoteSigner.from_seed(
        "test.sealroom.example/enclave", hashlib.sha256(b"l").digest()
    )
    statements = [
        CASE.request.envelope,
        *(a.envelope for a in CASE.approvals),
        *(a.envelope for a in CASE.attestations),
        *(p.envelope for p in CASE.policies),
    ]
    logged = [WORLD.enclave.evidence.envelope, *statements, output.receipt.envelope]
    indices: dict[str, int] = {env.digest: log.append(env.to_json()) for env in logged}
    bundle = assemble_bundle(
        receipt=output.receipt.envelope,
        evidence=WORLD.enclave.evidence.envelope,
        statements=statements,
        log=log,
        indices=indices,
        checkpoint=log.checkpoint(log_signer),
        verifier_key=log_signer.verifier.vkey,
    )
    trust = trust_policy(
        allow_simulated=True,
        log_key=log_signer.verifier.vkey,
        simulation_root=WORLD.root.public_key,
    )
    report = verify_bundle(bundle, trust=trust, outputs=opened)
    assert all(c.passed for c in report.checks)
    assert sum(c.name.startswith("output for ") for c in report.checks) == 3


def test_requester_only_release_seals_to_the_requester_alone() -> None:
    case = build_case(computation=PRIVATE, alice_mode="manual")
    output = run(case.materials())
    assert list(output.sealed_outputs) == [WORLD.carol.party_id]
    assert [o.recipient for o in output.receipt.statement.outputs] == [WORLD.carol.party_id]
    released = open_output(output, case, WORLD.carol)
    assert released.body == canonical_json({"rows": [4, 6], "shared_terms": ["attestation"]})
    # Sealed for Carol's result: Alice's key and an "input" context both fail.
    sealed = output.sealed_outputs[WORLD.carol.party_id]
    with pytest.raises(DecryptionFailed):
        open_sealed(
            sealed,
            WORLD.alice,
            SealContext(bytes.fromhex(case.request.digest[7:]), WORLD.alice.party_id, "result"),
        )
    with pytest.raises(DecryptionFailed):
        open_sealed(
            sealed,
            WORLD.carol,
            SealContext(bytes.fromhex(case.request.digest[7:]), WORLD.carol.party_id, "input"),
        )


def test_default_k_applies_without_a_policy() -> None:
    # No policy for Alice either: k=DEFAULT_K for both, and Alice's terms occur < 5 times.
    case = build_case(alice_rules=None, alice_mode="manual")
    assert DEFAULT_K == 5
    output = run(case.materials())
    body = open_output(output, case, WORLD.carol).body
    assert body == canonical_json({"rows": [4, 6], "shared_terms": []})
    assert output.receipt.statement.policies == ()


def test_input_order_follows_the_request_not_the_coordinator() -> None:
    m = CASE.materials()
    shuffled = dataclasses.replace(
        m, approvals=m.approvals[::-1], attestations=m.attestations[::-1]
    )
    receipt = run(shuffled).receipt.statement
    assert [i.dataset for i in receipt.inputs] == list(CASE.request.statement.inputs)
    assert receipt.approvals == tuple(a.digest for a in CASE.approvals)


# --- step 1: the request ----------------------------------------------------------------------


def test_expired_request() -> None:
    reason = refused(CASE.materials(), "request", Conflict, now=T0 + 3601)
    assert "expired" in reason


def test_request_from_the_future() -> None:
    refused(CASE.materials(), "request", InvalidInput, now=T0 - 1)


def test_request_signed_by_someone_else() -> None:
    forged = forge(CASE.request.envelope, WORLD.mallory)
    refused(CASE.materials(request=forged), "request", SignatureInvalid)


def test_enclave_evidence_newer_than_the_job() -> None:
    refused(CASE.materials(), "enclave", VerificationFailed, now=T0 - 200)


# --- step 2: computation and parameters -------------------------------------------------------


def test_unknown_computation() -> None:
    ref = ComputationRef(id="no-such", version="1.0.0", code_digest=SHARED.code_digest)
    case = build_case(computation_ref=ref)
    reason = refused(case.materials(), "computation", NotFound)
    assert "no-such" in reason


def test_wrong_code_digest() -> None:
    ref = ComputationRef(id=SHARED.id, version=SHARED.version, code_digest=digest_hex("other"))
    case = build_case(computation_ref=ref)
    reason = refused(case.materials(), "computation", InvalidInput)
    assert "code digest" in reason


def test_bad_parameters() -> None:
    case = build_case(parameters={"min_length": "three"})
    reason = refused(case.materials(), "parameters", InvalidInput)
    assert "min_length" in reason
    case = build_case(parameters={"min_length": 3, "extra": 1})
    refused(case.materials(), "parameters", InvalidInput)


def test_wrong_number_of_inputs_for_the_computation() -> None:
    att = CASE.attestations[0]
    req = sign_statement(
        request(WORLD.carol, (att.digest,), computation=SHARED.ref(), parameters={}),
        WORLD.carol,
    )
    refused(CASE.materials(request=req.envelope), "computation", InvalidInput)


# --- step 3: attestations ---------------------------------------------------------------------


def test_missing_attestation() -> None:
    m = CASE.materials(attestations=(CASE.attestations[0].envelope,))
    assert "no attestation" in refused(m, "attestations", InvalidInput)


def test_extra_attestation() -> None:
    other = attest(WORLD.alice, text_table(["unrelated"]), None)
    m = CASE.materials(attestations=(*CASE.materials().attestations, other.envelope))
    assert "not an input" in refused(m, "attestations", InvalidInput)


def test_duplicate_attestation() -> None:
    env = CASE.attestations[0].envelope
    m = CASE.materials(attestations=(env, env, CASE.attestations[1].envelope))
    refused(m, "attestations", InvalidInput)


def test_attestation_signed_by_someone_else() -> None:
    # Same payload, so the same digest the request names, but Mallory signed it.
    forged = forge(CASE.attestations[1].envelope, WORLD.mallory)
    m = CASE.materials(attestations=(CASE.attestations[0].envelope, forged))
    refused(m, "attestations", SignatureInvalid)


# --- step 4: policies -------------------------------------------------------------------------


def test_missing_policy() -> None:
    reason = refused(CASE.materials(policies=()), "policies", InvalidInput)
    assert "missing" in reason


def test_extra_policy() -> None:
    extra = sign_policy(WORLD.bob, ALICE_RULES, name="bob's")
    m = CASE.materials(policies=(CASE.policies[0].envelope, extra.envelope))
    assert "not the policy of any input" in refused(m, "policies", InvalidInput)


def test_policy_signed_by_someone_else() -> None:
    forged = forge(CASE.policies[0].envelope, WORLD.mallory)
    refused(CASE.materials(policies=(forged,)), "policies", SignatureInvalid)


def test_policy_of_another_owner() -> None:
    # Alice's attestation names a policy that Bob wrote and signed.
    bobs = sign_policy(WORLD.bob, ALICE_RULES)
    att = attest(WORLD.alice, CASE.tables[0], bobs.digest)
    case = _with_alice_attestation(att, policies=(bobs,))
    refused(case.materials(), "policies", VerificationFailed)


def test_policy_denies_the_computation() -> None:
    case = build_case(alice_rules={"allow": [{"id": "something-else"}]}, alice_mode="manual")
    reason = refused(case.materials(), "policies", PolicyDenied)
    assert "does not allow shared-terms 1.0.0" in reason


def test_policy_denies_the_requester() -> None:
    rules = {**ALICE_RULES, "requesters": [WORLD.mallory.party_id]}
    case = build_case(alice_rules=rules)
    reason = refused(case.materials(), "policies", PolicyDenied)
    assert "allowlist" in reason


def test_empty_policy_denies() -> None:
    case = build_case(alice_rules={}, alice_mode="manual")
    refused(case.materials(), "policies", PolicyDenied)


def test_invalid_policy_rules() -> None:
    case = build_case(alice_rules={"allow": [{"id": "shared-terms"}], "k": 0}, alice_mode="manual")
    assert "policy rules k" in refused(case.materials(), "policies", InvalidInput)


# --- step 5: approvals ------------------------------------------------------------------------


def test_policy_mode_approval_without_an_automatic_rule() -> None:
    rules = {**ALICE_RULES, "auto_approve": []}
    case = build_case(alice_rules=rules)
    reason = refused(case.materials(), "approvals", PolicyDenied)
    assert "does not approve this automatically" in reason


def test_policy_mode_approval_for_a_content_computation() -> None:
    content = dataclasses.replace(SHARED, id="shared-snippets", privacy_class="content")
    registry = Registry([content])
    rules = {"allow": [{"id": "shared-snippets"}], "auto_approve": [{"id": "shared-snippets"}]}
    case = build_case(computation=content, alice_rules=rules)
    refused(case.materials(), "approvals", PolicyDenied, registry=registry)


def test_policy_mode_approval_naming_another_policy() -> None:
    env = CASE.approve(1, mode="policy", policy=CASE.policies[0].digest)
    m = CASE.materials(approvals=(CASE.approvals[0].envelope, env))
    refused(m, "approvals", VerificationFailed)


def test_missing_approval() -> None:
    m = CASE.materials(approvals=(CASE.approvals[0].envelope,))
    assert "no approval" in refused(m, "approvals", PolicyDenied)


def test_rejection_fails_the_job() -> None:
    reject = CASE.approve(1, decision="reject", reason="not this time")
    m = CASE.materials(approvals=(*CASE.materials().approvals, reject))
    reason = refused(m, "approvals", PolicyDenied)
    assert "rejected" in reason
    assert "not this time" not in reason


def test_two_approvals_for_one_input() -> None:
    again = CASE.approve(1, reason="yes, twice")
    m = CASE.materials(approvals=(*CASE.materials().approvals, again))
    refused(m, "approvals", InvalidInput)


def test_approval_for_another_request() -> None:
    other = sign_statement(
        request(WORLD.carol, (CASE.attestations[1].digest,), nonce="AgICAgICAgICAgICAgICAg=="),
        WORLD.carol,
    )
    env = sign_statement(
        CASE.approvals[1].statement.model_copy(update={"request": other.digest}), WORLD.bob
    ).envelope
    m = CASE.materials(approvals=(CASE.approvals[0].envelope, env))
    assert "another request" in refused(m, "approvals", VerificationFailed)


def test_approval_for_another_dataset() -> None:
    env = CASE.approve(1, dataset=digest_hex("some other dataset"))
    m = CASE.materials(approvals=(CASE.approvals[0].envelope, env))
    assert "not an input" in refused(m, "approvals", VerificationFailed)


def test_approval_signed_by_a_non_owner() -> None:
    # Alice (a real party of the job) approves Bob's dataset.
    env = CASE.approve(1, signer=WORLD.alice)
    m = CASE.materials(approvals=(CASE.approvals[0].envelope, env))
    assert "not by the owner" in refused(m, "approvals", VerificationFailed)
    forged = forge(CASE.approvals[1].envelope, WORLD.mallory)
    m = CASE.materials(approvals=(CASE.approvals[0].envelope, forged))
    refused(m, "approvals", SignatureInvalid)


def test_approval_dated_outside_the_request() -> None:
    for when in (T0 - 1, NOW + 1):
        env = CASE.approve(1, created_at=when)
        m = CASE.materials(approvals=(CASE.approvals[0].envelope, env))
        refused(m, "approvals", VerificationFailed)


# --- step 6: recipients -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("computation", "names"),
    [
        (SHARED, ("carol",)),
        (SHARED, ("carol", "alice")),
        (SHARED, ("carol", "alice", "bob", "mallory")),
        (PRIVATE, ("carol", "alice")),
        (PRIVATE, ("alice",)),
    ],
)
def test_recipients_must_follow_the_release_rule(computation: Any, names: tuple[str, ...]) -> None:
    who = tuple(getattr(WORLD, n) for n in names)
    case = build_case(computation=computation, recipients=who, alice_mode="manual")
    reason = refused(case.materials(), "recipients", PolicyDenied)
    assert computation.release in reason


# --- step 7: sealed inputs --------------------------------------------------------------------


def _sealed(**replace: bytes) -> dict[str, bytes]:
    sealed = dict(CASE.sealed)
    for index, data in replace.items():
        sealed[CASE.attestations[int(index[1:])].digest] = data
    return sealed


def test_input_sealed_to_another_request() -> None:
    data = seal_input(CASE.tables[1], digest_hex("another request"))
    reason = refused(CASE.materials(sealed_inputs=_sealed(i1=data)), "inputs", DecryptionFailed)
    assert "request" in reason


def test_input_sealed_to_another_enclave() -> None:
    data = seal_input(CASE.tables[1], CASE.request.digest, to=WORLD.mallory.public)
    refused(CASE.materials(sealed_inputs=_sealed(i1=data)), "inputs", DecryptionFailed)


def test_input_sealed_for_another_purpose() -> None:
    data = seal_input(CASE.tables[1], CASE.request.digest, purpose="result")
    refused(CASE.materials(sealed_inputs=_sealed(i1=data)), "inputs", DecryptionFailed)


def test_inputs_are_sealed_with_the_hybrid_suite() -> None:
    # The enclave's key document carries an X-Wing key, so owners seal with suite 2.
    for data in CASE.sealed.values():
        assert SealedHeader.parse(data).suite == SUITE_XWING_AES256GCM


def test_input_downgraded_to_x25519_only_is_refused() -> None:
    # An owner's client handed the enclave's keys without the X-Wing key (or a forger)
    # seals with suite 1: harvestable later. The enclave, which has the key, refuses it.
    table = CASE.tables[1]
    context = SealContext(
        request_digest=bytes.fromhex(CASE.request.digest.removeprefix("sha256:")),
        recipient=WORLD.enclave.public.party_id,
        purpose="input",
    )
    data = sealing._seal_bytes(
        b"".join(iter_canonical(table)),
        WORLD.enclave.public,
        context,
        chunk_size=SEAL_CHUNK,
        payload_key=os.urandom(32),
        suite=SUITE_X25519_AES256GCM,
    )
    reason = refused(CASE.materials(sealed_inputs=_sealed(i1=data)), "inputs", DecryptionFailed)
    assert "suite 1" in reason


def test_truncated_input() -> None:
    data = CASE.sealed[CASE.attestations[1].digest]
    header = len(SealedHeader.parse(data).raw)
    assert len(data) > header + SEAL_CHUNK + 16  # several chunks, so a whole one can go
    cut = data[: header + SEAL_CHUNK + 16]
    refused(CASE.materials(sealed_inputs=_sealed(i1=cut)), "inputs", DecryptionFailed)
    refused(CASE.materials(sealed_inputs=_sealed(i1=data[:-1])), "inputs", DecryptionFailed)


def test_missing_and_extra_sealed_inputs() -> None:
    only_one = {CASE.attestations[0].digest: CASE.sealed[CASE.attestations[0].digest]}
    assert "no sealed data" in refused(
        CASE.materials(sealed_inputs=only_one), "inputs", InvalidInput
    )
    extra = {**CASE.sealed, digest_hex("x"): b"anything"}
    refused(CASE.materials(sealed_inputs=extra), "inputs", InvalidInput)


# --- step 7b: commitments ---------------------------------------------------------------------


def test_data_not_matching_its_commitment() -> None:
    other = text_table([*CASE.tables[1].column("text").to_pylist()[:-1], "attestation elsewhere"])
    data = seal_input(other, CASE.request.digest)
    reason = refused(
        CASE.materials(sealed_inputs=_sealed(i1=data)), "commitments", CommitmentMismatch
    )
    assert CASE.attestations[1].digest in reason
    assert "elsewhere" not in reason


def test_data_of_another_length_than_committed() -> None:
    other = text_table(CASE.tables[1].column("text").to_pylist()[:-1])
    data = seal_input(other, CASE.request.digest)
    refused(CASE.materials(sealed_inputs=_sealed(i1=data)), "commitments", CommitmentMismatch)


# --- step 8: the computation ------------------------------------------------------------------


def test_computation_raising_invalid_input_leaks_no_data() -> None:
    secret = "BAD: the secret row 4242"
    case = build_case(bob_texts=(*CASE.tables[1].column("text").to_pylist(), secret))
    with pytest.raises(JobFailed) as info:
        run(case.materials())
    err = info.value
    assert (err.step, type(err.cause)) == ("compute", InvalidInput)
    for text in (err.reason, str(err), err.diagnostics(), str(err.cause)):
        assert "4242" not in text
    assert err.__cause__ is None
    assert err.__context__ is None


def test_computation_crashing_leaks_no_data() -> None:
    case = build_case(alice_texts=("CRASH: secret 777",))
    with pytest.raises(JobFailed) as info:
        run(case.materials())
    err = info.value
    assert err.step == "compute"
    assert err.cause.code == "internal"
    assert "777" not in err.reason
    assert err.__cause__ is None
    assert err.__context__ is None


def test_materials_are_immutable_copies() -> None:
    sealed = dict(CASE.sealed)
    m = CASE.materials(sealed_inputs=sealed)
    sealed.clear()
    assert len(m.sealed_inputs) == 2
    with pytest.raises(TypeError):
        m.sealed_inputs[digest_hex("x")] = b""  # type: ignore[index]
    output = run(m)
    with pytest.raises(TypeError):
        output.sealed_outputs[PartyId("x")] = b""  # type: ignore[index]


def _with_alice_attestation(att: Any, *, policies: tuple[Any, ...]) -> Case:
    """CASE with Alice's attestation swapped, and the request, approvals and seals redone."""
    w = WORLD
    atts = (att, CASE.attestations[1])
    req = sign_statement(
        request(
            w.carol,
            tuple(a.digest for a in atts),
            computation=SHARED.ref(),
            parameters={"min_length": 3},
            recipients=(w.carol.party_id, w.alice.party_id, w.bob.party_id),
        ),
        w.carol,
    )
    approvals = (
        sign_statement(approval(w.alice, req.digest, atts[0].digest), w.alice),
        sign_statement(approval(w.bob, req.digest, atts[1].digest), w.bob),
    )
    sealed = {a.digest: seal_input(t, req.digest) for a, t in zip(atts, CASE.tables, strict=True)}
    return Case(
        computation=SHARED,
        request=req,
        attestations=atts,
        policies=policies,
        approvals=approvals,
        tables=CASE.tables,
        sealed=sealed,
    )


def test_committed_bytes_that_are_not_arrow() -> None:
    # The owner committed to (and sealed) bytes that are not canonical Arrow IPC.
    raw = b"row one: secret\nrow two: secret\n" * 40
    c = commit_bytes_stream([raw], rows=2, chunk_size=1024)
    ref = CommitmentRef(
        format="arrow-ipc-stream/v1",
        root=b64encode(c.root),
        length=c.length,
        rows=2,
        chunk_size=1024,
    )
    att = sign_statement(
        attestation(WORLD.alice, commitment=ref, row_count=2, policy=CASE.policies[0].digest),
        WORLD.alice,
    )
    case = _with_alice_attestation(att, policies=CASE.policies)
    context = SealContext(
        bytes.fromhex(case.request.digest[7:]), WORLD.enclave.public.party_id, "input"
    )
    sealed = {**case.sealed, att.digest: seal(raw, WORLD.enclave.public, context)}
    reason = refused(case.materials(sealed_inputs=sealed), "commitments", InvalidInput)
    assert "not canonical Arrow IPC" in reason
    assert "secret" not in reason
