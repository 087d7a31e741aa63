"""The signed statements of rooms: the room and its policy snapshot, invitations, consents,
organisation memberships and per-member run approvals.

A room is named by the digest of its :class:`Room` statement (signed by the host),
and its policy by the digest of the snapshot inside it (:func:`snapshot_digest`):
SHA-256 over the snapshot's canonical JSON (RFC 8785), so anyone can recompute it
with any JCS implementation. A :class:`RoomConsent` names that digest, so a
participant consents to the exact terms and not to whatever the room says later.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sealroom.crypto.keys import PublicIdentity
from sealroom.statements.canonical import canonical_json
from sealroom.statements.envelope import Statement, require_signer
from sealroom.statements.fields import (
    B64Nonce,
    DecimalStr,
    Digest,
    DigestStr,
    Identifier,
    LongText,
    PartyIdStr,
    Reason,
    ShortText,
    UnixTime,
)
from sealroom.statements.models import ComputationRef

__all__ = [
    "ROOM_STATEMENT_TYPES",
    "SNAPSHOT_FORMAT",
    "OrgMember",
    "Role",
    "Room",
    "RoomConsent",
    "RoomDp",
    "RoomInvitation",
    "RoomSnapshot",
    "RunApproval",
    "TemplateRef",
    "policy_snapshot",
    "snapshot_digest",
]

SNAPSHOT_FORMAT = "sealroom.room-policy/v1"
MAX_ROOM_PARTIES = 50

Role = Literal["admin", "approver", "analyst", "auditor"]
_RiskReason = Annotated[str, Field(min_length=1, max_length=300)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TemplateRef(_Part):
    """The template a room was made from, with its floors and why it is risky (if it is)."""

    id: Identifier
    title: ShortText
    # The template's recommended minimum k: a room below it is risky and red-flagged.
    k_floor: Annotated[int, Field(ge=1, le=1_000_000)]
    risky: bool
    risk_reasons: Annotated[tuple[_RiskReason, ...], Field(max_length=16)]

    @model_validator(mode="after")
    def _reasons(self) -> TemplateRef:
        if self.risky != bool(self.risk_reasons):
            raise ValueError("a risky template names its risk reasons, and only a risky one")
        return self


class RoomDp(_Part):
    """``required``: every release is differentially private within these budgets (per
    member dataset, composed with each owner's own). ``exact``: exact releases allowed."""

    mode: Literal["required", "exact"]
    epsilon_per_run: DecimalStr | None
    epsilon_total: DecimalStr | None
    delta_total: DecimalStr

    @model_validator(mode="after")
    def _budgets(self) -> RoomDp:
        if self.mode == "required" and (self.epsilon_per_run is None or self.epsilon_total is None):
            raise ValueError("a room that requires DP sets epsilon_per_run and epsilon_total")
        return self


class RoomSnapshot(_Part):
    """Everything a participant consents to. Its digest (:func:`snapshot_digest`) is the
    room's policy id; the one-page summary is rendered from this value alone."""

    format: Literal["sealroom.room-policy/v1"]
    name: ShortText
    purpose: LongText
    host: PartyIdStr
    template: TemplateRef
    # The only computations (id, version and code digest) a run in the room may be.
    allowed_queries: Annotated[tuple[ComputationRef, ...], Field(min_length=1, max_length=16)]
    # Who receives each result: the host (requester) and every member whose data is an input.
    recipients: Literal["host-and-input-owners"]
    k: Annotated[int, Field(ge=2, le=1_000_000)]
    dp: RoomDp
    retention_seconds: Annotated[int, Field(ge=1, le=100 * 366 * 86400)]
    expires_at: UnixTime
    region: Identifier | None
    max_parties: Annotated[int, Field(ge=2, le=MAX_ROOM_PARTIES)]
    # "policy": members' clients approve runs the room's policy admits without asking.
    approval: Literal["manual", "policy"]
    # Distinct approvers each data party needs per run (2 for a risky template).
    approvers_required: Annotated[int, Field(ge=1, le=2)]
    # The room's Policy statement (signed by the host) that every run names as room_policy.
    policy: DigestStr
    created_at: UnixTime

    @model_validator(mode="after")
    def _consistent(self) -> RoomSnapshot:
        if self.k < self.template.k_floor and not self.template.risky:
            raise ValueError(
                f"k {self.k} is below the template's floor {self.template.k_floor}, "
                "so the template must be marked risky"
            )
        if self.template.risky and self.approvers_required < 2:
            raise ValueError("a risky template needs two approvers per data party")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        ids = [q.id for q in self.allowed_queries]
        if len(set(ids)) != len(ids):
            raise ValueError("allowed_queries name a computation twice")
        return self

    def to_json(self) -> dict[str, Any]:
        """The snapshot as the canonical JSON dict its digest is computed over."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    def digest(self) -> Digest:
        return snapshot_digest(self.to_json())


def snapshot_digest(snapshot: dict[str, Any]) -> Digest:
    """``sha256:`` + hex SHA-256 of the snapshot's canonical JSON (RFC 8785)."""
    return Digest("sha256:" + hashlib.sha256(canonical_json(snapshot)).hexdigest())


class Room(Statement):
    """A room, signed by its host: the policy snapshot and its digest."""

    TYPE: ClassVar[str] = "sealroom.room"
    VERSION: ClassVar[int] = 1

    host: PartyIdStr
    snapshot: RoomSnapshot
    snapshot_digest: DigestStr
    nonce: B64Nonce
    created_at: UnixTime

    @model_validator(mode="after")
    def _digest_matches(self) -> Room:
        if self.snapshot.host != self.host:
            raise ValueError("the snapshot names another host")
        if self.snapshot.digest() != self.snapshot_digest:
            raise ValueError("snapshot_digest is not the digest of the snapshot")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.host, signer, role="host")


