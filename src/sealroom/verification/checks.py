"""The checks of a proof bundle, in order: each a small pure function over a :class:`Context`.

A check reads the bundle, the trust policy and what earlier checks
established, and either returns :class:`Passed` (a plain-words detail,
warnings the reader must see, and the context with anything it established)
or raises a :class:`~sealroom.errors.SealroomError` saying what is wrong.
:data:`CHECKS` is the order :func:`~sealroom.verification.verify.verify_bundle`
runs them in; each can also be called alone.

A check that needs a fact no earlier check established (the receipt, when
its signature did not verify) raises :class:`NotEstablished` and is skipped:
the failure that left the fact out is already in the report.

There is no clock here. TEE evidence is judged as of the time the enclave
signed into it, and every other time is compared with times in signed
statements, so a bundle gets the same report on any later day, offline.

Two log checks run only when the trust policy asks for them
(:func:`checks_for`): "witness cosignatures" and "log consistency". Without
them the report is what it always was.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sealroom.errors import ProofInvalid, SealroomError, VerificationFailed
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    EnclaveEvidence,
    Policy,
    Receipt,
    ReleasedOutput,
    Signed,
    Statement,
)
from sealroom.transparency.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from sealroom.transparency.entries import entry_leaf_hash
from sealroom.transparency.proof import verify_consistency, verify_inclusion
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.trust import TrustPolicy

__all__ = [
    "CHECKS",
    "SIMULATED_TEE_WARNING",
    "UNPINNED_LOG_KEY_WARNING",
    "Context",
    "NamedCheck",
    "NotEstablished",
    "Passed",
    "checks_for",
    "computation_code",
    "computation_request",
    "dataset_attestations",
    "enclave_key_statement",
    "log_checkpoint",
    "log_consistency",
    "log_inclusion",
    "output_matches_receipt",
    "owner_approvals",
    "receipt_names_this_enclave",
    "receipt_signature",
    "recipients",
    "tee_evidence",
    "timing",
    "witness_cosignatures",
]

SIMULATED_TEE_WARNING = (
    "SIMULATED TEE: this result was produced by a software simulation of an "
    "enclave. Nothing protected the data from the machine's operator."
)
UNPINNED_LOG_KEY_WARNING = (
    "log key taken from the bundle itself (not pinned with --log-key): the log "
    "proofs show the statements are in a consistent log, not which log."
)

S = TypeVar("S", bound=Statement)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a check sees: the bundle, what the verifier trusts, and what is established.

    ``outputs`` are the released outputs to check (the bundle's own and any
    the user brought). The optional fields are set only by the check named
    beside each, once it has verified them; ``output`` is the one output a
    per-output check is looking at.
    """

    bundle: ProofBundle
    trust: TrustPolicy
    outputs: tuple[ReleasedOutput, ...] = ()
    evidence: Signed[EnclaveEvidence] | None = None  # by "enclave key statement"
    receipt: Signed[Receipt] | None = None  # by "receipt signature"
    request: Signed[ComputationRequest] | None = None  # by "computation request"
    checkpoint: Checkpoint | None = None  # by "log checkpoint"
    output: ReleasedOutput | None = None


@dataclass(frozen=True, slots=True)
class Passed:
    """A passed check: what it showed, what the reader must know, what later checks may use."""

    detail: str
    warnings: tuple[str, ...] = ()
    # The context with what this check established, if it established anything.
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class NamedCheck:
    """A check and its name in the report.

    With ``per_output`` it runs once per output, named by ``name`` with
    ``{recipient}`` replaced by the start of the recipient's party id.
    """

    name: str
    run: Callable[[Context], Passed]
    per_output: bool = False


class NotEstablished(Exception):
    """A check needs a fact no earlier check established: skipped (a failure before it says why)."""


def _established(value: T | None, what: str) -> T:
    if value is None:
        raise NotEstablished(what)
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise VerificationFailed(message)


def _open(bundle: ProofBundle, digest: str, cls: type[S], what: str) -> Signed[S]:
    """The statement the bundle carries under ``digest``, its signature and signer verified."""
    envelope = bundle.statement(digest)
    if envelope is None:
        raise VerificationFailed(f"{what} {digest} is not in the bundle")
    return envelope.open(cls)


