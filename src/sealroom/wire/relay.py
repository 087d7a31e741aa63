"""Relay sessions for protocols run between parties."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from sealroom.wire.base import WireModel
from sealroom.wire.fields import DigestStr, Identifier, PartyIdStr

__all__ = [
    "MAX_PARTICIPANTS",
    "MAX_SESSION_SECONDS",
    "CreateSessionBody",
    "MessagePosted",
    "Participant",
    "SessionList",
    "SessionParticipant",
    "SessionView",
]

MAX_PARTICIPANTS = 200
MAX_SESSION_SECONDS = 86_400
SessionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class Participant(WireModel):
    role: Identifier = Field(description="The participant's role in the protocol, e.g. a, b.")
    party: str


class CreateSessionBody(WireModel):
    session: SessionId = Field(description="Chosen at random by the creator.")
    protocol: Identifier
    participants: tuple[Participant, ...] = Field(
        min_length=2,
        max_length=MAX_PARTICIPANTS,
        description="Distinct roles and distinct registered parties, the caller among them.",
    )
    request: DigestStr | None
    expires_in: int = Field(ge=60, le=MAX_SESSION_SECONDS, description="Seconds.")


class SessionParticipant(WireModel):
    role: str
    party: PartyIdStr
    active: bool = Field(description="Whether this participant has posted a message yet.")


class SessionView(WireModel):
    """A relay session as the coordinator describes it (participants are checked by the client)."""

    session: str
    protocol: str
    request: DigestStr | None
    created_by: PartyIdStr
    created_at: int
    expires_at: int
    participants: tuple[SessionParticipant, ...]


class SessionList(WireModel):
    sessions: tuple[SessionView, ...]


class MessagePosted(WireModel):
    index: int
