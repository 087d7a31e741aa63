"""The mediator enclave's job runner: check everything again, run, seal, sign.

:func:`execute_job` is a pure function of its inputs (statements and
ciphertexts the coordinator handed over, the enclave's keys, the computation
library and the time). It trusts nothing the coordinator says: every
signature, signer, digest, policy decision, approval, recipient key and input
commitment is checked here from the signed statements alone, and the first
failed check raises :class:`JobFailed` naming the step. Nothing partial is
ever returned: either a complete :class:`JobOutput` or an exception.

Erasure. Plaintext inputs, tables and results are dropped (``del``) as soon
as they are no longer needed, so no reference to them outlives the call.
Python cannot promise more: ``bytes`` are immutable and cannot be wiped,
the allocator (and Arrow's memory pool) reuses freed memory without zeroing
it, and a computation may have made copies of its own. What protects
plaintext left in freed memory is the TEE (encrypted, isolated memory for
the life of the CVM), not this code.

Policy and budgets. The enclave composes each input's owner policy with the
room policy the request names (the one handed over must be exactly that
one, by digest; composition only ever restricts, so a room policy can deny
more but never allow more), decides with
reasons, and then charges every input's budget in its ledger BEFORE it
unseals or computes anything: a query over budget is refused with nothing
computed. With the deployment's logged ledger (:mod:`sealroom.enclave.charges`,
what the worker uses) the charge is checked against the proved ledger here and
returned signed in :attr:`JobOutput.charges`; the coordinator stores it in the
same transaction as the release, on the head it was checked against, so
there is never a release without its charge nor a charge without its
release, and a request already charged is never computed again
(:class:`~sealroom.errors.AlreadyReleased`). With the local ledger
(:class:`~sealroom.enclave.ledger.SqlBudgetLedger`) the charge is committed
before any output exists and a retry reuses it. The decision record (per
input: policy, reasons, k, entity column, column rules, charge) is signed
into the receipt.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

import pyarrow as pa
from pydantic import BaseModel

from sealroom.computations.base import (
    DEFAULT_K,
    Computation,
    Footprint,
    PrivacyContext,
    PrivacyCost,
)
from sealroom.computations.registry import Registry
from sealroom.crypto.commit import DatasetCommitment, read_verified, read_verified_stream
from sealroom.crypto.keys import PartyId, PublicIdentity, b64decode_strict
from sealroom.crypto.sealing import SealContext, open_sealed, open_stream, seal
from sealroom.enclave.history import FootprintScope, ReleaseHistory, StoredRelease
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.ledger import BudgetLedger, Charge
from sealroom.enclave.receipts import issue_receipt
from sealroom.errors import (
    BackendUnavailable,
    CommitmentMismatch,
    Conflict,
    DecryptionFailed,
    InvalidInput,
    PolicyDenied,
    RegionMismatch,
    SealroomError,
    VerificationFailed,
)
from sealroom.policy.compose import decide_in_room
from sealroom.policy.room_admission import check_room_admits
from sealroom.policy.rules import Decision, PolicyRules, privacy_context
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    Envelope,
    InputDecision,
    Policy,
    PrivacyCharge,
    Receipt,
    ReleasedOutput,
    Signed,
    canonical_json,
)
from sealroom.statements.fields import canonical_decimal

__all__ = [
    "STEPS",
    "ChunkedInput",
    "JobFailed",
    "JobMaterials",
    "JobOutput",
    "SealedInput",
    "Step",
    "execute_job",
]

Step = Literal[
    "enclave",
    "request",
    "computation",
    "parameters",
    "attestations",
    "policies",
    "approvals",
    "recipients",
    "inputs",
    "budget",
    "commitments",
    "compute",
    "history",
    "release",
]
STEPS: tuple[Step, ...] = get_args(Step)
# A rule name a computation's refusal may carry out of the enclave (a fixed word, no data).
_RULE_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")


class JobFailed(SealroomError):
    """The enclave refused or could not finish a job; ``reason`` is safe to post anywhere.

    ``cause`` is an error of the original type whose detail is safe too: for
    steps that see plaintext (commitments, compute, release) it is rebuilt
    with a fixed message and the original exception is not chained, so no
    data value can reach the coordinator, a log or a traceback.
    """

    code = "job_failed"
    public_message = "the enclave refused the job"

    def __init__(self, step: Step, cause: SealroomError) -> None:
        self.step: Step = step
        self.cause = cause
        self.reason = f"{step}: {cause.detail or cause.public_message}"
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class ChunkedInput:
    """A sealed input uploaded in parts: one STREAM ciphertext cut into ``count`` pieces,
    fetched one at a time (``fetch(i)``) while it is opened, plus the commitment's leaf
    index sealed beside it. Untrusted like everything else the coordinator hands over:
    the stream's nonces bind each chunk's position and the end, the index is checked
    against the signed commitment root."""

    count: int
    fetch: Callable[[int], bytes]
    leaves: bytes

    def pieces(self) -> Iterator[bytes]:
        for index in range(self.count):
            yield self.fetch(index)


SealedInput = bytes | ChunkedInput


@dataclass(frozen=True, slots=True, kw_only=True)
class JobMaterials:
    """Everything the coordinator hands the enclave for one job; all of it is untrusted."""

    request: Envelope
    approvals: tuple[Envelope, ...]
    attestations: tuple[Envelope, ...]
    policies: tuple[Envelope, ...]
    # dataset digest -> the owner's sealed canonical Arrow IPC bytes (whole, or in parts)
    sealed_inputs: Mapping[str, SealedInput]
    # A room-level Policy whose rules apply to every input (composed, strictest wins).
    room_policy: Envelope | None = None
    # For a room's policy (consent_required): the Room naming it and the members' consents.
    room: Envelope | None = None
    consents: tuple[Envelope, ...] = ()
    # For a risky room: the people's approvals of this run and the statements naming them.
    run_approvals: tuple[Envelope, ...] = ()
    org_members: tuple[Envelope, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sealed_inputs", MappingProxyType(dict(self.sealed_inputs)))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutput:
    """The signed receipt, each recipient's sealed :class:`ReleasedOutput`, and the signed
    budget charges to store with them (empty with a ledger that commits charges itself)."""

    receipt: Signed[Receipt]
    sealed_outputs: Mapping[PartyId, bytes]
    charges: tuple[Envelope, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sealed_outputs", MappingProxyType(dict(self.sealed_outputs)))


@contextmanager
def _step(step: Step) -> Iterator[None]:
    """Turn a typed error from the statement-checking steps into :class:`JobFailed`.

    These steps see only signed statements (public metadata), so the
    original detail is safe to pass on.
    """
    try:
        yield
    except JobFailed:
        raise
    except SealroomError as exc:
        raise JobFailed(step, exc) from exc


def _digest_bytes(digest: str) -> bytes:
    return bytes.fromhex(digest.removeprefix("sha256:"))


def execute_job(
    materials: JobMaterials,
    *,
    keys: EnclaveKeys,
    registry: Registry,
    ledger: BudgetLedger,
    history: ReleaseHistory,
    now: int,
    random: Callable[[int], bytes] = os.urandom,
) -> JobOutput:
    """Run one mediated job, or raise :class:`JobFailed` at the first check that fails.

    ``ledger`` is the enclave's own budget ledger; it is charged for every
    input before any input is unsealed. ``history`` holds the footprints of
    earlier exact releases; an exact release is checked against it before it
    is sealed (:mod:`sealroom.enclave.history`).
    """
    with _step("enclave"):
        if keys.evidence.statement.created_at > now:
            raise VerificationFailed("the enclave's evidence is dated after the job time")
    with _step("request"):
        req = _open_request(materials.request, now)
    request = req.statement
    with _step("computation"):
        computation = registry.resolve(request.computation)
        computation.check_inputs(len(request.inputs))
    with _step("parameters"):
        params = computation.parse_params(request.parameters)
        cost = computation.cost(params)
    with _step("attestations"):
        atts = _open_attestations(materials.attestations, request)
    with _step("policies"):
        room = _open_room_policy(materials.room_policy, request)
        rules, decisions, automatic = _check_policies(
            materials.policies, atts, computation, request, params, room=room, now=now, cost=cost
        )
        _check_enclave_pins(
            keys, [*rules, PolicyRules.parse(room.statement.rules) if room else None]
        )
        if room is not None and PolicyRules.parse(room.statement.rules).consent_required:
            check_room_admits(
                materials.room,
                room,
                owners=[a.statement.owner for a in atts],
                consents=materials.consents,
                org_members=materials.org_members,
                run_approvals=materials.run_approvals,
                request=req.digest,
                now=now,
            )
    with _step("approvals"):
        approvals = _check_approvals(materials.approvals, req, atts, automatic, now=now)
    with _step("recipients"):
        recipients = _recipients(req, atts, computation)
    with _step("inputs"):
        extra = sorted(set(materials.sealed_inputs) - set(request.inputs))
        if extra:
            raise InvalidInput(f"sealed data for {extra[0]}, which is not an input of the request")
        missing = [d for d in request.inputs if d not in materials.sealed_inputs]
        if missing:
            raise InvalidInput(f"no sealed data for input {missing[0]}")
    charges = _charge(ledger, atts, rules, request=req, cost=cost, now=now)
    pending = tuple(c.statement.envelope for c in charges if c.statement is not None)
    # A replayed job (the coordinator holds everything it needs to replay one) gets the
    # bytes its request released before: never a fresh draw of DP noise. It comes after the
    # charge, so a replay of a job whose charges the coordinator did not store yet (a
    # crash between the run and its completion) completes with them; a charged one the
    # logged ledger refuses above. A history that cannot be reached (BackendUnavailable)
    # is not the job's fault: the worker retries.
    earlier = history.released(req.digest)
    if earlier is not None:
        with _step("history"):
            return _stored_output(earlier, pending)
    record = _decision_record(atts, rules, decisions, automatic, charges, room=room)
    spent = tuple(
        PrivacyCharge(
            dataset=c.dataset,
            epsilon=canonical_decimal(c.epsilon),
            delta=canonical_decimal(c.delta),
        )
        for c in charges
        if c.epsilon or c.delta
    )

    tables = _open_inputs(materials.sealed_inputs, atts, keys=keys, request_digest=req.digest)
    privacy = privacy_context(rules, cost)
    body, footprint = _compute(computation, tables, params, privacy)
    del tables
    if not cost.is_dp:
        with _step("history"):
            _difference_check(history, footprint, atts, privacy, request=req.digest, now=now)
    del footprint
    outputs = dict.fromkeys(recipients, body)
    del body
    released: dict[PartyId, ReleasedOutput] = {}
    failure: JobFailed | None = None
    try:
        receipt, released = issue_receipt(
            keys,
            request=req,
            approvals=approvals,
            attestations=atts,
            outputs=outputs,
            privacy_spent=spent,
            decisions=record,
            issued_at=now,
            random=random,
        )
        sealed = {
            recipient: seal(
                output.to_json(),
                recipients[recipient],
                SealContext(
                    request_digest=_digest_bytes(req.digest), recipient=recipient, purpose="result"
                ),
            )
            for recipient, output in released.items()
        }
    except SealroomError as exc:
        # Only statement and key errors can arise here; their details carry no data,
        # and the traceback (whose frames saw the plaintext output) is dropped.
        failure = JobFailed("release", exc.with_traceback(None))
    finally:
        outputs.clear()
        released.clear()
    if failure is not None:
        raise failure
    kept = history.keep_release(
        req.digest, StoredRelease(receipt=receipt.envelope.to_json(), outputs=sealed), now=now
    )
    with _step("history"):
        return _stored_output(kept, pending)


def _stored_output(release: StoredRelease, charges: tuple[Envelope, ...]) -> JobOutput:
    """The job output a request released (this run's, or an earlier run's on a replay), with
    the budget charges the coordinator stores with it."""
    return JobOutput(
        receipt=Envelope.from_json(release.receipt).open(Receipt),
        sealed_outputs=release.outputs,
        charges=charges,
    )


def _open_request(envelope: Envelope, now: int) -> Signed[ComputationRequest]:
    req = envelope.open(ComputationRequest)
    request = req.statement
    if now < request.created_at:
        raise InvalidInput(f"the request is dated {request.created_at}, after the job time {now}")
    if now > request.expires_at:
        raise Conflict(f"the request expired at {request.expires_at} (job time {now})")
    return req


def _open_attestations(
    envelopes: Sequence[Envelope], request: ComputationRequest
) -> tuple[Signed[DatasetAttestation], ...]:
    """Exactly one owner-signed attestation per requested input, in the request's order."""
    by_digest: dict[str, Signed[DatasetAttestation]] = {}
    for envelope in envelopes:
        att = envelope.open(DatasetAttestation)
        if att.digest in by_digest:
            raise InvalidInput(f"attestation {att.digest} is given twice")
        if att.digest not in request.inputs:
            raise InvalidInput(f"attestation {att.digest} is not an input of the request")
        by_digest[att.digest] = att
    for digest in request.inputs:
        if digest not in by_digest:
            raise InvalidInput(f"no attestation for input {digest}")
    return tuple(by_digest[d] for d in request.inputs)


