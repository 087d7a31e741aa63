"""Enclaves and their jobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "CompleteJobBody",
    "EnclaveBody",
    "EnclaveList",
    "EnclaveRegistered",
    "EnclaveView",
    "JobInput",
    "JobView",
    "LeaseView",
    "LedgerCharge",
    "LedgerView",
    "PendingRelease",
    "PendingReleases",
    "ReleaseBody",
    "ReleaseKey",
    "SealedOutput",
]


class EnclaveBody(WireModel):
    """Signed by the enclave key inside the evidence."""

    evidence: EnvelopeField = Field(description="An EnclaveEvidence envelope.")


class EnclaveRegistered(WireModel):
    evidence: DigestStr
    party: PartyIdStr
    tee: Literal["tdx", "simulated"]
    simulated: bool
    log_index: int


class EnclaveView(WireModel):
    evidence: DigestStr
    envelope: EnvelopeField
    tee: Literal["tdx", "simulated"]
    simulated: bool
    party: PartyIdStr
    log_index: int
    created_at: int


class EnclaveList(WireModel):
    """The enclaves the coordinator admits now (newest first), and its admission policy in words."""

    enclaves: tuple[EnclaveView, ...]
    admission: str


class JobInput(WireModel):
    dataset: DigestStr
    size: int
    parts: int = Field(
        default=0,
        description="0: one sealed body (GET .../inputs/{dataset}); n > 0: a chunked upload "
        "of n parts (GET .../inputs/{dataset}/parts/{i}), one sealed stream cut in pieces.",
    )
    leaves: B64Field | None = Field(
        default=None,
        description="For a chunked upload: the commitment's leaf index, sealed to the enclave.",
    )


class JobView(WireModel):
    request: EnvelopeField
    approvals: tuple[EnvelopeField, ...]
    attestations: tuple[EnvelopeField, ...]
    policies: tuple[EnvelopeField, ...]
    room_policy: EnvelopeField | None = Field(
        description="The Policy the request names as its room policy (null when none)."
    )
    inputs: tuple[JobInput, ...]
    evidence: DigestStr
    lease_until: int
    room: EnvelopeField | None = Field(
        default=None,
        description="The Room whose snapshot names the room policy (null when not a room run).",
    )
    consents: tuple[EnvelopeField, ...] = Field(
        default=(),
        max_length=64,
        description="The room members' current RoomConsent envelopes (room runs only).",
    )
    run_approvals: tuple[EnvelopeField, ...] = Field(
        default=(),
        max_length=256,
        description="The people's RunApproval envelopes for this run (room runs only).",
    )
    org_members: tuple[EnvelopeField, ...] = Field(
        default=(),
        max_length=256,
        description="The OrgMember envelopes naming those people (room runs only).",
    )


class SealedOutput(WireModel):
    recipient: str
    sealed: B64Field = Field(
        description="The recipient's sealed ReleasedOutput, wrapped under a release key the "
        "enclave posts later (POST /v1/jobs/{rid}/release)."
    )


class ReleaseKey(WireModel):
    recipient: PartyIdStr
    sealed_key: B64Field = Field(
        description="The recipient's 32-byte release key, sealed to the recipient "
        "(purpose release-key)."
    )


class ReleaseBody(WireModel):
    """Posted by the enclave after it proved the request's budget charges are logged."""

    keys: tuple[ReleaseKey, ...] = Field(
        min_length=1, max_length=1024, description="One per recipient, recipients distinct."
    )


class PendingRelease(WireModel):
    request: DigestStr
    receipt: EnvelopeField = Field(description="The request's receipt, signed by the enclave.")


class PendingReleases(WireModel):
    """Completed jobs of the calling enclave whose release keys are not all posted yet."""

    releases: tuple[PendingRelease, ...]


class CompleteJobBody(WireModel):
    receipt: EnvelopeField = Field(description="A Receipt envelope, signed by the enclave.")
    outputs: tuple[SealedOutput, ...] = Field(
        min_length=1, description="One per recipient, recipients distinct."
    )
    charges: tuple[EnvelopeField, ...] = Field(
        default=(),
        max_length=64,
        description="BudgetCharge envelopes, signed by the enclave: appended to each "
        "dataset's ledger in the same transaction that stores the result, only while each "
        "names its dataset's current head.",
    )


class LedgerCharge(WireModel):
    """One charge of a dataset's ledger, with its log leaf and inclusion proof."""

    envelope: EnvelopeField = Field(description="A BudgetCharge envelope.")
    log_index: int
    salt: B64Field | None = Field(
        default=None,
        description="The salt of the charge's log commitment (null if it is logged in clear).",
    )
    inclusion: tuple[B64Field, ...] = Field(
        description="The charge's inclusion proof in the view's checkpoint."
    )


class LedgerView(WireModel):
    """A dataset's whole ledger (its charges, oldest first) as of one signed checkpoint."""

    dataset: DigestStr
    checkpoint: str = Field(description="The C2SP signed checkpoint the proofs are against.")
    charges: tuple[LedgerCharge, ...]


class LeaseView(WireModel):
    request: DigestStr
    lease_until: int
