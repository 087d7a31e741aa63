"""Enclaves and jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sealroom.api.auth import ApiDep, Caller, SignedBody, signed, signed_json
from sealroom.api.routes.common import BINARY, answer, json_body, stored_responses
from sealroom.wire import (
    CompleteJobBody,
    DeletionBody,
    DeletionRecorded,
    DeletionsView,
    EnclaveBody,
    EnclaveList,
    EnclaveRegistered,
    JobView,
    LeaseView,
    LedgerView,
    PendingReleases,
    ReasonBody,
    ReleaseBody,
    RequestView,
)

__all__ = ["router"]

router = APIRouter(tags=["jobs"])
Signed = Annotated[Caller, Depends(signed)]


@router.post(
    "/v1/enclaves",
    status_code=201,
    response_model=EnclaveRegistered,
    responses=stored_responses(EnclaveRegistered, "evidence"),
    openapi_extra=json_body(EnclaveBody),
    description="Signed by the enclave key the evidence binds; the enclave becomes a party.",
)
def register_enclave(
    call: Annotated[
        SignedBody[EnclaveBody],
        Depends(signed_json(EnclaveBody, keys=lambda b: b.evidence.signer)),
    ],
    api: ApiDep,
    response: Response,
) -> EnclaveRegistered:
    stored = api.coordinator.jobs.register_enclave(
        call.body.evidence, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get(
    "/v1/enclaves",
    response_model=EnclaveList,
    description="The enclaves admitted now (evidence fresh under the deployment's admission "
    "policy), newest first. There is no current enclave: owners pick one their pin accepts.",
)
def admitted_enclaves(api: ApiDep) -> EnclaveList:
    return api.coordinator.jobs.admitted_enclaves(now=api.clock())


@router.post(
    "/v1/jobs/claim",
    response_model=JobView,
    responses={204: {"description": "Nothing is ready"}},
    description="Signed by an enclave; the body is empty.",
)
def claim(caller: Signed, api: ApiDep) -> JobView | Response:
    job = api.coordinator.jobs.claim(caller=caller.party, now=caller.now)
    return Response(status_code=204) if job is None else job


@router.get(
    "/v1/jobs/{rid}/inputs/{dataset}",
    response_class=Response,
    responses={
        200: {
            "description": "The sealed input bytes",
            "content": {"application/octet-stream": {"schema": BINARY}},
        }
    },
)
def job_input(rid: str, dataset: str, caller: Signed, api: ApiDep) -> Response:
    data = api.coordinator.jobs.job_input(rid, dataset, caller=caller.party, now=caller.now)
    return Response(content=data, media_type="application/octet-stream")


@router.post(
    "/v1/jobs/{rid}/complete",
    response_model=RequestView,
    openapi_extra=json_body(CompleteJobBody),
    description="Signed by the enclave that claimed the job.",
)
def complete(
    rid: str,
    call: Annotated[SignedBody[CompleteJobBody], Depends(signed_json(CompleteJobBody))],
    api: ApiDep,
) -> RequestView:
    body = call.body
    return api.coordinator.jobs.complete(
        rid,
        body.receipt,
        body.outputs,
        caller=call.caller.party,
        now=call.caller.now,
        charges=body.charges,
    )


@router.post(
    "/v1/jobs/{rid}/release",
    response_model=RequestView,
    openapi_extra=json_body(ReleaseBody),
    description="Signed by the enclave that ran the completed job: the results' release keys, "
    "each sealed to its recipient, posted once the enclave proved the request's budget "
    "charges are in the log (commit-then-reveal). Idempotent.",
)
def release(
    rid: str,
    call: Annotated[SignedBody[ReleaseBody], Depends(signed_json(ReleaseBody))],
    api: ApiDep,
) -> RequestView:
    return api.coordinator.jobs.release(
        rid, call.body.keys, caller=call.caller.party, now=call.caller.now
    )


@router.get(
    "/v1/jobs/releases",
    response_model=PendingReleases,
    description="Signed by an enclave: its completed jobs whose release keys are not all "
    "posted yet (left by a worker that stopped in between).",
)
def pending_releases(caller: Signed, api: ApiDep) -> PendingReleases:
    return api.coordinator.jobs.pending_releases(caller=caller.party)


@router.post(
    "/v1/jobs/{rid}/lease",
    response_model=LeaseView,
    description="Signed by the enclave that claimed the job; the body is empty. Extends the "
    "lease; a job whose lease runs out goes back to the queue.",
)
def renew_lease(rid: str, caller: Signed, api: ApiDep) -> LeaseView:
    return api.coordinator.jobs.renew(rid, caller=caller.party, now=caller.now)


@router.get(
    "/v1/ledger/{dataset}",
    response_model=LedgerView,
    description="Signed by a registered enclave: the dataset's budget charges, oldest first, "
    "each with its inclusion proof in one signed checkpoint.",
)
def ledger(dataset: str, caller: Signed, api: ApiDep) -> LedgerView:
    return api.coordinator.ledgers.view(dataset, caller=caller.party)


@router.post(
    "/v1/jobs/{rid}/fail",
    response_model=RequestView,
    openapi_extra=json_body(ReasonBody),
    description="Signed by the enclave that claimed the job.",
)
def fail(
    rid: str,
    call: Annotated[SignedBody[ReasonBody], Depends(signed_json(ReasonBody))],
    api: ApiDep,
) -> RequestView:
    return api.coordinator.jobs.fail(
        rid, call.body.reason, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/jobs/{rid}/deletion",
    status_code=201,
    response_model=DeletionRecorded,
    responses=stored_responses(DeletionRecorded, "deletion"),
    openapi_extra=json_body(DeletionBody),
    description="Signed by the enclave that claimed the job: its signed Deletion (what it "
    "held, when it erased it), stored and logged as a private statement.",
)
def record_deletion(
    rid: str,
    call: Annotated[SignedBody[DeletionBody], Depends(signed_json(DeletionBody))],
    api: ApiDep,
    response: Response,
) -> DeletionRecorded:
    stored = api.coordinator.deletions.record(
        rid, call.body.deletion, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get(
    "/v1/requests/{rid}/deletions",
    response_model=DeletionsView,
    description="Signed by a party who may see the request: the enclave's Deletions with "
    "inclusion proofs in one checkpoint, and the coordinator's erasures of sealed blobs.",
)
def deletions(rid: str, caller: Signed, api: ApiDep) -> DeletionsView:
    return api.coordinator.deletions.view(rid, caller=caller.party)