def _check_enclave_pins(keys: EnclaveKeys, rules: Sequence[PolicyRules | None]) -> None:
    """This enclave's evidence satisfies every owner's (and the room's) ``enclave`` pin
    and ``region``.

    The owners' clients check their pins before sealing; this catches inputs a
    coordinator routed here for an owner whose pin excludes this enclave. As of
    the evidence's creation, as ``sealroom verify`` checks it.
    """
    evidence = keys.evidence.statement
    for r in rules:
        if r is not None and r.region is not None and r.region != evidence.keys.region:
            raise RegionMismatch(
                f"rule region: the data may only be processed in region {r.region!r}; this "
                f"enclave declares {evidence.keys.region or 'no region'}"
            )
        pin = r.enclave_pin if r is not None else None
        if pin is not None:
            pin.check_as_of(
                evidence.tee_evidence(),
                key_document=evidence.keys.canonical_bytes(),
                at_time=evidence.created_at,
            )


def _open_room_policy(
    envelope: Envelope | None, request: ComputationRequest
) -> Signed[Policy] | None:
    """Exactly the room policy the request names (by digest), validly signed, or none.

    Composing any room policy could only restrict (see the module doc), but a
    coordinator that drops or swaps the one the requester named would change
    what was asked for, so the enclave refuses either way.
    """
    if envelope is None:
        if request.room_policy is not None:
            raise InvalidInput(f"the request names room policy {request.room_policy}; none given")
        return None
    if request.room_policy is None:
        raise InvalidInput(f"room policy {envelope.digest} is given, but the request names none")
    if envelope.digest != request.room_policy:
        raise VerificationFailed(
            f"room policy {envelope.digest} is not the one the request names "
            f"({request.room_policy})"
        )
    room = envelope.open(Policy)
    PolicyRules.parse(room.statement.rules)
    return room


