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


class SealedOutput(WireModel):
    recipient: str
    sealed: B64Field = Field(description="The recipient's sealed ReleasedOutput.")


class CompleteJobBody(WireModel):
    receipt: EnvelopeField = Field(description="A Receipt envelope, signed by the enclave.")
    outputs: tuple[SealedOutput, ...] = Field(
        min_length=1, description="One per recipient, recipients distinct."
    )
