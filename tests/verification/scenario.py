"""A complete, verifiable job built from the library's parts, with knobs to break it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sealroom.attestation.simulated import SimulatedEnclave, SimulationRoot
from sealroom.crypto.keys import Identity
from sealroom.enclave.keys import EnclaveKeys
from sealroom.enclave.receipts import issue_receipt
from sealroom.statements import Envelope, InputDecision, Policy, ReleasedOutput, sign_statement
from sealroom.transparency.checkpoint import NoteSigner
from sealroom.transparency.log import MemoryLogStore, TransparencyLog
from sealroom.verification.assemble import assemble_bundle
from sealroom.verification.bundle import ProofBundle
from tests.helpers import T0, approval, attestation, identity, request

LOG_NAME = "test.sealroom.example/log"


@dataclass
class Job:
    bundle: ProofBundle
    output: ReleasedOutput
    root: SimulationRoot
    log_signer: NoteSigner
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
) -> Job:
    """``room``: the request names a room policy (signed by the requester); the decision
    record names ``decision_room`` (True: the request's) and the bundle carries it if
    ``bundle_room``."""
    owner, requester = identity("owner"), identity("requester")
    root = SimulationRoot.from_private_bytes(hashlib.sha256(b"sim-root").digest())
    enclave = EnclaveKeys.create_at_time(SimulatedEnclave(root), tee="simulated", now=T0)

    att = sign_statement(attestation(owner), owner)
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
    if room and bundle_room:
        statements.append(room_policy.envelope)
    logged = [enclave.evidence.envelope, *statements, receipt.envelope]
    indices = {env.digest: log.append(env.to_json()) for env in logged}
    bundle = assemble_bundle(
        receipt=receipt.envelope,
        evidence=enclave.evidence.envelope,
        statements=statements,
        log=log,
        indices=indices,
        checkpoint=log.checkpoint(log_signer),
        verifier_key=log_signer.verifier.vkey,
    )
    return Job(
        bundle=bundle,
        output=released[requester.party_id],
        root=root,
        log_signer=log_signer,
        owner=owner,
        requester=requester,
    )