def _check_policies(
    envelopes: Sequence[Envelope],
    atts: Sequence[Signed[DatasetAttestation]],
    computation: Computation,
    request: ComputationRequest,
    params: BaseModel,
    *,
    room: Signed[Policy] | None,
    now: int,
    cost: PrivacyCost,
) -> tuple[tuple[PolicyRules | None, ...], tuple[Decision, ...], tuple[bool, ...]]:
    """Exactly the policies the inputs name, each signed by its input's owner, each allowing.

    Returns per input the effective (composed) rules, the decision on them, and
    whether the owner's own policy approves automatically (an automatic
    approval is attributed to the owner's policy) and the composition with
    the room policy, if any, still does.
    """
    by_digest: dict[str, Signed[Policy]] = {}
    for envelope in envelopes:
        policy = envelope.open(Policy)
        if policy.digest in by_digest:
            raise InvalidInput(f"policy {policy.digest} is given twice")
        by_digest[policy.digest] = policy
    named = {a.statement.policy for a in atts if a.statement.policy is not None}
    extra = sorted(set(by_digest) - named)
    if extra:
        raise InvalidInput(f"policy {extra[0]} is not the policy of any input")
    room_rules = PolicyRules.parse(room.statement.rules) if room is not None else None
    rules: list[PolicyRules | None] = []
    decisions: list[Decision] = []
    automatic: list[bool] = []
    for att in atts:
        digest = att.statement.policy
        if digest is None:
            parsed = None
        else:
            named_policy = by_digest.get(digest)
            if named_policy is None:
                raise InvalidInput(f"policy {digest} of input {att.digest} is missing")
            if named_policy.statement.owner != att.statement.owner:
                raise VerificationFailed(
                    f"policy {digest} is signed by {named_policy.statement.owner}, "
                    f"not by the owner of input {att.digest}"
                )
            parsed = PolicyRules.parse(named_policy.statement.rules)
        shape = computation.request_shape(
            params,
            partners=[a.statement.commitment.root for a in atts if a.digest != att.digest],
        )
        # The same function as the coordinator's pre-check and the owner's client.
        decision, effective = decide_in_room(
            parsed,
            room_rules,
            computation=computation,
            request=shape,
            requester=request.requester,
            now=now,
            cost=cost,
        )
        if not decision.allowed:
            raise PolicyDenied(f"input {att.digest}: {decision.reason}")
        rules.append(effective)
        decisions.append(decision)
        # Automatic only if the owner's policy approves automatically and the room,
        # which may restrict automatic approvals, does too (decide_in_room).
        automatic.append(decision.automatic)
    return tuple(rules), tuple(decisions), tuple(automatic)


