"""Rooms: create, invite, join with a pre-check, consent or withdraw, runs' per-person
approvals, organisation members; every read is the caller's own rooms only (else 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sealroom.api.auth import ApiDep, Caller, SignedBody, signed, signed_json
from sealroom.api.routes.common import answer, json_body, stored_responses
from sealroom.wire import (
    ConsentBody,
    CreateRoomBody,
    InvitationBody,
    JoinRoomBody,
    OrgMemberBody,
    OrgMemberView,
    RoomList,
    RoomStatements,
    RoomView,
    RunApprovalBody,
)

__all__ = ["router"]

router = APIRouter(tags=["rooms"])
Signed = Annotated[Caller, Depends(signed)]


@router.post(
    "/v1/rooms",
    status_code=201,
    response_model=RoomView,
    responses=stored_responses(RoomView, "room"),
    openapi_extra=json_body(CreateRoomBody),
    description="Signed by the host: the Room (with its policy snapshot) and its Policy.",
)
def create_room(
    call: Annotated[SignedBody[CreateRoomBody], Depends(signed_json(CreateRoomBody))],
    api: ApiDep,
    response: Response,
) -> RoomView:
    stored = api.coordinator.rooms.create(
        call.body.room, call.body.policy, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.get("/v1/rooms", response_model=RoomList, description="The caller's rooms.")
def list_rooms(caller: Signed, api: ApiDep) -> RoomList:
    return api.coordinator.rooms.listing(caller=caller.party, now=caller.now)


@router.get(
    "/v1/rooms/{room}",
    response_model=RoomView,
    description="A room, its members, runs, events and red flags; 404 unless the caller is "
    "its host or invited.",
)
def get_room(room: str, caller: Signed, api: ApiDep) -> RoomView:
    return api.coordinator.rooms.get(room, caller=caller.party, now=caller.now)


@router.get(
    "/v1/rooms/{room}/statements",
    response_model=RoomStatements,
    description="The room's signed statements (room, policy, invitations, consents and "
    "withdrawals, run approvals, the organisation memberships naming the approvers), each with "
    "its inclusion proof in one checkpoint; 404 unless the caller is its host or invited.",
)
def room_statements(room: str, caller: Signed, api: ApiDep) -> RoomStatements:
    return api.coordinator.rooms.statements(room, caller=caller.party, now=caller.now)


@router.post(
    "/v1/rooms/{room}/invitations",
    status_code=201,
    response_model=RoomView,
    responses=stored_responses(RoomView, "invitation"),
    openapi_extra=json_body(InvitationBody),
    description="Signed by the host.",
)
def invite(
    room: str,
    call: Annotated[SignedBody[InvitationBody], Depends(signed_json(InvitationBody))],
    api: ApiDep,
    response: Response,
) -> RoomView:
    stored = api.coordinator.rooms.invite(
        room, call.body.invitation, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/rooms/{room}/join",
    response_model=RoomView,
    openapi_extra=json_body(JoinRoomBody),
    description="Signed by an invitee, with the report of its local pre-check.",
)
def join(
    room: str,
    call: Annotated[SignedBody[JoinRoomBody], Depends(signed_json(JoinRoomBody))],
    api: ApiDep,
) -> RoomView:
    return api.coordinator.rooms.join(
        room, call.body.precheck, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/rooms/{room}/consents",
    status_code=201,
    response_model=RoomView,
    responses=stored_responses(RoomView, "consent"),
    openapi_extra=json_body(ConsentBody),
    description="Signed by a member: consent to the snapshot, or withdraw it (ends open runs).",
)
def consent(
    room: str,
    call: Annotated[SignedBody[ConsentBody], Depends(signed_json(ConsentBody))],
    api: ApiDep,
    response: Response,
) -> RoomView:
    stored = api.coordinator.rooms.consent(
        room, call.body.consent, caller=call.caller.party, now=call.caller.now
    )
    return answer(stored, response)


@router.post(
    "/v1/rooms/{room}/runs/{rid}/approvals",
    response_model=RoomView,
    openapi_extra=json_body(RunApprovalBody),
    description="Signed by a person (approver or admin) of a member organisation.",
)
def approve_run(
    room: str,
    rid: str,
    call: Annotated[SignedBody[RunApprovalBody], Depends(signed_json(RunApprovalBody))],
    api: ApiDep,
) -> RoomView:
    return api.coordinator.rooms.approve_run(
        room, rid, call.body.approval, caller=call.caller.party, now=call.caller.now
    )


@router.post(
    "/v1/orgs/members",
    response_model=OrgMemberView,
    openapi_extra=json_body(OrgMemberBody),
    description="Signed by the organisation: one person, its role, active or removed.",
)
def put_org_member(
    call: Annotated[SignedBody[OrgMemberBody], Depends(signed_json(OrgMemberBody))],
    api: ApiDep,
) -> OrgMemberView:
    return api.coordinator.rooms.put_org_member(
        call.body.member, caller=call.caller.party, now=call.caller.now
    )
