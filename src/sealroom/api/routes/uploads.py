"""Chunked, resumable uploads of sealed inputs, and the enclave's reads of their parts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from sealroom.api.auth import (
    ApiDep,
    Caller,
    SignedBody,
    SignedBytes,
    signed,
    signed_bytes,
    signed_json,
)
from sealroom.api.routes.common import BINARY, json_body, raw_body
from sealroom.wire import RequestView
from sealroom.wire.uploads import MAX_PART_SIZE, MAX_PARTS, StartUploadBody, UploadView

__all__ = ["router"]

router = APIRouter(tags=["uploads"])
Signed = Annotated[Caller, Depends(signed)]
PartIndex = Annotated[int, Path(ge=0, lt=MAX_PARTS, description="The part's index, from 0.")]


@router.post(
    "/v1/requests/{rid}/inputs/{dataset}/uploads",
    response_model=UploadView,
    openapi_extra=json_body(StartUploadBody),
    description="Signed by the input's owner, after approving it. The same shape again "
    "returns the same upload with the parts already held (resume); another shape replaces "
    "an unfinished upload.",
)
def start_upload(
    rid: str,
    dataset: str,
    call: Annotated[SignedBody[StartUploadBody], Depends(signed_json(StartUploadBody))],
    api: ApiDep,
) -> UploadView:
    return api.coordinator.uploads.start(
        rid, dataset, call.body, caller=call.caller.party, now=call.caller.now
    )


@router.get("/v1/uploads/{upload}", response_model=UploadView, description="Owner only.")
def get_upload(upload: str, caller: Signed, api: ApiDep) -> UploadView:
    return api.coordinator.uploads.get(upload, caller=caller.party, now=caller.now)


@router.put(
    "/v1/uploads/{upload}/parts/{index}",
    response_model=UploadView,
    openapi_extra=raw_body(
        f"One part of the sealed stream (at most {MAX_PART_SIZE} bytes), with the size and "
        "SHA-256 declared for it when the upload started."
    ),
)
def put_part(
    upload: str,
    index: PartIndex,
    call: Annotated[SignedBytes, Depends(signed_bytes("sealed part"))],
    api: ApiDep,
) -> UploadView:
    return api.coordinator.uploads.put_part(
        upload, index, call.body, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/uploads/{upload}/complete",
    response_model=RequestView,
    description="Signed by the owner; the body is empty. Refused while parts are missing.",
)
def complete_upload(upload: str, caller: Signed, api: ApiDep) -> RequestView:
    return api.coordinator.uploads.complete(upload, caller=caller.party, now=caller.now)


@router.get(
    "/v1/jobs/{rid}/inputs/{dataset}/parts/{index}",
    response_class=Response,
    responses={
        200: {
            "description": "One part of a chunked sealed input",
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    },
)
def job_part(rid: str, dataset: str, index: PartIndex, caller: Signed, api: ApiDep) -> Response:
    data = api.coordinator.uploads.job_part(
        rid, dataset, index, caller=caller.party, now=caller.now
    )
    return Response(content=data, media_type="application/octet-stream")
