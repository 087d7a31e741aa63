"""Policies, datasets and discovery."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from sealroom.api.auth import ApiDep, Caller, SignedBody, signed, signed_json
from sealroom.api.routes.common import answer, json_body, stored_responses
from sealroom.coordinator.datasets import MAX_PAGE
from sealroom.storage.search import SearchQuery
from sealroom.wire import (
    BudgetView,
    DatasetPage,
    DatasetView,
    PolicyBody,
    PolicyCreated,
    PolicyView,
    PublishDatasetBody,
    PublishedDataset,
    ReasonBody,
    SearchPage,
)

__all__ = ["router"]

router = APIRouter(tags=["datasets"])
Signed = Annotated[Caller, Depends(signed)]

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Count = Annotated[int | None, Query(ge=0, le=2**62 - 1)]


@router.post(
    "/v1/policies",
    status_code=201,
    response_model=PolicyCreated,
    responses=stored_responses(PolicyCreated, "policy"),
    openapi_extra=json_body(PolicyBody),
    description="Signed by the policy's owner.",
)
def put_policy(
    call: Annotated[SignedBody[PolicyBody], Depends(signed_json(PolicyBody))],
    api: ApiDep,
    response: Response,
) -> PolicyCreated:
    stored = api.coordinator.datasets.put_policy(
        call.body.policy, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/policies/{digest}", response_model=PolicyView)
def get_policy(digest: str, api: ApiDep) -> PolicyView:
    return api.coordinator.datasets.get_policy(digest)


@router.post(
    "/v1/datasets",
    status_code=201,
    response_model=PublishedDataset,
    responses=stored_responses(PublishedDataset, "attestation"),
    openapi_extra=json_body(PublishDatasetBody),
    description="Signed by the dataset's owner; the answer carries an inclusion proof.",
)
def publish(
    call: Annotated[SignedBody[PublishDatasetBody], Depends(signed_json(PublishDatasetBody))],
    api: ApiDep,
    response: Response,
) -> PublishedDataset:
    stored = api.coordinator.datasets.publish(
        call.body, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/datasets", response_model=DatasetPage)
def list_datasets(
    api: ApiDep,
    owner: str | None = None,
    limit: Limit = 20,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
) -> DatasetPage:
    return api.coordinator.datasets.page(owner=owner, limit=limit, cursor=cursor)


@router.get("/v1/datasets/{dataset}", response_model=DatasetView)
def get_dataset(dataset: str, api: ApiDep) -> DatasetView:
    return api.coordinator.datasets.get(dataset)


@router.post(
    "/v1/datasets/{dataset}/withdraw",
    response_model=DatasetView,
    openapi_extra=json_body(ReasonBody),
    description="Signed by the dataset's owner; pending requests on it are rejected.",
)
def withdraw_dataset(
    dataset: str,
    call: Annotated[SignedBody[ReasonBody], Depends(signed_json(ReasonBody))],
    api: ApiDep,
) -> DatasetView:
    return api.coordinator.datasets.withdraw(
        dataset, call.body.reason, caller=call.caller.party, now=call.caller.now
    )


@router.get(
    "/v1/datasets/{dataset}/budget",
    response_model=BudgetView,
    description="Signed by the dataset's owner (only the owner sees it): the DP budget and "
    "what each requester spent, summed from the enclave's receipts. The enclave's ledger is "
    "the source of truth; `spent` here is a lower bound, `remaining` an upper bound.",
)
def get_budget(dataset: str, api: ApiDep, caller: Signed) -> BudgetView:
    return api.coordinator.datasets.budget(dataset, caller=caller.party)


@router.get(
    "/v1/search",
    response_model=SearchPage,
    description="`cursor` is opaque: the `next_cursor` of the previous page of the same query.",
)
def search(
    api: ApiDep,
    q: Annotated[str | None, Query(max_length=500, pattern=r"\w")] = None,
    keyword: Annotated[list[str], Query(max_length=32)] = [],  # noqa: B006 - FastAPI copies it
    owner: str | None = None,
    min_rows: Count = None,
    max_rows: Count = None,
    from_: Annotated[int | None, Query(alias="from", ge=0, le=2**62 - 1)] = None,
    to: Count = None,
    similar_to: str | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> SearchPage:
    query = SearchQuery(
        q=q,
        keywords=tuple(keyword),
        owner=owner,
        min_rows=min_rows,
        max_rows=max_rows,
        time_from=from_,
        time_to=to,
        similar_to=similar_to,
        limit=limit,
        cursor=cursor,
    )
    return api.coordinator.datasets.search(query)