def _charge(
    ledger: BudgetLedger,
    atts: Sequence[Signed[DatasetAttestation]],
    rules: Sequence[PolicyRules | None],
    *,
    request: Signed[ComputationRequest],
    cost: PrivacyCost,
    now: int,
) -> tuple[Charge, ...]:
    """Charge every input's budget (committed) before anything is unsealed.

    A ledger that cannot be reached is not the job's fault: BackendUnavailable
    passes through so the worker retries the job later (the charge is idempotent).
    """
    charges: list[Charge] = []
    for att, r in zip(atts, rules, strict=True):
        try:
            charges.append(
                ledger.charge(
                    dataset=att.digest,
                    requester=request.statement.requester,
                    cost=cost,
                    request=request.digest,
                    now=now,
                    rules=r,
                )
            )
        except BackendUnavailable:
            raise
        except SealroomError as exc:
            raise JobFailed("budget", exc) from exc
    return tuple(charges)


def _decision_record(
    atts: Sequence[Signed[DatasetAttestation]],
    rules: Sequence[PolicyRules | None],
    decisions: Sequence[Decision],
    automatic: Sequence[bool],
    charges: Sequence[Charge],
    *,
    room: Signed[Policy] | None,
) -> tuple[InputDecision, ...]:
    out: list[InputDecision] = []
    for att, r, d, auto, c in zip(atts, rules, decisions, automatic, charges, strict=True):
        out.append(
            InputDecision(
                dataset=att.digest,
                policy=att.statement.policy,
                room_policy=room.digest if room is not None else None,
                decision="allow",
                automatic=auto,
                reasons=tuple(x[:1000] for x in d.reasons[:32]),
                k=r.k if r is not None else DEFAULT_K,
                entity_column=r.entity_column if r is not None else None,
                never_output=tuple(sorted(r.never_output)) if r is not None else (),
                join_only=tuple(sorted(r.join_only)) if r is not None else (),
                max_output_rows=r.max_output_rows if r is not None else None,
                epsilon=canonical_decimal(c.epsilon),
                delta=canonical_decimal(c.delta),
            )
        )
    return tuple(out)


