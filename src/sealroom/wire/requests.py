"""Computation requests: creation, approvals, the request view, results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sealroom.statements.models import ComputationRef
from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "ApprovalBody",
    "CreateRequestBody",
    "DraftView",
    "HistoryItem",
    "KeywordOverlapBody",
    "Precheck",
    "RequestInput",
    "RequestList",
    "RequestStatus",
    "RequestView",
    "ResultView",
]

RequestStatus = Literal[
    "pending", "approved", "running", "completed", "failed", "rejected", "withdrawn", "expired"
]


class CreateRequestBody(WireModel):
    request: EnvelopeField = Field(description="A ComputationRequest envelope.")


class KeywordOverlapBody(WireModel):
    """Without ``request`` the server answers the draft to sign; with it, creates the request."""

    dataset_a: str
    dataset_b: str = Field(description="Must differ from dataset_a.")
    request: EnvelopeField | None = Field(
        default=None, description="The signed draft: topic-overlap on [dataset_a, dataset_b]."
    )


class ApprovalBody(WireModel):
    approval: EnvelopeField = Field(description="An Approval envelope.")


class ProtocolReceiptsBody(WireModel):
    receipts: tuple[EnvelopeField, ...] = Field(
        min_length=1,
        max_length=200,
        description="Every participant's ProtocolReceipt envelope of the run (its co-signed record).",
    )


class RequestInput(WireModel):
    dataset: DigestStr
    owner: PartyIdStr
    decision: Literal["pending", "approve", "reject"]
    mode: Literal["manual", "policy"] | None
    reason: str | None
    approval: DigestStr | None
    sealed: bool
    enclave: DigestStr | None


class Precheck(WireModel):
    dataset: DigestStr
    allowed: bool
    automatic: bool
    reasons: tuple[str, ...]


class HistoryItem(WireModel):
    status: RequestStatus
    at: int
    reason: str | None


class RequestView(WireModel):
    request: DigestStr
    envelope: EnvelopeField
    requester: PartyIdStr
    computation: ComputationRef
    parameters: dict[str, Any]
    inputs: tuple[RequestInput, ...]
    recipients: tuple[PartyIdStr, ...]
    status: RequestStatus
    status_reason: str | None
    precheck: tuple[Precheck, ...]
    history: tuple[HistoryItem, ...]
    receipt: DigestStr | None
    created_at: int
    expires_at: int
    log_index: int
    log_salt: B64Field | None = Field(
        default=None,
        description="The salt of the log's commitment to the request (leaf = commitment, "
        "not the request); null if it is logged in clear.",
    )


class RequestList(WireModel):
    items: tuple[RequestView, ...]


class DraftView(WireModel):
    draft: dict[str, Any] = Field(description="The unsigned ComputationRequest to sign.")


class ResultView(WireModel):
    request: DigestStr
    recipient: PartyIdStr
    sealed: B64Field = Field(
        description="The sealed result, wrapped under the release key (commit-then-reveal)."
    )
    receipt: EnvelopeField
    release_key: B64Field | None = Field(
        default=None,
        description="The release key sealed to the recipient; null until the enclave has "
        "proved the request's budget charges are logged and released it.",
    )
