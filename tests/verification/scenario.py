"""A complete, verifiable job built from the library's parts, with knobs to break it.

:func:`context` gives the context every check sees once all earlier checks passed, so a
test can run one check alone; :func:`resigned_receipt` makes a receipt the enclave did
sign but that says something else (the verifier must catch it by content, not signature).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.crypto.keys import Identity
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.receipts import issue_receipt
from sealroom.statements import (
    ComputationRequest,
    EnclaveEvidence,
    Envelope,
    InputDecision,
    Policy,
    Receipt,
    ReleasedOutput,
    Signed,
    is_public,
    sign_statement,
)
from sealroom.transparency.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from sealroom.transparency.entries import committed_entry
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.bundle import ProofBundle
from sealroom.verification.checks import Context
from sealroom.verification.trust import TrustPolicy, trust_policy
from tests.helpers import T0, approval, attestation, identity, request

LOG_NAME = "test.sealroom.example/log"


@dataclass
class Job:
    bundle: ProofBundle
    output: ReleasedOutput
    root: SimulationRoot
    log_signer: NoteSigner
    log: TransparencyLog
    enclave: EnclaveKeys
    owner: Identity
    requester: Identity


def build_job(
    *,
    approver: Identity | None = None,
    approval_overrides: dict[str, Any] | None = None,
    receipt_time: int = T0 + 120,
    room: bool = False,
    decision_room: str | bool | None = True,
    bundle_room: bool = True,
    dataset_policy: bool = False,
    evidence_time: int = T0,
    committed: bool = True,
) -> Job:
    """``room``: the request names a room policy (signed by the requester); the decision
    record names ``decision_room`` (True: the request's) and the bundle carries it if
    ``bundle_room``. ``dataset_policy``: the attestation names a policy of its owner.
    ``committed``: private statements are logged as salted commitments (else in clear, as
    before commitments existed)."""
    owner, requester = identity("owner"), identity("requester")
    root = SimulationRoot.from_private_bytes(hashlib.sha256(b"sim-root").digest())
    enclave = EnclaveKeys.create_at_time(SimulatedEnclave(root), tee="simulated", now=evidence_time)

    own_policy = sign_statement(
        Policy(owner=owner.party_id, name="mine", rules={"k": 5}, created_at=T0), owner
    )
    att = sign_statement(
        attestation(owner, policy=own_policy.digest if dataset_policy else None), owner
    )
    room_policy = sign_statement(
        Policy(
            owner=requester.party_id,
            name="room",
            rules={"allow": [{"id": "row-count"}], "k": 10},
            created_at=T0,
        ),
        requester,
    )
    named = room_policy.digest if room else None
    req = sign_statement(request(requester, (att.digest,), room_policy=named), requester)
    signer = approver or owner
    appr = sign_statement(
        approval(signer, req.digest, att.digest, **(approval_overrides or {})), signer
    )
    receipt, released = issue_receipt(
        enclave,
        request=req,
        approvals=[appr],
        attestations=[att],
        outputs={requester.party_id: b'{"rows":3}'},
        decisions=[
            InputDecision(
                dataset=att.digest,
                policy=att.statement.policy,
                room_policy=named if decision_room is True else decision_room or None,
                decision="allow",
                automatic=False,
                reasons=("the owner approved by hand",),
                k=5,
                entity_column=None,
                never_output=(),
                join_only=(),
                max_output_rows=None,
                epsilon="0",
                delta="0",
            )
        ],
        issued_at=receipt_time,
        random=lambda n: b"\x07" * n,
    )
    log = TransparencyLog(MemoryLogStore())
    log_signer = NoteSigner.from_seed(LOG_NAME, hashlib.sha256(b"log").digest())
    statements: list[Envelope] = [req.envelope, appr.envelope, att.envelope]
    if dataset_policy:
        statements.append(own_policy.envelope)
    if room and bundle_room:
        statements.append(room_policy.envelope)
    logged = [enclave.evidence.envelope, *statements, receipt.envelope]
    # As the coordinator logs them: private statements as salted commitments.
    salts = {
        env.digest: hashlib.sha256(b"salt" + env.digest.encode()).digest()
        for env in logged
        if committed and not is_public(env.type)
    }
    indices = {
        env.digest: log.append(committed_entry(env.to_json(), salts.get(env.digest)))
        for env in logged
    }
    bundle = assemble_bundle(
        receipt=receipt.envelope,
        evidence=enclave.evidence.envelope,
        statements=statements,
        log=log,
        indices=indices,
        checkpoint=log.checkpoint(log_signer),
        verifier_key=log_signer.verifier.vkey,
        salts=salts,
    )
    return Job(
        bundle=bundle,
        output=released[requester.party_id],
        root=root,
        log_signer=log_signer,
        log=log,
        enclave=enclave,
        owner=owner,
        requester=requester,
    )


def pinned(job: Job, **overrides: object) -> TrustPolicy:
    """Trust exactly this job's simulation root and log key (and allow simulation)."""
    options: dict[str, object] = {
        "allow_simulated": True,
        "log_key": job.log_signer.verifier.vkey,
        "simulation_root": job.root.public_key,
    }
    options.update(overrides)
    return trust_policy(**options)  # type: ignore[arg-type]


def context(job: Job, trust: TrustPolicy | None = None) -> Context:
    """The context a check sees when every check before it passed (checking ``job.output``)."""
    bundle = job.bundle
    receipt = bundle.receipt.open(Receipt)
    req = bundle.statement(receipt.statement.request)
    assert req is not None
    return Context(
        bundle=bundle,
        trust=trust or pinned(job),
        outputs=(job.output,),
        evidence=bundle.evidence.open(EnclaveEvidence),
        receipt=receipt,
        request=req.open(ComputationRequest),
        checkpoint=open_checkpoint(
            bundle.log.checkpoint, NoteVerifier.from_vkey(bundle.log.verifier_key)
        ),
        output=job.output,
    )


def resigned_receipt(job: Job, **changes: object) -> Signed[Receipt]:
    """The job's receipt with ``changes``, validly signed by the job's enclave."""
    receipt = job.bundle.receipt.open(Receipt).statement.model_copy(update=changes)
    return sign_statement(receipt, job.enclave.identity).envelope.open(Receipt)