# --- the enclave ---------------------------------------------------------------------------


def enclave_key_statement(ctx: Context) -> Passed:
    """The enclave's key document is signed by the key it describes.

    Everything else the enclave signs is checked against these keys, and the
    TEE evidence inside must bind them (next check).
    """
    ev = ctx.bundle.evidence.open(EnclaveEvidence)
    return Passed(
        "signed by the enclave key it describes",
        (SIMULATED_TEE_WARNING,) if ev.statement.simulated else (),
        replace(ctx, evidence=ev),
    )


def tee_evidence(ctx: Context) -> Passed:
    """The TEE evidence is valid under the trust policy and binds the enclave's keys.

    Checked as of the time the enclave gathered it (signed, in the statement),
    so the answer is the same on any later day, offline. The trust policy
    refuses simulated evidence unless it was explicitly allowed.
    """
    evidence = _established(ctx.evidence, "evidence").statement
    verified = ctx.trust.tee_verifier(evidence).verify_at_time(
        evidence.tee_evidence(),
        key_document=evidence.keys.canonical_bytes(),
        at_time=evidence.created_at,
    )
    return Passed(
        f"{evidence.tee} evidence valid at its creation (unix time {evidence.created_at}), "
        "and its report data binds the enclave's keys",
        verified.warnings,
    )


# --- the receipt ---------------------------------------------------------------------------


def receipt_signature(ctx: Context) -> Passed:
    """The receipt is signed by the enclave key the evidence describes, and by no other."""
    evidence = _established(ctx.evidence, "evidence")
    receipt = ctx.bundle.receipt.open(Receipt)
    _require(
        ctx.bundle.receipt.signer == evidence.statement.keys.identity(),
        "the receipt was signed by a key other than the attested enclave key",
    )
    return Passed(
        "signed by the enclave key in the evidence", context=replace(ctx, receipt=receipt)
    )


def receipt_names_this_enclave(ctx: Context) -> Passed:
    """The receipt names this evidence and its TEE label, so it cannot claim other hardware."""
    receipt = _established(ctx.receipt, "receipt").statement
    evidence = _established(ctx.evidence, "evidence")
    _require(receipt.evidence == evidence.digest, "the receipt names different enclave evidence")
    _require(
        receipt.tee == evidence.statement.tee and receipt.simulated == evidence.statement.simulated,
        "the receipt's TEE label differs from the evidence",
    )
    return Passed("receipt refers to the evidence and its TEE label")


# --- what was asked, and by whom -----------------------------------------------------------


def computation_request(ctx: Context) -> Passed:
    """The request the receipt refers to is in the bundle, signed by its requester."""
    receipt = _established(ctx.receipt, "receipt").statement
    request = _open(ctx.bundle, receipt.request, ComputationRequest, "request")
    return Passed(
        "signed by the requester; the receipt refers to it", context=replace(ctx, request=request)
    )


def computation_code(ctx: Context) -> Passed:
    """The enclave ran the computation (id, version, code digest) that was requested."""
    receipt = _established(ctx.receipt, "receipt").statement
    request = _established(ctx.request, "request").statement
    _require(
        request.computation == receipt.computation,
        "the receipt ran different code from what was requested",
    )
    ran = receipt.computation
    return Passed(
        f"{ran.id} {ran.version} with code digest {ran.code_digest} is what was requested"
    )


def timing(ctx: Context) -> Passed:
    """The receipt was issued while the request was valid, and not before the evidence existed."""
    receipt = _established(ctx.receipt, "receipt").statement
    request = _established(ctx.request, "request").statement
    evidence = _established(ctx.evidence, "evidence").statement
    _require(
        request.created_at <= receipt.issued_at <= request.expires_at,
        "the receipt was issued outside the request's validity window",
    )
    _require(evidence.created_at <= receipt.issued_at, "the receipt predates the enclave evidence")
    return Passed("request, evidence and receipt times are in order")


