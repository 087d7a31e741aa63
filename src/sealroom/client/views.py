"""Typed, frozen views of the coordinator's responses (docs/http-api.md).

Responses are parsed strictly (types exact, required fields present) so a
coordinator that sends something else is caught at the boundary as a
:class:`~sealroom.errors.ProtocolError`, not deep inside a flow. Unknown extra
fields are ignored, so a newer server can add fields without breaking older
clients. Envelopes are parsed into :class:`~sealroom.statements.Envelope` but
never trusted: flows re-open them (signature, signer, digest) before acting.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from sealroom.crypto.keys import b64decode_strict, b64encode
from sealroom.errors import ProtocolError, SealroomError
from sealroom.statements import Envelope
from sealroom.statements.fields import DigestStr, PartyIdStr

__all__ = [
    "ComputationInfo",
    "ConsistencyProofView",
    "DatasetPage",
    "DatasetView",
    "EnclaveRegistered",
    "EnclaveView",
    "Health",
    "HistoryItem",
    "Inclusion",
    "InclusionProofView",
    "JobInput",
    "JobView",
    "LogEntryView",
    "LogKey",
    "PartyView",
    "PolicyCreated",
    "PolicyView",
    "Precheck",
    "PublishedDataset",
    "RequestInput",
    "RequestList",
    "RequestStatus",
    "RequestView",
    "ResultView",
    "SearchHit",
    "SearchPage",
    "SessionList",
    "SessionParticipant",
    "SessionView",
    "parse_view",
]


def _envelope(value: Any) -> Envelope:
    if isinstance(value, Envelope):
        return value
    try:
        return Envelope.from_dict(value)
    except SealroomError as exc:
        raise ValueError(exc.detail or exc.public_message) from None


def _b64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return b64decode_strict(value, what="base64 field")
    except SealroomError as exc:
        raise ValueError(exc.detail or exc.public_message) from None


EnvelopeField = Annotated[
    Envelope,
    BeforeValidator(_envelope),
    PlainSerializer(lambda e: e.to_dict(), return_type=dict),
]
B64Field = Annotated[bytes, BeforeValidator(_b64), PlainSerializer(b64encode, return_type=str)]

RequestStatus = Literal[
    "pending", "approved", "running", "completed", "failed", "rejected", "withdrawn", "expired"
]


class View(BaseModel):
    model_config = ConfigDict(
        extra="ignore", strict=True, frozen=True, arbitrary_types_allowed=True
    )

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (envelopes as objects, bytes as base64), for ``--json`` output."""
        return self.model_dump(mode="json", by_alias=True)


V = TypeVar("V", bound=View)


def parse_view(cls: type[V], raw: bytes, *, what: str) -> V:
    """Parse a response body into ``cls``, or raise :class:`ProtocolError` naming ``what``."""
    try:
        return cls.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        parts = []
        for err in exc.errors()[:3]:
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            parts.append(f"{loc}: {err['msg']}")
        raise ProtocolError(f"malformed response to {what}: {'; '.join(parts)}") from None


class Health(View):
    status: str
    version: str


class ComputationInfo(View):
    id: str
    version: str
    summary: str
    privacy_class: str
    release: Literal["all-parties", "requester"]
    inputs: tuple[str, ...]
    code_digest: DigestStr
    parameters_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ComputationList(View):
    computations: tuple[ComputationInfo, ...]


class PartyView(View):
    party: PartyIdStr
    name: str
    signing_key: str
    sealing_key: str
    kind: Literal["party", "enclave"]
    registered_at: int


class LogKey(View):
    verifier_key: str
    origin: str


class LogEntryView(View):
    index: int
    entry: EnvelopeField


class InclusionProofView(View):
    index: int
    size: int
    proof: tuple[B64Field, ...]


class ConsistencyProofView(View):
    first: int
    second: int
    proof: tuple[B64Field, ...]