def _check_approvals(
    envelopes: Sequence[Envelope],
    req: Signed[ComputationRequest],
    atts: Sequence[Signed[DatasetAttestation]],
    automatic: Sequence[bool],
    *,
    now: int,
) -> tuple[Signed[Approval], ...]:
    """One owner-signed approval per input for this request; any rejection ends the job."""
    request = req.statement
    position: dict[str, int] = {att.digest: i for i, att in enumerate(atts)}
    chosen: dict[str, Signed[Approval]] = {}
    seen: set[str] = set()
    for envelope in envelopes:
        appr = envelope.open(Approval)
        approval = appr.statement
        if appr.digest in seen:
            raise InvalidInput(f"approval {appr.digest} is given twice")
        seen.add(appr.digest)
        if approval.request != req.digest:
            raise VerificationFailed(f"approval {appr.digest} is for another request")
        i = position.get(approval.dataset)
        if i is None:
            raise VerificationFailed(
                f"approval {appr.digest} is for {approval.dataset}, not an input of the request"
            )
        att = atts[i]
        if approval.approver != att.statement.owner:
            raise VerificationFailed(
                f"approval {appr.digest} is signed by {approval.approver}, "
                f"not by the owner of {att.digest}"
            )
        if approval.decision == "reject":
            raise PolicyDenied(f"the owner of {att.digest} rejected the request")
        # The same window the receipt verifier checks (``now`` is the receipt's time).
        if not request.created_at <= approval.created_at <= now:
            raise VerificationFailed(
                f"approval {appr.digest} is dated outside the request's lifetime so far"
            )
        if approval.dataset in chosen:
            raise InvalidInput(f"more than one approval for input {approval.dataset}")
        if approval.mode == "policy":
            if approval.policy != att.statement.policy:
                raise VerificationFailed(
                    f"approval {appr.digest} is attributed to policy {approval.policy}, "
                    f"which is not the policy of {att.digest}"
                )
            if not automatic[i]:
                raise PolicyDenied(
                    f"approval {appr.digest} is automatic, but the policy of {att.digest} "
                    "does not approve this automatically"
                )
        chosen[approval.dataset] = appr
    for att in atts:
        if att.digest not in chosen:
            raise PolicyDenied(f"no approval from the owner of {att.digest}")
    return tuple(chosen[a.digest] for a in atts)