def policy_snapshot(room: Room) -> tuple[dict[str, Any], Digest]:
    """The room's policy snapshot as the plain JSON dict its digest covers, and that digest.

    The one seam the one-page summary, the auditor pack and consents share: whatever
    renders or packs a room's terms starts from this dict and names this digest (checked
    against the one the host signed).
    """
    data = room.snapshot.to_json()
    digest = snapshot_digest(data)
    if digest != room.snapshot_digest:  # pragma: no cover - the model validator checks it
        raise ValueError("the room's snapshot digest does not match its snapshot")
    return data, digest


class RoomInvitation(Statement):
    """The host invites one party into a room."""

    TYPE: ClassVar[str] = "sealroom.room-invitation"
    VERSION: ClassVar[int] = 1

    room: DigestStr
    host: PartyIdStr
    invitee: PartyIdStr
    created_at: UnixTime

    @model_validator(mode="after")
    def _not_self(self) -> RoomInvitation:
        if self.invitee == self.host:
            raise ValueError("the host is a member already; invite another party")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.host, signer, role="host")


class RoomConsent(Statement):
    """A member's consent to (or withdrawal from) the exact policy snapshot of a room.

    The newest consent statement of a member is its current decision; a withdrawal
    before a run starts stops it.
    """

    TYPE: ClassVar[str] = "sealroom.room-consent"
    VERSION: ClassVar[int] = 1

    room: DigestStr
    party: PartyIdStr
    snapshot: DigestStr
    decision: Literal["consent", "withdraw"]
    reason: Reason
    created_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.party, signer, role="member")


class OrgMember(Statement):
    """An organisation (a party) names one of its people (a party with its own key) and role.

    ``active: false`` removes the member. Signed by the organisation's key (its admin).
    """

    TYPE: ClassVar[str] = "sealroom.org-member"
    VERSION: ClassVar[int] = 1

    org: PartyIdStr
    member: PartyIdStr
    role: Role
    active: bool
    created_at: UnixTime

    @model_validator(mode="after")
    def _not_self(self) -> OrgMember:
        if self.member == self.org:
            raise ValueError("an organisation cannot be its own member")
        return self

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.org, signer, role="organisation")


class RunApproval(Statement):
    """One person of an organisation approves (or rejects) one run in a room, with its own key."""

    TYPE: ClassVar[str] = "sealroom.room-run-approval"
    VERSION: ClassVar[int] = 1

    room: DigestStr
    request: DigestStr
    org: PartyIdStr
    approver: PartyIdStr
    decision: Literal["approve", "reject"]
    reason: Reason
    created_at: UnixTime

    def check_signer(self, signer: PublicIdentity) -> None:
        require_signer(self.approver, signer, role="approver")


ROOM_STATEMENT_TYPES: dict[str, type[Statement]] = {
    cls.TYPE: cls for cls in (Room, RoomInvitation, RoomConsent, OrgMember, RunApproval)
}