def dataset_attestations(ctx: Context) -> Passed:
    """The enclave ran on the owners' committed data, under the policies that applied.

    Each requested dataset's owner-signed attestation is in the bundle and its
    commitment is the one the enclave read; the receipt lists every dataset
    and room policy that applied; and its signed decision record has one entry
    per input, in order, naming that input's policies and charging exactly
    what ``privacy_spent`` declares.
    """
    receipt = _established(ctx.receipt, "receipt").statement
    request = _established(ctx.request, "request").statement
    attestations = _inputs_match_commitments(ctx.bundle, request, receipt)
    _policies_are_listed(ctx.bundle, request, receipt, attestations)
    _decision_record_matches(request, receipt, attestations)
    return Passed(
        f"{len(request.inputs)} owner-signed attestation(s); the enclave's input "
        "commitments match them"
    )


def _inputs_match_commitments(
    bundle: ProofBundle, request: ComputationRequest, receipt: Receipt
) -> dict[str, DatasetAttestation]:
    roots = {i.dataset: i.commitment_root for i in receipt.inputs}
    _require(
        len(roots) == len(receipt.inputs) and set(roots) == set(request.inputs),
        "the receipt's inputs differ from the requested datasets",
    )
    attestations: dict[str, DatasetAttestation] = {}
    for digest in request.inputs:
        att = _open(bundle, digest, DatasetAttestation, "dataset attestation").statement
        _require(
            hmac.compare_digest(att.commitment.root, roots[digest]),
            f"the enclave's input for {digest} does not match the owner's commitment",
        )
        attestations[digest] = att
    return attestations


def _policies_are_listed(
    bundle: ProofBundle,
    request: ComputationRequest,
    receipt: Receipt,
    attestations: dict[str, DatasetAttestation],
) -> None:
    named = {a.policy for a in attestations.values() if a.policy is not None}
    _require(named <= set(receipt.policies), "the receipt omits a dataset policy that applied")
    if request.room_policy is not None:
        _open(bundle, request.room_policy, Policy, "room policy")
        _require(
            request.room_policy in receipt.policies,
            "the receipt omits the room policy that applied",
        )


def _decision_record_matches(
    request: ComputationRequest, receipt: Receipt, attestations: dict[str, DatasetAttestation]
) -> None:
    _require(
        tuple(d.dataset for d in receipt.decisions) == tuple(request.inputs),
        "the receipt's decision record does not cover the requested inputs in order",
    )
    spent = {c.dataset: (c.epsilon, c.delta) for c in receipt.privacy_spent}
    _require(
        len(spent) == len(receipt.privacy_spent) and set(spent) <= set(request.inputs),
        "the receipt's privacy_spent names a dataset twice, or one that is not an input",
    )
    for d in receipt.decisions:
        _require(
            d.policy == attestations[d.dataset].policy,
            f"the decision record names another policy for {d.dataset}",
        )
        _require(
            d.room_policy == request.room_policy,
            f"the decision record for {d.dataset} names another room policy than the request",
        )
        _require(
            spent.get(d.dataset, ("0", "0")) == (d.epsilon, d.delta),
            f"the decision record's charge for {d.dataset} differs from privacy_spent",
        )


def owner_approvals(ctx: Context) -> Passed:
    """Every input's owner signed an approval of this very request, dated within its lifetime."""
    receipt = _established(ctx.receipt, "receipt").statement
    req = _established(ctx.request, "request")
    request = req.statement
    approved: set[str] = set()
    for digest in receipt.approvals:
        appr = _open(ctx.bundle, digest, Approval, "approval").statement
        _require(appr.request == req.digest, f"approval {digest} is for another request")
        _require(appr.decision == "approve", f"approval {digest} is a rejection")
        _require(
            appr.dataset in request.inputs,
            f"approval {digest} is for {appr.dataset}, which is not an input of the request",
        )
        owner = _open(ctx.bundle, appr.dataset, DatasetAttestation, "dataset attestation")
        _require(
            owner.statement.owner == appr.approver,
            f"approval {digest} is not signed by the owner of {appr.dataset}",
        )
        _require(
            request.created_at <= appr.created_at <= receipt.issued_at,
            f"approval {digest} is dated outside the request's lifetime",
        )
        approved.add(appr.dataset)
    missing = set(request.inputs) - approved
    _require(not missing, f"no owner approval for {sorted(missing)}")
    return Passed(
        f"every dataset's owner approved this request ({len(receipt.approvals)} approval(s))"
    )


