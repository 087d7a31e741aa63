"""Parties: self-certifying registration and the public view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sealroom.api.auth import ApiDep, SignedBody, signed_json
from sealroom.api.routes.common import answer, json_body, stored_responses
from sealroom.wire import PartyView, RegisterPartyBody

__all__ = ["router"]

router = APIRouter(tags=["parties"])
Registration = Annotated[
    SignedBody[RegisterPartyBody],
    Depends(signed_json(RegisterPartyBody, keys=RegisterPartyBody.keys)),
]


@router.post(
    "/v1/parties",
    status_code=201,
    response_model=PartyView,
    responses=stored_responses(PartyView, "party (same keys, same name)"),
    openapi_extra=json_body(RegisterPartyBody),
    description="Signed by the key being registered: the party id is derived from the keys.",
)
def register_party(call: Registration, api: ApiDep, response: Response) -> PartyView:
    stored = api.coordinator.parties.register(
        call.body, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/parties/{party}", response_model=PartyView)
def get_party(party: str, api: ApiDep) -> PartyView:
    return api.coordinator.parties.get(party)
