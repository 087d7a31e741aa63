"""Each check alone: it passes on a good bundle, and names what is wrong with a bad one.

Every test starts from :func:`context` (what a check sees once all earlier checks
passed) and changes one thing. Receipts that say something else are re-signed by the
job's own enclave key, so only the check under test can catch them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest

from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.enclave.keys import EnclaveKeys
from sealroom.errors import (
    AttestationInvalid,
    ProofInvalid,
    SealroomError,
    SignatureInvalid,
    StatementFormatError,
    VerificationFailed,
)
from sealroom.statements import (
    EnclaveEvidence,
    Envelope,
    InputRef,
    OutputRef,
    PrivacyCharge,
    Receipt,
    sign_statement,
)
from sealroom.statements.envelope import pae
from sealroom.transparency.checkpoint import (
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from sealroom.verification import checks
from sealroom.verification.checks import (
    CHECKS,
    SIMULATED_TEE_WARNING,
    UNPINNED_LOG_KEY_WARNING,
    Context,
    NotEstablished,
    Passed,
)
from tests.helpers import T0, approval, digest_hex, identity
from tests.verification.scenario import LOG_NAME, Job, build_job, context, pinned, resigned_receipt

JOB = build_job()
CTX = context(JOB)
# The same job where the input's policy pins the enclave's simulation root: for the checks
# that run only when a policy pins an enclave.
PINNED_CTX = context(
    build_job(
        dataset_policy=True,
        policy_rules={"k": 5, "enclave": {"simulation_root": JOB.root.public_key.hex()}},
    )
)
OTHER = build_job()  # the same job, run by another enclave (fresh keys)
ATT = JOB.bundle.statements[2].digest  # the one input's attestation
APPROVAL = JOB.bundle.statements[1].digest


def fails(check: Callable[[Context], Passed], ctx: Context, error: type[SealroomError]) -> str:
    with pytest.raises(error) as info:
        check(ctx)
    return str(info.value)


def with_receipt(ctx: Context, **changes: object) -> Context:
    return dataclasses.replace(ctx, receipt=resigned_receipt(JOB, **changes))


def with_bundle(ctx: Context, **changes: object) -> Context:
    return dataclasses.replace(ctx, bundle=dataclasses.replace(ctx.bundle, **changes))


def test_checks_are_named_once_and_documented() -> None:
    names = [c.name for c in CHECKS]
    assert len(set(names)) == len(names)
    assert [c.run for c in CHECKS if c.per_output] == [checks.output_matches_receipt]
    for named in CHECKS:
        assert named.run.__doc__, f"{named.name} says what it checks and why"


@pytest.mark.parametrize("named", CHECKS, ids=lambda c: c.name)
def test_every_check_passes_on_a_good_bundle(named: checks.NamedCheck) -> None:
    ctx = CTX if named.applies is None else PINNED_CTX
    assert named.applies is None or named.applies(ctx)
    passed = named.run(ctx)
    assert passed.detail


@pytest.mark.parametrize(
    ("check", "fact"),
    [
        (checks.tee_evidence, "evidence"),
        (checks.receipt_signature, "evidence"),
        (checks.receipt_names_this_enclave, "evidence"),
        (checks.receipt_names_this_enclave, "receipt"),
        (checks.computation_request, "receipt"),
        (checks.computation_code, "receipt"),
        (checks.computation_code, "request"),
        (checks.timing, "evidence"),
        (checks.timing, "request"),
        (checks.dataset_attestations, "receipt"),
        (checks.dataset_attestations, "request"),
        (checks.owner_approvals, "request"),
        (checks.recipients, "request"),
        (checks.output_matches_receipt, "receipt"),
        (checks.output_matches_receipt, "output"),
        (checks.log_inclusion, "checkpoint"),
    ],
)
def test_a_check_without_its_facts_is_not_run(
    check: Callable[[Context], Passed], fact: str
) -> None:
    with pytest.raises(NotEstablished, match=fact):
        check(dataclasses.replace(CTX, **{fact: None}))


@pytest.mark.parametrize(
    ("check", "fact"),
    [
        (checks.enclave_key_statement, "evidence"),
        (checks.receipt_signature, "receipt"),
        (checks.computation_request, "request"),
        (checks.log_checkpoint, "checkpoint"),
    ],
)
def test_a_check_establishes_what_it_verified(
    check: Callable[[Context], Passed], fact: str
) -> None:
    bare = dataclasses.replace(CTX, **{fact: None})
    passed = check(bare)
    assert passed.context == CTX


# --- enclave key statement ----------------------------------------------------------------


def test_enclave_key_statement_warns_of_simulation() -> None:
    assert checks.enclave_key_statement(CTX).warnings == (SIMULATED_TEE_WARNING,)


def test_enclave_key_statement_with_a_flipped_signature_bit() -> None:
    env = JOB.bundle.evidence
    flipped = dataclasses.replace(env, signature=bytes([env.signature[0] ^ 1]) + env.signature[1:])
    fails(checks.enclave_key_statement, with_bundle(CTX, evidence=flipped), SignatureInvalid)


def test_enclave_key_statement_swapped_for_another_valid_statement() -> None:
    swapped = with_bundle(CTX, evidence=JOB.bundle.receipt)
    message = fails(checks.enclave_key_statement, swapped, StatementFormatError)
    assert "expected a sealroom.enclave-evidence statement" in message


def test_enclave_key_statement_signed_by_a_key_it_does_not_describe() -> None:
    statement = JOB.enclave.evidence.statement
    other = OTHER.enclave.identity
    forged = Envelope(
        type=statement.TYPE,
        version=statement.VERSION,
        payload=statement.payload(),
        signer=other.public,
        signature=other.sign(pae(statement.TYPE, statement.VERSION, statement.payload())),
    )
    message = fails(
        checks.enclave_key_statement, with_bundle(CTX, evidence=forged), SignatureInvalid
    )
    assert "must be signed by the enclave key it names" in message


# --- TEE evidence --------------------------------------------------------------------------


def test_tee_evidence_passes_with_the_verifiers_warnings() -> None:
    passed = checks.tee_evidence(CTX)
    assert "valid at its creation (unix time 1790000000)" in passed.detail
    assert any("proves nothing" in w for w in passed.warnings)


def test_simulated_evidence_without_allow_simulated() -> None:
    refused = dataclasses.replace(CTX, trust=pinned(JOB, allow_simulated=False))
    assert "--allow-simulated" in fails(checks.tee_evidence, refused, AttestationInvalid)


def test_tee_evidence_under_another_simulation_root() -> None:
    other = SimulationRoot.from_private_bytes(hashlib.sha256(b"another root").digest())
    ctx = dataclasses.replace(CTX, trust=pinned(JOB, simulation_root=other.public_key))
    assert "trusted simulation root" in fails(checks.tee_evidence, ctx, AttestationInvalid)


def test_tee_evidence_that_binds_another_enclaves_keys() -> None:
    # Enclave B presents enclave A's (valid) TEE report as its own.
    a = JOB.enclave.evidence.statement
    b = EnclaveKeys.create_at_time(SimulatedEnclave(JOB.root), tee="simulated", now=T0)
    statement = b.evidence.statement.model_copy(update={"evidence": a.evidence})
    forged = sign_statement(statement, b.identity)
    ctx = dataclasses.replace(CTX, evidence=forged.envelope.open(EnclaveEvidence))
    assert "report_data" in fails(checks.tee_evidence, ctx, AttestationInvalid)


# --- the receipt ---------------------------------------------------------------------------


def test_receipt_signed_by_another_enclave() -> None:
    ctx = with_bundle(CTX, receipt=OTHER.bundle.receipt)
    message = fails(checks.receipt_signature, ctx, VerificationFailed)
    assert "other than the attested enclave key" in message


def test_receipt_with_a_flipped_payload_bit() -> None:
    env = JOB.bundle.receipt
    flipped = dataclasses.replace(env, payload=bytes([env.payload[0] ^ 1]) + env.payload[1:])
    fails(checks.receipt_signature, with_bundle(CTX, receipt=flipped), SignatureInvalid)


def test_receipt_swapped_for_another_valid_statement() -> None:
    ctx = with_bundle(CTX, receipt=JOB.bundle.statements[1])
    assert "expected a sealroom.receipt" in fails(checks.receipt_signature, ctx, SealroomError)


def test_receipt_naming_other_evidence() -> None:
    ctx = with_receipt(CTX, evidence=OTHER.enclave.evidence.digest)
    message = fails(checks.receipt_names_this_enclave, ctx, VerificationFailed)
    assert "names different enclave evidence" in message


def test_receipt_claiming_real_hardware() -> None:
    ctx = with_receipt(CTX, tee="tdx", simulated=False)
    message = fails(checks.receipt_names_this_enclave, ctx, VerificationFailed)
    assert "TEE label differs" in message


# --- computation request, code and timing --------------------------------------------------


def test_receipt_referring_to_another_request() -> None:
    ctx = with_receipt(CTX, request=digest_hex("another request"))
    assert "is not in the bundle" in fails(checks.computation_request, ctx, VerificationFailed)


def test_receipt_referring_to_a_statement_of_another_kind_as_its_request() -> None:
    ctx = with_receipt(CTX, request=APPROVAL)
    message = fails(checks.computation_request, ctx, StatementFormatError)
    assert "expected a sealroom.computation-request" in message


def test_receipt_running_other_code() -> None:
    ran = CTX.bundle.receipt.open(Receipt).statement.computation
    ctx = with_receipt(CTX, computation=ran.model_copy(update={"code_digest": digest_hex("x")}))
    assert "ran different code" in fails(checks.computation_code, ctx, VerificationFailed)


@pytest.mark.parametrize("issued_at", [T0 - 1, T0 + 3601])
def test_receipt_outside_the_request_window(issued_at: int) -> None:
    ctx = with_receipt(CTX, issued_at=issued_at)
    assert "outside the request's validity" in fails(checks.timing, ctx, VerificationFailed)


def test_receipt_before_the_evidence() -> None:
    job = build_job(evidence_time=T0 + 200)
    assert "predates the enclave evidence" in fails(checks.timing, context(job), VerificationFailed)


# --- dataset attestations -----------------------------------------------------------------


def _input(dataset: str = ATT, root: str | None = None) -> InputRef:
    original = CTX.bundle.receipt.open(Receipt).statement.inputs[0]
    return InputRef(dataset=dataset, commitment_root=root or original.commitment_root)


def test_receipt_with_another_commitment() -> None:
    ctx = with_receipt(CTX, inputs=(_input(root="A" * 43 + "="),))
    message = fails(checks.dataset_attestations, ctx, VerificationFailed)
    assert "does not match the owner's commitment" in message


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param((_input(dataset=digest_hex("other dataset")),), id="another dataset"),
        pytest.param((_input(), _input()), id="the dataset twice"),
    ],
)
def test_receipt_referring_to_the_wrong_datasets(inputs: tuple[InputRef, ...]) -> None:
    ctx = with_receipt(CTX, inputs=inputs)
    message = fails(checks.dataset_attestations, ctx, VerificationFailed)
    assert "the receipt's inputs differ from the requested datasets" in message


def test_attestation_missing_from_the_bundle() -> None:
    ctx = with_bundle(CTX, statements=JOB.bundle.statements[:2])
    assert "is not in the bundle" in fails(checks.dataset_attestations, ctx, VerificationFailed)


def test_receipt_omitting_the_dataset_policy() -> None:
    job = build_job(dataset_policy=True)
    checks.dataset_attestations(context(job))
    ctx = dataclasses.replace(context(job), receipt=resigned_receipt(job, policies=()))
    assert "omits a dataset policy" in fails(checks.dataset_attestations, ctx, VerificationFailed)


def test_room_policy_is_listed_and_verifies() -> None:
    job = build_job(room=True)
    checks.dataset_attestations(context(job))
    receipt = job.bundle.receipt.open(Receipt).statement
    room = receipt.decisions[0].room_policy
    assert room is not None
    assert room in receipt.policies
    assert job.bundle.statement(room) is not None


@pytest.mark.parametrize(
    ("job", "message"),
    [
        # The enclave decided without the room policy the request named.
        (build_job(room=True, decision_room=None), "omits the room policy"),
        (build_job(room=True, bundle_room=False), "room policy sha256:"),
        (build_job(decision_room=digest_hex("room")), "names another room policy"),
    ],
    ids=["dropped", "not in the bundle", "added"],
)
def test_room_policy_mismatches(job: Job, message: str) -> None:
    assert message in fails(checks.dataset_attestations, context(job), VerificationFailed)


def _decision(**changes: object) -> object:
    return CTX.bundle.receipt.open(Receipt).statement.decisions[0].model_copy(update=changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decisions": (_decision(policy=digest_hex("p")),)}, "names another policy"),
        (
            {"decisions": (_decision(), _decision())},
            "does not cover the requested inputs in order",
        ),
        (
            {"privacy_spent": (PrivacyCharge(dataset=ATT, epsilon="1", delta="0"),)},
            "charge for sha256:",
        ),
        (
            {"privacy_spent": (PrivacyCharge(dataset=digest_hex("d"), epsilon="1", delta="0"),)},
            "not an input",
        ),
        (
            {"privacy_spent": (PrivacyCharge(dataset=ATT, epsilon="0", delta="0"),) * 2},
            "names a dataset twice",
        ),
    ],
    ids=["policy", "coverage", "uncharged", "stranger charged", "charged twice"],
)
def test_decision_record_that_differs(changes: dict[str, object], message: str) -> None:
    ctx = with_receipt(CTX, **changes)
    assert message in fails(checks.dataset_attestations, ctx, VerificationFailed)


def test_charge_declared_in_both_places_verifies() -> None:
    charge = PrivacyCharge(dataset=ATT, epsilon="0.5", delta="0")
    ctx = with_receipt(
        CTX, privacy_spent=(charge,), decisions=(_decision(epsilon="0.5", delta="0"),)
    )
    checks.dataset_attestations(ctx)


# --- owner approvals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (build_job(approver=identity("mallory")), "is not signed by the owner"),
        (build_job(approval_overrides={"decision": "reject"}), "is a rejection"),
        (build_job(approval_overrides={"request": digest_hex("r")}), "is for another request"),
        (build_job(approval_overrides={"created_at": T0 - 1}), "dated outside"),
        (build_job(approval_overrides={"created_at": T0 + 121}), "dated outside"),
    ],
    ids=["stranger", "rejection", "other request", "too early", "too late"],
)
def test_approvals_that_do_not_approve(job: Job, message: str) -> None:
    assert message in fails(checks.owner_approvals, context(job), VerificationFailed)


def test_approval_of_a_dataset_that_is_not_an_input() -> None:
    request = JOB.bundle.statements[0].digest
    stray = sign_statement(approval(JOB.owner, request, digest_hex("d")), JOB.owner)
    ctx = with_bundle(
        with_receipt(CTX, approvals=(stray.digest,)),
        statements=(*JOB.bundle.statements, stray.envelope),
    )
    assert "not an input of the request" in fails(checks.owner_approvals, ctx, VerificationFailed)


def test_receipt_referring_to_a_missing_approval() -> None:
    ctx = with_receipt(CTX, approvals=(digest_hex("approval"),))
    assert "is not in the bundle" in fails(checks.owner_approvals, ctx, VerificationFailed)


def test_approval_of_an_input_whose_attestation_is_missing() -> None:
    ctx = with_bundle(CTX, statements=JOB.bundle.statements[:2])
    message = fails(checks.owner_approvals, ctx, VerificationFailed)
    assert f"dataset attestation {ATT} is not in the bundle" in message


# --- recipients and outputs ----------------------------------------------------------------


def test_results_released_to_someone_else() -> None:
    ref = OutputRef(recipient=identity("stranger").party_id, commitment=digest_hex("c"))
    ctx = with_receipt(CTX, outputs=(ref,))
    assert "other than the requested" in fails(checks.recipients, ctx, VerificationFailed)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"body": b'{"rows":4}'}, "differs from what the enclave committed"),
        ({"salt": bytes(32)}, "differs from what the enclave committed"),
        ({"recipient": identity("stranger").party_id}, "released nothing to"),
        ({"request": digest_hex("another request")}, "belongs to another request"),
    ],
    ids=["body", "salt", "recipient", "request"],
)
def test_output_that_is_not_the_released_one(changes: dict[str, object], message: str) -> None:
    ctx = dataclasses.replace(CTX, output=dataclasses.replace(JOB.output, **changes))
    assert message in fails(checks.output_matches_receipt, ctx, VerificationFailed)


# --- the log -------------------------------------------------------------------------------


def test_log_checkpoint_warns_only_when_the_key_is_not_pinned() -> None:
    assert checks.log_checkpoint(CTX).warnings == ()
    unpinned = dataclasses.replace(CTX, trust=pinned(JOB, log_key=None))
    assert checks.log_checkpoint(unpinned).warnings == (UNPINNED_LOG_KEY_WARNING,)


def test_checkpoint_signed_by_another_key() -> None:
    impostor = NoteSigner.from_seed(LOG_NAME, b"\x01" * 32)
    log = JOB.bundle.log
    checkpoint = open_checkpoint(log.checkpoint, NoteVerifier.from_vkey(log.verifier_key))
    forged = dataclasses.replace(log, checkpoint=sign_checkpoint(checkpoint, impostor))
    message = fails(checks.log_checkpoint, with_bundle(CTX, log=forged), SignatureInvalid)
    assert "no signature from a trusted key" in message
    # Naming the impostor's key in the bundle does not help against a pinned key ...
    renamed = dataclasses.replace(forged, verifier_key=impostor.verifier.vkey)
    message = fails(checks.log_checkpoint, with_bundle(CTX, log=renamed), VerificationFailed)
    assert message == "the bundle names a different log key from the one pinned"
    # ... and is only consistent, with a warning, when nothing is pinned.
    unpinned = dataclasses.replace(with_bundle(CTX, log=renamed), trust=pinned(JOB, log_key=None))
    assert checks.log_checkpoint(unpinned).warnings == (UNPINNED_LOG_KEY_WARNING,)


def test_checkpoint_with_a_changed_size() -> None:
    log = JOB.bundle.log
    changed = dataclasses.replace(log, checkpoint=log.checkpoint.replace("\n5\n", "\n4\n", 1))
    assert changed.checkpoint != log.checkpoint
    fails(checks.log_checkpoint, with_bundle(CTX, log=changed), SealroomError)


def _with_entry(**changes: object) -> Context:
    """The bundle with its first log entry changed."""
    log = JOB.bundle.log
    first = dataclasses.replace(log.entries[0], **changes)  # type: ignore[arg-type]
    return with_bundle(CTX, log=dataclasses.replace(log, entries=(first, *log.entries[1:])))


def test_inclusion_proof_for_the_wrong_index() -> None:
    fails(
        checks.log_inclusion, _with_entry(index=JOB.bundle.log.entries[0].index + 1), ProofInvalid
    )


def test_inclusion_proof_with_a_flipped_hash_bit() -> None:
    proof = JOB.bundle.log.entries[0].proof
    flipped = (bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:])
    fails(checks.log_inclusion, _with_entry(proof=flipped), ProofInvalid)


def test_inclusion_proof_of_the_wrong_length() -> None:
    longer = (*JOB.bundle.log.entries[0].proof, bytes(32))
    message = fails(checks.log_inclusion, _with_entry(proof=longer), ProofInvalid)
    assert "wrong proof length" in message


def test_statement_without_a_log_proof() -> None:
    entries = tuple(e for e in JOB.bundle.log.entries if e.digest != JOB.bundle.receipt.digest)
    ctx = with_bundle(CTX, log=dataclasses.replace(JOB.bundle.log, entries=entries))
    message = fails(checks.log_inclusion, ctx, VerificationFailed)
    assert "no log proof for sealroom.receipt" in message


def test_statement_added_to_the_bundle_that_the_log_never_saw() -> None:
    request = JOB.bundle.statements[0].digest
    unlogged = sign_statement(approval(JOB.owner, request, ATT, reason="again"), JOB.owner)
    ctx = with_bundle(CTX, statements=(*JOB.bundle.statements, unlogged.envelope))
    message = fails(checks.log_inclusion, ctx, VerificationFailed)
    assert f"no log proof for sealroom.approval {unlogged.digest}" in message
