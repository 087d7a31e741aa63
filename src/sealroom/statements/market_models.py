"""The marketplace's signed statements about models, portfolios, evaluations and disputes.

Each names its author and is signed by it (:meth:`Envelope.open` enforces that), refers to
other statements by digest (receipts, datasets, models), and is logged like every other
statement. None of them moves credits: amounts here are what the author claims or grants,
and the coordinator's payments seam (:mod:`sealroom.coordinator.payments`) moves them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from sealroom.crypto.keys import PublicIdentity
from sealroom.statements.envelope import Statement, require_signer
from sealroom.statements.fields import (
    B64Hash,
    DecimalStr,
    DigestStr,
    Identifier,
    LongText,
    PartyIdStr,
    Reason,
    ShortText,
    SignedDecimalStr,
    UnixTime,
)
from sealroom.statements.models import ComputationRef, InputRef, _Part

__all__ = [
    "MARKET_STATEMENT_TYPES",
    "MAX_AMOUNT",
    "WEIGHT_SCALE",
    "ArtifactRef",
    "Dispute",
    "Evaluation",
    "EvaluationExample",
    "Model",
    "ModelProvenance",
    "Portfolio",
    "PortfolioItem",
    "Resolution",
    "Review",
]

MAX_AMOUNT = 10**15
"""The largest amount (integer minor units) any marketplace statement names."""
WEIGHT_SCALE = 10_000
"""Portfolio weights and fees are integer basis points: 10 000 is 100%."""

Amount = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
Basis = Annotated[int, Field(ge=0, le=WEIGHT_SCALE)]
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class ModelProvenance(_Part):
    """Where a model came from: the run that trained it and the data it was trained on.

    ``enclave-job``: ``request`` is the completed train-model request and ``receipts`` its
    one enclave receipt. ``protocol-run``: ``trained_model`` is the
    :class:`~sealroom.statements.TrainedModel` of a federated or HE run and ``receipts`` the
    participants' protocol receipts. ``inputs`` are the datasets with their commitment roots
    (as the receipt binds them), ``computation`` the code that trained the model.
    """

    kind: Literal["enclave-job", "protocol-run"]
    request: DigestStr | None
    trained_model: DigestStr | None
    receipts: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=200)]
    inputs: Annotated[tuple[InputRef, ...], Field(min_length=1, max_length=200)]
    computation: ComputationRef

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelProvenance:
        if self.kind == "enclave-job" and (self.request is None or self.trained_model):
            raise ValueError("an enclave-job provenance names its request and no trained_model")
        if self.kind == "protocol-run" and (self.trained_model is None or self.request):
            raise ValueError("a protocol-run provenance names its trained_model and no request")
        if len(set(self.receipts)) != len(self.receipts):
            raise ValueError("receipts contain a duplicate")
        return self


class ArtifactRef(_Part):
    """The trainer's dataset holding the model's parameters (the predict computation's
    ``model`` input): sealed to the enclave for each use, never published."""

    dataset: DigestStr
    commitment_root: B64Hash


class Model(Statement):
    """A trained model offered for paid use, with its provenance; signed by the trainer.

    Its digest is the model's id. ``metrics`` are copied from the training result (the
    receipt commits to it; the trainer holds the opening). ``price`` is what one predict
    run costs the user, in integer minor units, paid to the trainer.
    """

    TYPE: ClassVar[str] = "sealroom.model"
    VERSION: ClassVar[int] = 1

    trainer: PartyIdStr
    name: ShortText
    description: LongText
    family: Literal["binomial", "gaussian", "poisson"]
    target: ColumnName
    features: Annotated[tuple[ColumnName, ...], Field(min_length=1, max_length=1000)]
    metrics: Annotated[dict[Identifier, SignedDecimalStr], Field(max_length=32)]
    provenance: ModelProvenance
    artifact: ArtifactRef
    price: Amount
    created_at: UnixTime

    @model_validator(mode="after")
    def _distinct(self) -> Model:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features contain a duplicate")
        if self.artifact.dataset in {i.dataset for i in self.provenance.inputs}:
            raise ValueError("the artifact cannot be one of the training inputs")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.trainer, signer, role="trainer")


class PortfolioItem(_Part):
    dataset: DigestStr
    weight: Annotated[int, Field(ge=1, le=WEIGHT_SCALE)]


class Portfolio(Statement):
    """A curator's selection of datasets with weights (basis points summing to 10 000) and
    the curator's fee (basis points of every reward paid over the portfolio)."""

    TYPE: ClassVar[str] = "sealroom.portfolio"
    VERSION: ClassVar[int] = 1

    curator: PartyIdStr
    name: ShortText
    description: LongText
    items: Annotated[tuple[PortfolioItem, ...], Field(min_length=1, max_length=64)]
    fee: Basis
    created_at: UnixTime

    @model_validator(mode="after")
    def _weights(self) -> Portfolio:
        datasets = [i.dataset for i in self.items]
        if len(set(datasets)) != len(datasets):
            raise ValueError("items contain a duplicate dataset")
        if sum(i.weight for i in self.items) != WEIGHT_SCALE:
            raise ValueError(f"weights must sum to {WEIGHT_SCALE} (basis points)")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.curator, signer, role="curator")


