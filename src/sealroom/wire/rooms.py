"""Rooms: creation, invitations, joining with a pre-check, consents, runs and their approvals,
and organisation members."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.deletions import LoggedStatement
from sealroom.wire.fields import DigestStr, EnvelopeField, PartyIdStr

__all__ = [
    "ConsentBody",
    "CreateRoomBody",
    "InvitationBody",
    "JoinRoomBody",
    "OrgMemberBody",
    "OrgMemberView",
    "RoomEvent",
    "RoomList",
    "RoomMember",
    "RoomRun",
    "RoomStatements",
    "RoomView",
    "RunApprovalBody",
]


class CreateRoomBody(WireModel):
    room: EnvelopeField = Field(description="A Room envelope, signed by the host.")
    policy: EnvelopeField = Field(
        description="The room's Policy envelope (signed by the host) that the snapshot names."
    )


class InvitationBody(WireModel):
    invitation: EnvelopeField = Field(description="A RoomInvitation envelope, signed by the host.")


class JoinRoomBody(WireModel):
    precheck: dict[str, Any] = Field(
        description="The joining party's local pre-check report: its dataset, schema, column "
        "types, entity count against the room's k, and the card it would reveal."
    )


class ConsentBody(WireModel):
    consent: EnvelopeField = Field(description="A RoomConsent envelope, signed by the member.")


class RunApprovalBody(WireModel):
    approval: EnvelopeField = Field(
        description="A RunApproval envelope, signed by a person of the organisation."
    )


class OrgMemberBody(WireModel):
    member: EnvelopeField = Field(description="An OrgMember envelope, signed by the organisation.")


class OrgMemberView(WireModel):
    org: PartyIdStr
    member: PartyIdStr
    role: Literal["admin", "approver", "analyst", "auditor"]
    active: bool
    statement: DigestStr


class RoomMember(WireModel):
    party: PartyIdStr
    role: Literal["host", "member"]
    status: Literal["invited", "joined"]
    consent_state: Literal["none", "consented", "withdrawn"]
    consent: DigestStr | None
    precheck: dict[str, Any] | None
    invited_at: int
    joined_at: int | None


class RoomEvent(WireModel):
    at: int
    kind: str
    party: PartyIdStr | None
    request: DigestStr | None
    detail: str


class RoomRun(WireModel):
    request: DigestStr
    status: str
    status_reason: str | None
    computation: str
    approvals: tuple[PartyIdStr, ...] = Field(
        description="The people (organisation members) who approved the run."
    )


class RoomView(WireModel):
    room: DigestStr
    envelope: EnvelopeField
    policy: EnvelopeField
    snapshot: dict[str, Any]
    snapshot_digest: DigestStr
    host: PartyIdStr
    name: str
    template: str
    risky: bool
    region: str | None
    expires_at: int
    expired: bool
    members: tuple[RoomMember, ...]
    runs: tuple[RoomRun, ...]
    events: tuple[RoomEvent, ...]
    red_flags: tuple[RoomEvent, ...]


class RoomList(WireModel):
    items: tuple[RoomView, ...]


class RoomStatements(WireModel):
    """A room's signed statements with log proofs against one checkpoint, for its members (an
    auditor pack carries them): the room, its policy, invitations, every consent and
    withdrawal, the people's run approvals and the organisation memberships naming them."""

    room: DigestStr
    checkpoint: str = Field(description="The C2SP signed checkpoint the proofs are against.")
    statements: tuple[LoggedStatement, ...]