def _recipients(
    req: Signed[ComputationRequest],
    atts: Sequence[Signed[DatasetAttestation]],
    computation: Computation,
) -> dict[PartyId, PublicIdentity]:
    """Recipients by the computation's release rule, with keys from verified signers only."""
    request = req.statement
    keys: dict[PartyId, PublicIdentity] = {req.envelope.signer.party_id: req.envelope.signer}
    if computation.release == "all-parties":
        for att in atts:
            keys[att.envelope.signer.party_id] = att.envelope.signer
    if set(request.recipients) != set(keys):
        who = (
            "the requester only"
            if computation.release == "requester"
            else "the requester and every input owner"
        )
        raise PolicyDenied(
            f"{computation.id} releases to {who} (release rule {computation.release!r}); "
            f"the request names {len(request.recipients)} recipient(s) that differ"
        )
    return {PartyId(r): keys[PartyId(r)] for r in request.recipients}


def _open_chunked(
    sealed: ChunkedInput,
    dataset: str,
    commitment: DatasetCommitment,
    keys: EnclaveKeys,
    context: SealContext,
) -> pa.Table:
    """Open a chunked input straight into Arrow: parts are fetched, decrypted and checked
    against the commitment's leaves one at a time, so the input is held once (as the table).

    A coordinator that cannot be reached is not the input's fault: that error passes
    through and the worker retries the job.
    """
    leaves_context = SealContext(
        request_digest=context.request_digest,
        recipient=context.recipient,
        purpose="input-leaves",
    )
    with _step("inputs"):
        leaves = open_sealed(sealed.leaves, keys.identity, leaves_context)
    failure: SealroomError | None = None
    try:
        plain = open_stream(sealed.pieces(), keys.identity, context)
        return read_verified_stream(plain, commitment, leaves)
    except BackendUnavailable:
        raise
    except DecryptionFailed as exc:
        failure = JobFailed("inputs", DecryptionFailed(f"input {dataset}: {exc.detail}"))
    except CommitmentMismatch as exc:
        failure = JobFailed("commitments", CommitmentMismatch(f"input {dataset}: {exc.detail}"))
    except InvalidInput:
        failure = JobFailed(
            "commitments",
            InvalidInput(f"input {dataset} matches its commitment but is not canonical Arrow IPC"),
        )
    except SealroomError as exc:
        failure = JobFailed("inputs", exc)
    raise failure


def _open_inputs(
    sealed_inputs: Mapping[str, SealedInput],
    atts: Sequence[Signed[DatasetAttestation]],
    *,
    keys: EnclaveKeys,
    request_digest: str,
) -> list[pa.Table]:
    """Unseal each input and check it against its owner's signed commitment."""
    tables: list[pa.Table] = []
    context = SealContext(
        request_digest=_digest_bytes(request_digest),
        recipient=keys.public.party_id,
        purpose="input",
    )
    try:
        for att in atts:
            ref = att.statement.commitment
            with _step("commitments"):
                commitment = DatasetCommitment(
                    root=b64decode_strict(ref.root, what="commitment root", size=32),
                    length=ref.length,
                    rows=ref.rows,
                    chunk_size=ref.chunk_size,
                )
            sealed = sealed_inputs[att.digest]
            if isinstance(sealed, ChunkedInput):
                tables.append(_open_chunked(sealed, att.digest, commitment, keys, context))
                continue
            with _step("inputs"):
                plain = open_sealed(sealed, keys.identity, context)
            failure: SealroomError | None = None
            try:
                tables.append(read_verified(plain, commitment))
            except CommitmentMismatch as exc:
                # Lengths, row counts and roots only: the detail carries no data.
                failure = CommitmentMismatch(f"input {att.digest}: {exc.detail}")
            except SealroomError:
                failure = InvalidInput(
                    f"input {att.digest} matches its commitment but is not canonical Arrow IPC"
                )
            del plain
            if failure is not None:
                tables.clear()
                raise JobFailed("commitments", failure)
    except BaseException:
        # A traceback keeps this frame alive: do not let it keep earlier inputs too.
        tables.clear()
        raise
    return tables