class PolicyCreated(View):
    policy: DigestStr
    log_index: int


class PolicyView(View):
    policy: DigestStr
    envelope: EnvelopeField
    log_index: int


class KeywordView(View):
    term: str
    count: int | None


class TimeRangeView(View):
    start: int
    end: int


class DatasetView(View):
    dataset: DigestStr
    owner: PartyIdStr
    owner_name: str | None
    title: str
    description: str
    topics: tuple[str, ...]
    keywords: tuple[KeywordView, ...]
    profile: dict[str, Any]
    row_count: int
    time_range: TimeRangeView | None
    schema_: tuple[dict[str, Any], ...] = Field(alias="schema")
    policy: DigestStr | None
    commitment: dict[str, Any]
    status: Literal["active", "withdrawn"]
    created_at: int
    log_index: int
    envelope: EnvelopeField


class Inclusion(View):
    checkpoint: str
    proof: tuple[B64Field, ...]
    size: int


class PublishedDataset(DatasetView):
    inclusion: Inclusion


class DatasetPage(View):
    items: tuple[DatasetView, ...]
    next_cursor: str | None


class SearchHit(View):
    dataset: DatasetView
    score: float
    jaccard: float | None


class SearchPage(View):
    items: tuple[SearchHit, ...]
    next_cursor: str | None
    total: int


class ComputationRefView(View):
    id: str
    version: str
    code_digest: DigestStr


class RequestInput(View):
    dataset: DigestStr
    owner: PartyIdStr
    decision: Literal["pending", "approve", "reject"]
    mode: Literal["manual", "policy"] | None
    reason: str | None
    approval: DigestStr | None
    sealed: bool
    enclave: DigestStr | None


class Precheck(View):
    dataset: DigestStr
    allowed: bool
    automatic: bool
    reasons: tuple[str, ...]


class HistoryItem(View):
    status: RequestStatus
    at: int
    reason: str | None


class RequestView(View):
    request: DigestStr
    envelope: EnvelopeField
    requester: PartyIdStr
    computation: ComputationRefView
    parameters: dict[str, Any]
    inputs: tuple[RequestInput, ...]
    recipients: tuple[PartyIdStr, ...]
    status: RequestStatus
    status_reason: str | None
    precheck: tuple[Precheck, ...]
    history: tuple[HistoryItem, ...]
    receipt: DigestStr | None
    created_at: int
    expires_at: int
    log_index: int


class RequestList(View):
    items: tuple[RequestView, ...]


class DraftView(View):
    draft: dict[str, Any]


class ResultView(View):
    request: DigestStr
    recipient: PartyIdStr
    sealed: B64Field
    receipt: EnvelopeField


class EnclaveRegistered(View):
    evidence: DigestStr
    party: PartyIdStr
    tee: Literal["tdx", "simulated"]
    simulated: bool
    log_index: int


class EnclaveView(View):
    evidence: DigestStr
    envelope: EnvelopeField
    tee: Literal["tdx", "simulated"]
    simulated: bool
    party: PartyIdStr
    log_index: int


class JobInput(View):
    dataset: DigestStr
    size: int


class JobView(View):
    request: EnvelopeField
    approvals: tuple[EnvelopeField, ...]
    attestations: tuple[EnvelopeField, ...]
    policies: tuple[EnvelopeField, ...]
    # The room policy the request names (the enclave checks it is exactly that one).
    room_policy: EnvelopeField | None = None
    inputs: tuple[JobInput, ...]
    evidence: DigestStr
    lease_until: int


class SessionParticipant(View):
    role: str
    party: PartyIdStr
    active: bool


class SessionView(View):
    """A relay session as the coordinator describes it (participants are checked by the client)."""

    session: str
    protocol: str
    request: DigestStr | None
    created_by: PartyIdStr
    created_at: int
    expires_at: int
    participants: tuple[SessionParticipant, ...]


class SessionList(View):
    sessions: tuple[SessionView, ...]
