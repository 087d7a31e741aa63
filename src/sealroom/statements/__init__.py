"""Signed statements: canonical JSON, envelopes, digests, and the protocol's document types."""

from __future__ import annotations

from sealroom.statements.canonical import canonical_json, parse_json_strict
from sealroom.statements.deletion import Deletion, HeldInput, sealed_digest
from sealroom.statements.envelope import Envelope, Signed, Statement, digest_of, sign_statement
from sealroom.statements.fields import Digest
from sealroom.statements.models import STATEMENT_TYPES as _MODEL_TYPES
from sealroom.statements.models import (
    Approval,
    BudgetCharge,
    Column,
    CommitmentRef,
    ComputationRef,
    ComputationRequest,
    DatasetAttestation,
    DatasetProfile,
    EnclaveEvidence,
    EnclaveKeyDocument,
    InputDecision,
    InputRef,
    Keyword,
    ModelWeights,
    OutputRef,
    Policy,
    PrivacyCharge,
    ProtocolParticipant,
    ProtocolReceipt,
    Receipt,
    StreamDigest,
    TimeRange,
    TrainedModel,
    output_commitment,
)
from sealroom.statements.output import ReleasedOutput
from sealroom.statements.rooms import (
    ROOM_STATEMENT_TYPES,
    OrgMember,
    Room,
    RoomConsent,
    RoomInvitation,
    RoomSnapshot,
    RunApproval,
    policy_snapshot,
    snapshot_digest,
)
from sealroom.statements.visibility import PUBLIC_TYPES, is_public

STATEMENT_TYPES = {**_MODEL_TYPES, **ROOM_STATEMENT_TYPES}

__all__ = [
    "PUBLIC_TYPES",
    "STATEMENT_TYPES",
    "Approval",
    "BudgetCharge",
    "Column",
    "CommitmentRef",
    "ComputationRef",
    "ComputationRequest",
    "DatasetAttestation",
    "DatasetProfile",
    "Deletion",
    "Digest",
    "EnclaveEvidence",
    "EnclaveKeyDocument",
    "Envelope",
    "HeldInput",
    "InputDecision",
    "InputRef",
    "Keyword",
    "ModelWeights",
    "OrgMember",
    "OutputRef",
    "Policy",
    "PrivacyCharge",
    "ProtocolParticipant",
    "ProtocolReceipt",
    "Receipt",
    "ReleasedOutput",
    "Room",
    "RoomConsent",
    "RoomInvitation",
    "RoomSnapshot",
    "RunApproval",
    "Signed",
    "Statement",
    "StreamDigest",
    "TimeRange",
    "TrainedModel",
    "canonical_json",
    "digest_of",
    "is_public",
    "output_commitment",
    "parse_json_strict",
    "policy_snapshot",
    "sealed_digest",
    "sign_statement",
    "snapshot_digest",
]