def _compute(
    computation: Computation,
    tables: list[pa.Table],
    params: BaseModel,
    privacy: PrivacyContext,
) -> tuple[bytes, Footprint | None]:
    """Run the computation and serialise its output; errors keep their type, never their text.

    A refusal keeps its rule's name (a fixed, public word), never its detail.
    The failure is raised outside the ``except`` block so the computation's
    own exception (whose message may quote data) is not even chained.
    """
    label = f"{computation.id} {computation.version}"
    failure: JobFailed | None = None
    body = b""
    footprint: Footprint | None = None
    try:
        output, footprint = computation.execute(tables, params, privacy)
        if footprint is not None and not privacy.cost.is_dp:
            footprint = _rows_as_content(footprint, tables, privacy)
        try:
            body = canonical_json(output.model_dump(mode="json"))
        except SealroomError:
            failure = JobFailed(
                "release", InvalidInput(f"the output of {label} cannot be serialised canonically")
            )
        del output
    except PolicyDenied as exc:
        rule = exc.rule if exc.rule is not None and _RULE_NAME.fullmatch(exc.rule) else None
        why = f" under rule {rule}" if rule else ""
        failure = JobFailed("compute", PolicyDenied(f"{label} refused its inputs{why}", rule=rule))
    except SealroomError as exc:
        failure = JobFailed("compute", type(exc)(f"{label} refused its inputs ({exc.code})"))
    except Exception:  # a computation bug must not leak data or crash the worker
        failure = JobFailed("compute", SealroomError(f"{label} failed with an internal error"))
    tables.clear()
    if failure is not None:
        raise failure
    return body, footprint


def _rows_as_content(
    footprint: Footprint, tables: Sequence[pa.Table], privacy: PrivacyContext
) -> Footprint:
    """Row numbers in the footprint of an input without an entity column, replaced by each
    row's content identity (a hash of its values, and which copy of those values it is).

    Rows are that input's entities, and a row number shifts when the owner republishes
    with one more row: the history could never compare two versions. Content identities
    stay put, so versions of the owner's datasets compare as those with an entity column
    do. Anything but a row number there fails the run (closed).
    """
    cells = list(footprint.cells)
    for i, entity in enumerate(privacy.entity_columns):
        if entity is not None or not cells[i]:
            continue
        identity = _row_identities(tables[i])
        mapped: list[frozenset[Hashable]] = []
        for cell in cells[i]:
            rows: set[Hashable] = set()
            for r in cell:
                if not isinstance(r, int) or not 0 <= r < len(identity):
                    raise TypeError("a footprint of rows must hold row numbers")
                rows.add(identity[r])
            mapped.append(frozenset(rows))
        cells[i] = tuple(mapped)
    return Footprint(cells=tuple(cells))


def _row_identities(table: pa.Table) -> list[tuple[bytes, int]]:
    """Per row: a hash of its values and how many earlier rows have the same values."""
    columns = [table.column(c).to_pylist() for c in range(table.num_columns)]
    seen: dict[bytes, int] = {}
    out: list[tuple[bytes, int]] = []
    for values in zip(*columns, strict=True):
        digest = hashlib.blake2b(repr(values).encode("utf-8", "surrogatepass"), digest_size=16)
        key = digest.digest()
        copy = seen.get(key, 0)
        seen[key] = copy + 1
        out.append((key, copy))
    return out


def _difference_check(
    history: ReleaseHistory,
    footprint: Footprint | None,
    atts: Sequence[Signed[DatasetAttestation]],
    privacy: PrivacyContext,
    *,
    request: str,
    now: int,
) -> None:
    """Check an exact release's footprint against every earlier release, then record it."""
    if footprint is None:
        return
    scopes = [
        FootprintScope(
            # Rows (no entity column) are compared across all the owner's row datasets, by
            # content (see _rows_as_content), so a republished version meets the last one.
            scope=(
                f"{att.statement.owner}:{column}"
                if (column := privacy.entity_columns[i]) is not None
                else f"{att.statement.owner}#rows"
            ),
            k=privacy.k[i],
            cells=footprint.cells[i],
        )
        for i, att in enumerate(atts)
        if footprint.cells[i]
    ]
    history.check_and_record(scopes, request=request, now=now)
