"""Policies, datasets and discovery."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from sealroom.statements.models import Keyword, TimeRange
from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "BudgetView",
    "DatasetPage",
    "DatasetView",
    "Inclusion",
    "PolicyBody",
    "PolicyCreated",
    "PolicyView",
    "PublishDatasetBody",
    "PublishedDataset",
    "RequesterBudget",
    "SearchHit",
    "SearchPage",
]


class PolicyBody(WireModel):
    policy: EnvelopeField = Field(description="A Policy envelope, signed by its owner.")


class PolicyCreated(WireModel):
    policy: DigestStr
    log_index: int


class PolicyView(WireModel):
    policy: DigestStr
    envelope: EnvelopeField
    log_index: int


class PublishDatasetBody(WireModel):
    attestation: EnvelopeField = Field(description="A DatasetAttestation envelope.")
    policy: EnvelopeField | None = Field(
        default=None, description="Required when the attestation names a policy not yet stored."
    )


class DatasetView(WireModel):
    """A dataset's public card: the attestation's fields, its status and its envelope."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    dataset: DigestStr
    owner: PartyIdStr
    owner_name: str | None
    owner_fingerprint: str = Field(
        description="The owner id's short fingerprint: show it next to the name, which is "
        "not an identity."
    )
    title: str
    description: str
    topics: tuple[str, ...]
    keywords: tuple[Keyword, ...]
    profile: dict[str, Any]
    row_count: int
    time_range: TimeRange | None
    schema_: tuple[dict[str, Any], ...] = Field(alias="schema")
    policy: DigestStr | None
    commitment: dict[str, Any]
    status: Literal["active", "withdrawn"]
    status_reason: str | None
    created_at: int
    log_index: int
    envelope: EnvelopeField


class Inclusion(WireModel):
    checkpoint: str = Field(description="C2SP signed checkpoint the proof is against.")
    proof: tuple[B64Field, ...]
    size: int


class PublishedDataset(DatasetView):
    inclusion: Inclusion


class DatasetPage(WireModel):
    items: tuple[DatasetView, ...]
    next_cursor: str | None


class SearchHit(WireModel):
    dataset: DatasetView
    score: float
    jaccard: float | None


class SearchPage(WireModel):
    items: tuple[SearchHit, ...]
    next_cursor: str | None
    total: int


class RequesterBudget(WireModel):
    """One requester's use of a dataset's DP budget, summed from the enclave's receipts."""

    requester: PartyIdStr
    requester_name: str | None
    requester_fingerprint: str
    runs: int = Field(description="Completed runs with a receipt that charged this dataset.")
    epsilon_spent: str
    delta_spent: str
    epsilon_remaining: str | None = Field(
        description="The per-requester budget minus what was spent, and never more than the "
        "total remaining; null without a DP budget."
    )
    delta_remaining: str | None


class BudgetView(WireModel):
    """What the owner can see of a dataset's privacy budget.

    The enclave's ledger is the source of truth (it charges before releasing and
    refuses past the budget); this view is summed from the enclave-signed receipts the
    coordinator holds, so ``spent`` is a lower bound (a charged run that failed before
    its receipt is missing here) and ``remaining`` an upper bound. Bits are charged in
    the ledger only: their budget is shown, their use is not.
    """

    dataset: DigestStr
    policy: DigestStr | None
    source: str = Field(description="Where the figures come from, in words.")
    epsilon_total: str | None
    delta_total: str | None
    epsilon_per_requester: str | None
    delta_per_requester: str | None
    bits_total: str | None
    bits_per_requester: str | None
    epsilon_spent: str
    delta_spent: str
    epsilon_remaining: str | None
    delta_remaining: str | None
    receipts: int
    simulated_receipts: int = Field(description="Receipts from a SIMULATED enclave among them.")
    requesters: tuple[RequesterBudget, ...]
