"""Credits: the ledger key and price schedule, a party's account, direct payments, quotes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sealroom.api.auth import ApiDep, Caller, SignedBody, signed, signed_json
from sealroom.api.routes.common import answer, json_body, stored_responses
from sealroom.wire import (
    CreditsView,
    DirectTransferBody,
    LedgerKeyView,
    Quote,
    QuoteBody,
    TransferView,
)
from sealroom.wire.credits import (
    AcceptBody,
    LivenessBody,
    LivenessChallenge,
    OfferBody,
    OfferList,
    OfferView,
    RewardsView,
)

__all__ = ["router"]

router = APIRouter(tags=["credits"])
Signed = Annotated[Caller, Depends(signed)]


@router.get(
    "/v1/credits/ledger",
    response_model=LedgerKeyView,
    description="Public: the key every Transfer is signed with and the price schedule in force.",
)
def ledger_key(api: ApiDep) -> LedgerKeyView:
    return api.coordinator.credits.key()


@router.get(
    "/v1/credits",
    response_model=CreditsView,
    description="The caller's balance and every transfer that touched it, with the salts that "
    "open their log commitments.",
)
def account(caller: Signed, api: ApiDep) -> CreditsView:
    return api.coordinator.credits.account(caller=caller.party)


@router.post(
    "/v1/credits/transfers",
    status_code=201,
    response_model=TransferView,
    responses=stored_responses(TransferView, "transfer (same idempotency key)"),
    openapi_extra=json_body(DirectTransferBody),
    description="A direct payment, signed by the payer; its key makes a retry move nothing twice.",
)
def pay(
    call: Annotated[SignedBody[DirectTransferBody], Depends(signed_json(DirectTransferBody))],
    api: ApiDep,
    response: Response,
) -> TransferView:
    stored = api.coordinator.credits.transfer(
        call.body, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/credits/quote",
    response_model=Quote,
    openapi_extra=json_body(QuoteBody),
    description="The price a request with these parts would be escrowed at when approved.",
)
def quote(
    call: Annotated[SignedBody[QuoteBody], Depends(signed_json(QuoteBody))], api: ApiDep
) -> Quote:
    return api.coordinator.credits.quote(call.body, caller=call.caller.party, now=call.caller.now)


@router.post(
    "/v1/credits/offers",
    status_code=201,
    response_model=OfferView,
    responses=stored_responses(OfferView, "offer"),
    openapi_extra=json_body(OfferBody),
    description="An owner's Offer (negotiated price and usage bonus) for one of its datasets.",
)
def offer(
    call: Annotated[SignedBody[OfferBody], Depends(signed_json(OfferBody))],
    api: ApiDep,
    response: Response,
) -> OfferView:
    stored = api.coordinator.credits.offer(
        call.body.offer, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get(
    "/v1/credits/offers",
    response_model=OfferList,
    description="Unexpired offers the caller made, or that it may accept.",
)
def offers(caller: Signed, api: ApiDep) -> OfferList:
    return api.coordinator.credits.offers(caller=caller.party, now=caller.now)


@router.post(
    "/v1/credits/accepts",
    status_code=201,
    response_model=OfferView,
    responses=stored_responses(OfferView, "acceptance"),
    openapi_extra=json_body(AcceptBody),
    description="A requester's Accept of an offer; a request names it in its terms.",
)
def accept(
    call: Annotated[SignedBody[AcceptBody], Depends(signed_json(AcceptBody))],
    api: ApiDep,
    response: Response,
) -> OfferView:
    stored = api.coordinator.credits.accept(
        call.body.accept, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get(
    "/v1/credits/challenge",
    response_model=LivenessChallenge,
    description="The caller's liveness challenge for the current reward period.",
)
def challenge(caller: Signed, api: ApiDep) -> LivenessChallenge:
    return api.coordinator.credits.challenge(caller=caller.party, now=caller.now)


@router.post(
    "/v1/credits/liveness",
    response_model=RewardsView,
    openapi_extra=json_body(LivenessBody),
    description="An owner's signed answer to this period's challenge: base rewards for its "
    "listed datasets (once per dataset per period).",
)
def liveness(
    call: Annotated[SignedBody[LivenessBody], Depends(signed_json(LivenessBody))], api: ApiDep
) -> RewardsView:
    return api.coordinator.credits.liveness(
        call.body.liveness, caller=call.caller.party, now=call.caller.now
    )