def recipients(ctx: Context) -> Passed:
    """Results went to exactly the recipients the requester named."""
    receipt = _established(ctx.receipt, "receipt").statement
    request = _established(ctx.request, "request").statement
    _require(
        sorted(o.recipient for o in receipt.outputs) == sorted(request.recipients),
        "results went to parties other than the requested recipients",
    )
    return Passed("results were released only to the requested recipients")


def output_matches_receipt(ctx: Context) -> Passed:
    """A released output (salt + body) is what the enclave committed to for its recipient."""
    output = _established(ctx.output, "output")
    receipt = _established(ctx.receipt, "receipt").statement
    _require(output.request == receipt.request, "this output belongs to another request")
    refs = [o for o in receipt.outputs if o.recipient == output.recipient]
    _require(bool(refs), f"the receipt released nothing to {output.recipient}")
    _require(
        hmac.compare_digest(refs[0].commitment, output.commitment()),
        "the output differs from what the enclave committed to in the receipt",
    )
    return Passed("the result matches the receipt's commitment")


# --- the transparency log ------------------------------------------------------------------


def log_checkpoint(ctx: Context) -> Passed:
    """The log's checkpoint is signed by the pinned log key (or, unpinned, the bundle's own).

    A bundle that names another key than the pinned one is refused even if
    its checkpoint verified under the pinned key: its log data is not what
    it says it is.
    """
    pinned, named = ctx.trust.log_key, ctx.bundle.log.verifier_key
    _require(
        pinned is None or pinned == named,
        "the bundle names a different log key from the one pinned",
    )
    checkpoint = open_checkpoint(ctx.bundle.log.checkpoint, NoteVerifier.from_vkey(named))
    return Passed(
        "the transparency log's signed checkpoint verifies",
        () if pinned is not None else (UNPINNED_LOG_KEY_WARNING,),
        replace(ctx, checkpoint=checkpoint),
    )


def witness_cosignatures(ctx: Context) -> Passed:
    """The checkpoint carries cosignatures from at least m of the n witnesses the verifier names.

    Each witness vouched that this was the largest tree of the log it had checked to extend
    everything it saw before; a log showing another history to someone else would need m
    of these witnesses to vouch for that one too. Cosignature times are reported, not judged
    (there is no clock here).
    """
    _established(ctx.checkpoint, "checkpoint")
    policy = ctx.trust.witnesses
    if policy is None:
        raise VerificationFailed("no witnesses were named, so none can be required")
    found = policy.check(ctx.bundle.log.checkpoint)
    times = ", ".join(f"{c.witness.label} at unix time {c.timestamp}" for c in found)
    return Passed(
        f"{len(found)} of the {len(policy.witnesses)} named witnesses cosigned the checkpoint "
        f"({policy.required} required): {times}"
    )


