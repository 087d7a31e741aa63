"""The marketplace: models and their paid uses, evaluations, reviews, portfolios, disputes,
reputation (sealroom.coordinator.market)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sealroom.api.auth import ApiDep, Caller, SignedBody, signed, signed_json
from sealroom.api.routes.common import answer, json_body, stored_responses
from sealroom.wire.market import (
    ArbiterView,
    DisputeBody,
    DisputePage,
    DisputeView,
    EvaluationBody,
    EvaluationPage,
    EvaluationView,
    ModelBody,
    ModelPage,
    ModelView,
    PledgeBody,
    PledgeView,
    PortfolioBody,
    PortfolioPage,
    PortfolioView,
    ReputationView,
    ResolutionBody,
    ReviewBody,
    ReviewView,
    UsePage,
)

__all__ = ["router"]

router = APIRouter(tags=["market"])
Signed = Annotated[Caller, Depends(signed)]


@router.post(
    "/v1/models",
    status_code=201,
    response_model=ModelView,
    responses=stored_responses(ModelView, "model"),
    openapi_extra=json_body(ModelBody),
    description="Signed by the trainer; the provenance is checked against the stored receipt "
    "(enclave-job) or the evidence sent (protocol-run).",
)
def publish_model(
    call: Annotated[SignedBody[ModelBody], Depends(signed_json(ModelBody))],
    api: ApiDep,
    response: Response,
) -> ModelView:
    stored = api.coordinator.market.publish_model(
        call.body.model, call.body.evidence, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/models", response_model=ModelPage)
def list_models(api: ApiDep, trainer: str | None = None) -> ModelPage:
    return api.coordinator.market.list_models(trainer=trainer)


@router.get("/v1/models/{model}", response_model=ModelView)
def get_model(model: str, api: ApiDep) -> ModelView:
    return api.coordinator.market.get_model(model)


@router.get(
    "/v1/models/{model}/uses",
    response_model=UsePage,
    description="The caller's paid uses of the model; the trainer sees every use.",
)
def model_uses(model: str, api: ApiDep, caller: Signed) -> UsePage:
    return UsePage(items=api.coordinator.market.uses(model, caller=caller.party))


@router.get("/v1/models/{model}/evaluations", response_model=EvaluationPage)
def model_evaluations(model: str, api: ApiDep) -> EvaluationPage:
    return api.coordinator.market.evaluations(model)


@router.post(
    "/v1/evaluations",
    status_code=201,
    response_model=EvaluationView,
    responses=stored_responses(EvaluationView, "evaluation"),
    openapi_extra=json_body(EvaluationBody),
    description="Signed by the evaluator, who must hold a paid use of the model.",
)
def evaluate(
    call: Annotated[SignedBody[EvaluationBody], Depends(signed_json(EvaluationBody))],
    api: ApiDep,
    response: Response,
) -> EvaluationView:
    stored = api.coordinator.market.evaluate(
        call.body.evaluation, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/reviews",
    status_code=201,
    response_model=ReviewView,
    responses=stored_responses(ReviewView, "review"),
    openapi_extra=json_body(ReviewBody),
    description="Signed by the reviewer, who must hold a paid use of the evaluated model.",
)
def review(
    call: Annotated[SignedBody[ReviewBody], Depends(signed_json(ReviewBody))],
    api: ApiDep,
    response: Response,
) -> ReviewView:
    stored = api.coordinator.market.review(
        call.body.review, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/portfolios",
    status_code=201,
    response_model=PortfolioView,
    responses=stored_responses(PortfolioView, "portfolio"),
    openapi_extra=json_body(PortfolioBody),
    description="Signed by the curator; every dataset must be published and active.",
)
def publish_portfolio(
    call: Annotated[SignedBody[PortfolioBody], Depends(signed_json(PortfolioBody))],
    api: ApiDep,
    response: Response,
) -> PortfolioView:
    stored = api.coordinator.market.publish_portfolio(
        call.body.portfolio, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/portfolios", response_model=PortfolioPage)
def list_portfolios(api: ApiDep, curator: str | None = None) -> PortfolioPage:
    return api.coordinator.market.list_portfolios(curator=curator)


@router.get("/v1/portfolios/{portfolio}", response_model=PortfolioView)
def get_portfolio(portfolio: str, api: ApiDep) -> PortfolioView:
    return api.coordinator.market.get_portfolio(portfolio)


@router.post(
    "/v1/portfolios/{portfolio}/pledges",
    response_model=PledgeView,
    openapi_extra=json_body(PledgeBody),
    description="The requester attaches a reward to its request over the portfolio's "
    "datasets; it is split by the weights when the request completes.",
)
def pledge(
    portfolio: str,
    call: Annotated[SignedBody[PledgeBody], Depends(signed_json(PledgeBody))],
    api: ApiDep,
) -> PledgeView:
    return api.coordinator.market.pledge(
        portfolio,
        call.body.request,
        call.body.amount,
        caller=call.caller.party,
        now=call.caller.now,
    )


@router.get("/v1/pledges/{request}", response_model=PledgeView)
def get_pledge(request: str, api: ApiDep, caller: Signed) -> PledgeView:
    return api.coordinator.market.get_pledge(request, caller=caller.party)


@router.post(
    "/v1/disputes",
    status_code=201,
    response_model=DisputeView,
    responses=stored_responses(DisputeView, "dispute"),
    openapi_extra=json_body(DisputeBody),
    description="Signed by the claimant, over what it paid the respondent for a request.",
)
def file_dispute(
    call: Annotated[SignedBody[DisputeBody], Depends(signed_json(DisputeBody))],
    api: ApiDep,
    response: Response,
) -> DisputeView:
    stored = api.coordinator.market.file_dispute(
        call.body.dispute, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/disputes", response_model=DisputePage)
def list_disputes(api: ApiDep, caller: Signed) -> DisputePage:
    return api.coordinator.market.disputes(caller=caller.party)


@router.get("/v1/disputes/{dispute}", response_model=DisputeView)
def get_dispute(dispute: str, api: ApiDep, caller: Signed) -> DisputeView:
    return api.coordinator.market.get_dispute(dispute, caller=caller.party)


@router.post(
    "/v1/disputes/{dispute}/resolution",
    response_model=DisputeView,
    openapi_extra=json_body(ResolutionBody),
    description="Signed by the coordinator's arbiter key (the call and the Resolution).",
)
def resolve(
    dispute: str,
    call: Annotated[
        SignedBody[ResolutionBody],
        Depends(signed_json(ResolutionBody, keys=lambda b: b.resolution.signer)),
    ],
    api: ApiDep,
) -> DisputeView:
    market = api.coordinator.market
    view = market.resolve(call.body.resolution, dispute=dispute, now=call.caller.now)
    return view


@router.get("/v1/market/arbiter", response_model=ArbiterView)
def arbiter(api: ApiDep) -> ArbiterView:
    return api.coordinator.market.arbiter()


@router.get("/v1/reputation/{party}", response_model=ReputationView)
def get_reputation(party: str, api: ApiDep) -> ReputationView:
    return api.coordinator.market.reputation(party)
