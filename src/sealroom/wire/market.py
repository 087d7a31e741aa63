"""The marketplace: models, paid uses, evaluations, reviews, portfolios, disputes, reputation.

Every statement a view shows travels with its envelope, so a client checks the author's
signature itself; the numbers the coordinator derives (use counts, weighted ratings,
reputation) are recomputable from the logged statements (docs/marketplace-models.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "ArbiterView",
    "DisputeBody",
    "DisputePage",
    "DisputeView",
    "EvaluationBody",
    "EvaluationPage",
    "EvaluationView",
    "ModelBody",
    "ModelPage",
    "ModelView",
    "PledgeBody",
    "PledgeView",
    "PortfolioBody",
    "PortfolioItemView",
    "PortfolioPage",
    "PortfolioView",
    "ReputationView",
    "ResolutionBody",
    "ReviewBody",
    "ReviewView",
    "RoleReputation",
    "ShareView",
    "UsePage",
    "UseView",
]

Amount = Annotated[int, Field(ge=0, le=10**15)]


class ModelBody(WireModel):
    model: EnvelopeField = Field(description="A Model envelope, signed by its trainer.")
    evidence: tuple[EnvelopeField, ...] = Field(
        default=(),
        max_length=201,
        description="For a protocol-run model: its TrainedModel, then every participant's "
        "ProtocolReceipt. Empty for an enclave-job model (the coordinator holds its receipt).",
    )


class ModelView(WireModel):
    """A model card: the signed Model's fields and what its paid uses and evaluations say."""

    model: DigestStr
    trainer: PartyIdStr
    name: str
    description: str
    family: str
    target: str
    features: tuple[str, ...]
    metrics: dict[str, str]
    provenance: dict[str, Any]
    artifact: DigestStr
    price: int
    created_at: int
    paid_uses: int = Field(description="Completed predict runs the trainer was paid for.")
    evaluations: int
    rating: str = Field(description="Evaluation scores weighted by paid use (reputation rule).")
    log_index: int
    envelope: EnvelopeField


class ModelPage(WireModel):
    items: tuple[ModelView, ...]


class UseView(WireModel):
    """One completed predict run of a model and whether its price was paid."""

    request: DigestStr
    model: DigestStr
    payer: PartyIdStr
    payee: PartyIdStr
    amount: int
    receipt: DigestStr
    status: Literal["paid", "unpaid"]
    reason: str | None


class UsePage(WireModel):
    items: tuple[UseView, ...]


class EvaluationBody(WireModel):
    evaluation: EnvelopeField = Field(description="An Evaluation envelope, signed by its author.")


class EvaluationView(WireModel):
    evaluation: DigestStr
    model: DigestStr
    evaluator: PartyIdStr
    use: DigestStr
    score: str
    reviews: int
    rating: str = Field(description="Review ratings weighted by the reviewers' paid use.")
    log_index: int
    envelope: EnvelopeField


class EvaluationPage(WireModel):
    items: tuple[EvaluationView, ...]


class ReviewBody(WireModel):
    review: EnvelopeField = Field(description="A Review envelope, signed by its author.")


class ReviewView(WireModel):
    review: DigestStr
    evaluation: DigestStr
    reviewer: PartyIdStr
    rating: int
    log_index: int
    envelope: EnvelopeField


class PortfolioBody(WireModel):
    portfolio: EnvelopeField = Field(description="A Portfolio envelope, signed by its curator.")


class PortfolioItemView(WireModel):
    dataset: DigestStr
    owner: PartyIdStr
    weight: int


class PortfolioView(WireModel):
    portfolio: DigestStr
    curator: PartyIdStr
    name: str
    description: str
    fee: int = Field(description="The curator's fee in basis points of every reward.")
    items: tuple[PortfolioItemView, ...]
    log_index: int
    envelope: EnvelopeField


class PortfolioPage(WireModel):
    items: tuple[PortfolioView, ...]


class PledgeBody(WireModel):
    request: DigestStr = Field(description="The requester's request over the portfolio's datasets.")
    amount: Amount = Field(description="The reward, in minor units, split when it completes.")


class ShareView(WireModel):
    payee: PartyIdStr
    dataset: DigestStr | None
    amount: int


class PledgeView(WireModel):
    request: DigestStr
    portfolio: DigestStr
    amount: int
    status: Literal["pledged", "paid", "unpaid"]
    reason: str | None
    shares: tuple[ShareView, ...]


class DisputeBody(WireModel):
    dispute: EnvelopeField = Field(description="A Dispute envelope, signed by the claimant.")


class ResolutionBody(WireModel):
    resolution: EnvelopeField = Field(
        description="A Resolution envelope, signed by the coordinator's arbiter key."
    )


class DisputeView(WireModel):
    dispute: DigestStr
    claimant: PartyIdStr
    respondent: PartyIdStr
    subject: str
    request: DigestStr
    amount: int
    status: Literal["open", "upheld", "dismissed"]
    refund: int | None
    envelope: EnvelopeField
    resolution: EnvelopeField | None


class DisputePage(WireModel):
    items: tuple[DisputeView, ...]


class ArbiterView(WireModel):
    """The key that signs dispute resolutions on this coordinator."""

    party: PartyIdStr
    signing_key: str
    sealing_key: str


class RoleReputation(WireModel):
    role: Literal["trainer", "evaluator", "owner", "curator"]
    score: str
    weight: int = Field(description="Paid use (minor units) behind the ratings counted.")
    raters: int
    ignored: int = Field(description="Ratings that weighed nothing (no paid use of the item).")
    upheld_against: int


class ReputationView(WireModel):
    party: PartyIdStr
    roles: tuple[RoleReputation, ...]
    disputes_filed: int
    disputes_upheld_for: int