def log_consistency(ctx: Context) -> Passed:
    """The bundle's log is consistent with a checkpoint of it the verifier trusts.

    Equal sizes need equal roots. Otherwise the smaller tree must be a prefix of the larger,
    by a consistency proof the bundle carries for the trusted checkpoint's size; an offline
    verifier cannot fetch one, so a bundle without it is refused rather than trusted.
    """
    checkpoint = _established(ctx.checkpoint, "checkpoint")
    note = ctx.trust.checkpoint
    if note is None:
        raise VerificationFailed("no trusted checkpoint was given to check consistency against")
    try:
        trusted = open_checkpoint(note, NoteVerifier.from_vkey(ctx.bundle.log.verifier_key))
    except SealroomError as exc:
        raise ProofInvalid(
            f"the trusted checkpoint is not a checkpoint of this bundle's log ({exc.detail})"
        ) from None
    if trusted.size == checkpoint.size:
        _require(
            hmac.compare_digest(trusted.root_hash, checkpoint.root_hash),
            f"fork: the bundle's log and the trusted checkpoint have different roots for "
            f"size {checkpoint.size}",
        )
        return Passed(f"the bundle's checkpoint is the trusted one (size {checkpoint.size})")
    low, high = sorted((trusted, checkpoint), key=lambda c: c.size)
    if low.size > 0:
        carried = ctx.bundle.log.consistency_to(trusted.size)
        if carried is None:
            raise ProofInvalid(
                f"the bundle carries no consistency proof between its checkpoint (size "
                f"{checkpoint.size}) and the trusted one (size {trusted.size}); offline, the two "
                "cannot be related. Add one from the log (`sealroom checkpoint prove`) or "
                f"trust a checkpoint of size {checkpoint.size}"
            )
        try:
            verify_consistency(low.size, high.size, carried.proof, low.root_hash, high.root_hash)
        except ProofInvalid as exc:
            raise ProofInvalid(
                f"fork or bad proof: the trees of size {low.size} and {high.size} are not "
                f"consistent ({exc.detail})"
            ) from None
    relation = "extends" if checkpoint.size > trusted.size else "is a prefix of"
    return Passed(
        f"the bundle's checkpoint (size {checkpoint.size}) {relation} the trusted one "
        f"(size {trusted.size})"
    )


def log_inclusion(ctx: Context) -> Passed:
    """Every statement in the bundle (receipt and evidence too) is in the checkpointed log.

    The log is public and append-only, so with its key pinned nobody can show a
    party a receipt or approval that was never published. Private statements
    (requests, approvals, receipts) are leaves as salted commitments; the bundle
    carries each one's salt, so the leaf is recomputed from the statement here,
    offline. Older bundles, whose statements were logged in clear, carry no salt
    and verify as before. (A log showing
    different parties different trees is for its monitors' consistency proofs
    to catch, not for this check.)
    """
    checkpoint = _established(ctx.checkpoint, "checkpoint")
    bundle = ctx.bundle
    required = (bundle.receipt, bundle.evidence, *bundle.statements)
    committed = 0
    for envelope in required:
        entry = bundle.log.entry_for(envelope.digest)
        if entry is None:
            raise VerificationFailed(f"no log proof for {envelope.type} {envelope.digest}")
        committed += entry.salt is not None
        verify_inclusion(
            entry.index,
            checkpoint.size,
            entry_leaf_hash(envelope.to_json(), entry.salt),
            entry.proof,
            checkpoint.root_hash,
        )
    how = f" ({committed} as salted commitments)" if committed else ""
    return Passed(f"all {len(required)} statements are in the log at size {checkpoint.size}{how}")


CHECKS: tuple[NamedCheck, ...] = (
    NamedCheck("enclave key statement", enclave_key_statement),
    NamedCheck("TEE evidence", tee_evidence),
    NamedCheck("receipt signature", receipt_signature),
    NamedCheck("receipt names this enclave", receipt_names_this_enclave),
    NamedCheck("computation request", computation_request),
    NamedCheck("computation code", computation_code),
    NamedCheck("timing", timing),
    NamedCheck("dataset attestations", dataset_attestations),
    NamedCheck("owner approvals", owner_approvals),
    NamedCheck("recipients", recipients),
    NamedCheck("output for {recipient}...", output_matches_receipt, per_output=True),
    NamedCheck("log checkpoint", log_checkpoint),
    NamedCheck("log inclusion", log_inclusion),
)

WITNESS_CHECK = NamedCheck("witness cosignatures", witness_cosignatures)
CONSISTENCY_CHECK = NamedCheck("log consistency", log_consistency)


def checks_for(trust: TrustPolicy) -> tuple[NamedCheck, ...]:
    """:data:`CHECKS`, with the log checks ``trust`` asks for after "log checkpoint"."""
    extra: tuple[NamedCheck, ...] = (WITNESS_CHECK,) if trust.witnesses is not None else ()
    extra += (CONSISTENCY_CHECK,) if trust.checkpoint is not None else ()
    at = next(i for i, c in enumerate(CHECKS) if c.run is log_checkpoint) + 1
    return (*CHECKS[:at], *extra, *CHECKS[at:])