class EvaluationExample(_Part):
    """One example the evaluator ran: its inputs and the output it got (as text)."""

    inputs: Annotated[dict[ColumnName, SignedDecimalStr], Field(max_length=1000)]
    output: SignedDecimalStr


class Evaluation(Statement):
    """An evaluation of a model by a party that paid to use it: ``use`` is the completed
    predict request (its receipt proves the paid use), ``score`` in [0, 1]."""

    TYPE: ClassVar[str] = "sealroom.evaluation"
    VERSION: ClassVar[int] = 1

    evaluator: PartyIdStr
    model: DigestStr
    use: DigestStr
    score: DecimalStr
    summary: Reason
    examples: Annotated[tuple[EvaluationExample, ...], Field(max_length=20)]
    created_at: UnixTime

    @model_validator(mode="after")
    def _score(self) -> Evaluation:
        if Decimal(self.score) > 1:
            raise ValueError("score must be between 0 and 1")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.evaluator, signer, role="evaluator")


class Review(Statement):
    """A rating (1..5) of another party's evaluation, by a party that also paid to use the
    model (``use``, its completed predict request)."""

    TYPE: ClassVar[str] = "sealroom.review"
    VERSION: ClassVar[int] = 1

    reviewer: PartyIdStr
    evaluation: DigestStr
    use: DigestStr
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Reason
    created_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.reviewer, signer, role="reviewer")


class Dispute(Statement):
    """A party's complaint over a charge or a result, naming the completed request it paid
    for (its receipt is the evidence) and the amount it asks back."""

    TYPE: ClassVar[str] = "sealroom.dispute"
    VERSION: ClassVar[int] = 1

    claimant: PartyIdStr
    respondent: PartyIdStr
    subject: Literal["charge", "result"]
    request: DigestStr
    receipts: Annotated[tuple[DigestStr, ...], Field(min_length=1, max_length=16)]
    amount: Amount
    reason: Reason
    created_at: UnixTime

    @model_validator(mode="after")
    def _parties(self) -> Dispute:
        if self.claimant == self.respondent:
            raise ValueError("a party cannot dispute with itself")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.claimant, signer, role="claimant")


class Resolution(Statement):
    """The platform arbiter's decision on a dispute: ``upheld`` refunds ``refund`` (at most
    the disputed amount) from the respondent to the claimant; ``dismissed`` refunds nothing."""

    TYPE: ClassVar[str] = "sealroom.resolution"
    VERSION: ClassVar[int] = 1

    arbiter: PartyIdStr
    dispute: DigestStr
    outcome: Literal["upheld", "dismissed"]
    refund: Amount
    reason: Reason
    created_at: UnixTime

    @model_validator(mode="after")
    def _refund(self) -> Resolution:
        if self.outcome == "dismissed" and self.refund:
            raise ValueError("a dismissed dispute refunds nothing")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.arbiter, signer, role="arbiter")


MARKET_STATEMENT_TYPES: dict[str, type[Statement]] = {
    cls.TYPE: cls for cls in (Model, Portfolio, Evaluation, Review, Dispute, Resolution)
}
