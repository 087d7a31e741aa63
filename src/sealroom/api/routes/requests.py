"""Computation requests: creation, approvals, sealed uploads, withdrawal, results, bundles."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import JSONResponse

from sealroom.api.auth import (
    ApiDep,
    Caller,
    SignedBody,
    SignedBytes,
    signed,
    signed_bytes,
    signed_json,
)
from sealroom.api.routes.common import answer, json_body, raw_body, stored_responses
from sealroom.wire import (
    ApprovalBody,
    CreateRequestBody,
    DraftView,
    KeywordOverlapBody,
    ProtocolReceiptsBody,
    ReasonBody,
    RequestList,
    RequestView,
    ResultView,
)

__all__ = ["router"]

router = APIRouter(tags=["requests"])
Signed = Annotated[Caller, Depends(signed)]


@router.post(
    "/v1/requests",
    status_code=201,
    response_model=RequestView,
    responses=stored_responses(RequestView, "request"),
    openapi_extra=json_body(CreateRequestBody),
    description="Signed by the requester; each input's policy is pre-checked at once.",
)
def create_request(
    call: Annotated[SignedBody[CreateRequestBody], Depends(signed_json(CreateRequestBody))],
    api: ApiDep,
    response: Response,
) -> RequestView:
    stored = api.coordinator.requests.create(
        call.body.request, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/compute/keyword-overlap",
    status_code=201,
    response_model=None,
    responses={
        200: {
            "model": DraftView | RequestView,
            "description": "The unsigned draft (no request sent), or the request already stored",
        },
        201: {"model": RequestView, "description": "The request, created"},
    },
    openapi_extra=json_body(KeywordOverlapBody),
)
def keyword_overlap(
    call: Annotated[SignedBody[KeywordOverlapBody], Depends(signed_json(KeywordOverlapBody))],
    api: ApiDep,
) -> JSONResponse:
    body = call.body
    result = api.coordinator.requests.keyword_overlap(
        body.dataset_a, body.dataset_b, body.request, caller=call.caller.party, now=call.caller.now
    )
    if isinstance(result, DraftView):
        return JSONResponse(result.to_json_dict(), status_code=200)
    return JSONResponse(result.view.to_json_dict(), status_code=201 if result.created else 200)


@router.get("/v1/requests", response_model=RequestList)
def list_requests(
    caller: Signed,
    api: ApiDep,
    role: Literal["requester", "owner", "recipient"] | None = None,
    status: str | None = None,
) -> RequestList:
    items = api.coordinator.requests.listing(
        caller=caller.party, role=role, status=status, now=caller.now
    )
    return RequestList(items=items)


@router.get("/v1/inbox", response_model=RequestList)
def inbox(caller: Signed, api: ApiDep) -> RequestList:
    return RequestList(items=api.coordinator.requests.inbox(caller=caller.party, now=caller.now))


@router.get("/v1/requests/{rid}", response_model=RequestView)
def get_request(rid: str, caller: Signed, api: ApiDep) -> RequestView:
    return api.coordinator.requests.get(rid, caller=caller.party, now=caller.now)


@router.post(
    "/v1/requests/{rid}/approvals",
    response_model=RequestView,
    openapi_extra=json_body(ApprovalBody),
    description="Signed by an input's owner.",
)
def approve(
    rid: str,
    call: Annotated[SignedBody[ApprovalBody], Depends(signed_json(ApprovalBody))],
    api: ApiDep,
) -> RequestView:
    return api.coordinator.approvals.approve(
        rid, call.body.approval, caller=call.caller.party, now=call.caller.now
    )


@router.put(
    "/v1/requests/{rid}/inputs/{dataset}",
    response_model=RequestView,
    openapi_extra=raw_body(
        "The sealed canonical Arrow bytes (at most 64 MiB), sealed to the enclave named in "
        "the Sealroom-Enclave header."
    ),
)
def upload(
    rid: str,
    dataset: str,
    call: Annotated[SignedBytes, Depends(signed_bytes("sealed bytes"))],
    api: ApiDep,
    enclave: Annotated[
        str,
        Header(
            alias="Sealroom-Enclave",
            description="Digest of the enclave evidence the bytes were sealed to.",
        ),
    ],
) -> RequestView:
    return api.coordinator.approvals.upload_input(
        rid, dataset, call.body, enclave=enclave, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/requests/{rid}/receipts",
    response_model=RequestView,
    openapi_extra=json_body(ProtocolReceiptsBody),
    description="Signed by a participant of a protocol run: its co-signed receipts, checked "
    "against the run and logged; the request completes.",
)
def protocol_receipts(
    rid: str,
    call: Annotated[SignedBody[ProtocolReceiptsBody], Depends(signed_json(ProtocolReceiptsBody))],
    api: ApiDep,
) -> RequestView:
    return api.coordinator.protocol_runs.complete(
        rid, call.body.receipts, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/requests/{rid}/withdraw",
    response_model=RequestView,
    openapi_extra=json_body(ReasonBody),
    description="Signed by the requester (from pending or approved).",
)
def withdraw_request(
    rid: str,
    call: Annotated[SignedBody[ReasonBody], Depends(signed_json(ReasonBody))],
    api: ApiDep,
) -> RequestView:
    return api.coordinator.requests.withdraw(
        rid, call.body.reason, caller=call.caller.party, now=call.caller.now
    )


@router.get("/v1/requests/{rid}/result", response_model=ResultView)
def result(rid: str, caller: Signed, api: ApiDep) -> ResultView:
    return api.coordinator.requests.result(rid, caller=caller.party, now=caller.now)


@router.get(
    "/v1/requests/{rid}/bundle",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "The ProofBundle JSON (verification/bundle.py), without outputs",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def bundle(rid: str, caller: Signed, api: ApiDep) -> JSONResponse:
    proof = api.coordinator.requests.bundle(rid, caller=caller.party, now=caller.now)
    return JSONResponse(proof.to_dict())
