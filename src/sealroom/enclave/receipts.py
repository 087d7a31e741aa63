"""Issuing receipts: what the enclave ran, on what, for whom, signed by its attested key."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from sealroom.crypto.keys import PartyId
from sealroom.enclave.keys import EnclaveKeys
from sealroom.errors import InvalidInput
from sealroom.statements import (
    Approval,
    ComputationRequest,
    DatasetAttestation,
    Digest,
    InputDecision,
    InputRef,
    OutputRef,
    PrivacyCharge,
    Receipt,
    ReleasedOutput,
    Signed,
    sign_statement,
)
from sealroom.statements.models import OUTPUT_SALT_SIZE

__all__ = ["issue_receipt"]


def issue_receipt(
    keys: EnclaveKeys,
    *,
    request: Signed[ComputationRequest],
    approvals: Sequence[Signed[Approval]],
    attestations: Sequence[Signed[DatasetAttestation]],
    outputs: Mapping[PartyId, bytes],
    privacy_spent: Sequence[PrivacyCharge] = (),
    decisions: Sequence[InputDecision],
    issued_at: int,
    random: Callable[[int], bytes] = os.urandom,
) -> tuple[Signed[Receipt], dict[PartyId, ReleasedOutput]]:
    """Sign a receipt committing (salted) to each recipient's output; return both.

    The caller has already checked signatures, approvals and policy; this
    function only refuses outputs for parties the request did not name.
    """
    if set(outputs) != set(request.statement.recipients):
        raise InvalidInput("outputs must be given for exactly the request's recipients")
    released = {
        recipient: ReleasedOutput(
            request=request.digest,
            recipient=recipient,
            salt=random(OUTPUT_SALT_SIZE),
            body=body,
        )
        for recipient, body in outputs.items()
    }
    policies = sorted(
        {a.statement.policy for a in attestations if a.statement.policy}
        | {d.room_policy for d in decisions if d.room_policy}
    )
    receipt = Receipt(
        request=request.digest,
        approvals=tuple(a.digest for a in approvals),
        inputs=tuple(
            InputRef(dataset=a.digest, commitment_root=a.statement.commitment.root)
            for a in attestations
        ),
        computation=request.statement.computation,
        policies=tuple(policies),
        privacy_spent=tuple(privacy_spent),
        decisions=tuple(decisions),
        outputs=tuple(
            OutputRef(recipient=r, commitment=o.commitment()) for r, o in sorted(released.items())
        ),
        evidence=Digest(keys.evidence.digest),
        tee=keys.evidence.statement.tee,
        simulated=keys.evidence.statement.simulated,
        issued_at=issued_at,
    )
    return sign_statement(receipt, keys.identity), released
