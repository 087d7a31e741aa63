"""The marketplace's statements: who signs them and what they refuse."""

from __future__ import annotations

from typing import Any

import pytest

from sealroom.errors import SignatureInvalid, StatementFormatError
from sealroom.statements import ComputationRef, InputRef, sign_statement
from sealroom.statements.market_models import (
    MARKET_STATEMENT_TYPES,
    ArtifactRef,
    Dispute,
    Evaluation,
    Model,
    ModelProvenance,
    Portfolio,
    PortfolioItem,
    Resolution,
    Review,
)
from sealroom.statements.visibility import is_public
from tests.helpers import T0, identity

D = ["sha256:" + f"{i:x}" * 64 for i in range(1, 6)]
ROOT = "A" * 43 + "="


def _model(**over: Any) -> Model:
    fields: dict[str, Any] = {
        "trainer": identity("tina").party_id,
        "name": "m",
        "description": "",
        "family": "binomial",
        "target": "y",
        "features": ("a", "b"),
        "metrics": {"accuracy": "0.8"},
        "provenance": ModelProvenance(
            kind="enclave-job",
            request=D[0],
            trained_model=None,
            receipts=(D[1],),
            inputs=(InputRef(dataset=D[2], commitment_root=ROOT),),
            computation=ComputationRef(id="train-model", version="2.1.0", code_digest=D[3]),
        ),
        "artifact": ArtifactRef(dataset=D[4], commitment_root=ROOT),
        "price": 100,
        "created_at": T0,
    }
    fields.update(over)
    return Model.build(**fields)


def test_model_is_signed_by_its_trainer_only() -> None:
    model = _model()
    signed = sign_statement(model, identity("tina"))
    assert signed.envelope.open(Model).statement == model
    with pytest.raises(SignatureInvalid):
        sign_statement(model, identity("mallory"))


@pytest.mark.parametrize(
    "over",
    [
        {"features": ("a", "a")},
        {"price": -1},
        {"artifact": ArtifactRef(dataset=D[2], commitment_root=ROOT)},
        {"metrics": {"Bad Key": "1"}},
    ],
)
def test_model_refuses(over: dict[str, Any]) -> None:
    with pytest.raises(StatementFormatError):
        _model(**over)


def test_provenance_kinds_name_their_own_fields() -> None:
    ref = ComputationRef(id="secagg-fedavg", version="1.0.0", code_digest=D[3])
    inputs = (InputRef(dataset=D[2], commitment_root=ROOT),)
    with pytest.raises(ValueError, match="protocol-run"):
        ModelProvenance(
            kind="protocol-run",
            request=D[0],
            trained_model=None,
            receipts=(D[1],),
            inputs=inputs,
            computation=ref,
        )
    with pytest.raises(ValueError, match="duplicate"):
        ModelProvenance(
            kind="protocol-run",
            request=None,
            trained_model=D[0],
            receipts=(D[1], D[1]),
            inputs=inputs,
            computation=ref,
        )


def test_portfolio_weights_sum_to_10000_and_name_each_dataset_once() -> None:
    cur = identity("cora").party_id
    ok = Portfolio.build(
        curator=cur,
        name="p",
        description="",
        fee=500,
        created_at=T0,
        items=(PortfolioItem(dataset=D[0], weight=6000), PortfolioItem(dataset=D[1], weight=4000)),
    )
    sign_statement(ok, identity("cora"))
    with pytest.raises(StatementFormatError, match="sum"):
        Portfolio.build(
            curator=cur,
            name="p",
            description="",
            fee=0,
            created_at=T0,
            items=(PortfolioItem(dataset=D[0], weight=6000),),
        )
    with pytest.raises(StatementFormatError, match="duplicate"):
        Portfolio.build(
            curator=cur,
            name="p",
            description="",
            fee=0,
            created_at=T0,
            items=(
                PortfolioItem(dataset=D[0], weight=5000),
                PortfolioItem(dataset=D[0], weight=5000),
            ),
        )


def test_evaluation_review_dispute_resolution_bounds() -> None:
    uma, tina = identity("uma").party_id, identity("tina").party_id
    with pytest.raises(StatementFormatError, match="between 0 and 1"):
        Evaluation.build(
            evaluator=uma, model=D[0], use=D[1], score="1.5", summary="", examples=(), created_at=T0
        )
    with pytest.raises(StatementFormatError):
        Review.build(reviewer=uma, evaluation=D[0], use=D[1], rating=6, comment="", created_at=T0)
    with pytest.raises(StatementFormatError, match="itself"):
        Dispute.build(
            claimant=uma,
            respondent=uma,
            subject="charge",
            request=D[0],
            receipts=(D[1],),
            amount=1,
            reason="",
            created_at=T0,
        )
    with pytest.raises(StatementFormatError, match="refunds nothing"):
        Resolution.build(
            arbiter=tina, dispute=D[0], outcome="dismissed", refund=5, reason="", created_at=T0
        )


def test_visibility_cards_public_disputes_private() -> None:
    assert set(MARKET_STATEMENT_TYPES) == {
        Model.TYPE,
        Portfolio.TYPE,
        Evaluation.TYPE,
        Review.TYPE,
        Dispute.TYPE,
        Resolution.TYPE,
    }
    assert all(is_public(t) for t in (Model.TYPE, Portfolio.TYPE, Evaluation.TYPE, Review.TYPE))
    assert not is_public(Dispute.TYPE)
    assert not is_public(Resolution.TYPE)
