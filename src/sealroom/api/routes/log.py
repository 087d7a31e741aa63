"""The transparency log's public reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from sealroom.api.auth import ApiDep
from sealroom.wire import ConsistencyProofView, InclusionProofView, LogEntryView, LogKey

__all__ = ["router"]

router = APIRouter(tags=["log"])


@router.get(
    "/v1/log/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    description="The latest C2SP signed checkpoint.",
)
def checkpoint(api: ApiDep) -> PlainTextResponse:
    return PlainTextResponse(api.coordinator.log.checkpoint())


@router.get("/v1/log/key", response_model=LogKey)
def key(api: ApiDep) -> LogKey:
    return api.coordinator.log.key()


@router.get("/v1/log/entries/{index}", response_model=LogEntryView)
def entry(index: int, api: ApiDep) -> LogEntryView:
    return api.coordinator.log.entry(index)


@router.get(
    "/v1/log/inclusion",
    response_model=InclusionProofView,
    description="Requires index < size <= the log's size.",
)
def inclusion(
    index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)], api: ApiDep
) -> InclusionProofView:
    return api.coordinator.log.inclusion(index, size)


@router.get(
    "/v1/log/consistency",
    response_model=ConsistencyProofView,
    description="Requires first <= second <= the log's size.",
)
def consistency(
    first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)], api: ApiDep
) -> ConsistencyProofView:
    return api.coordinator.log.consistency(first, second)
