"""The HTTP API's request and response models, shared by the server (api, coordinator) and the SDK.

One class per shape: the coordinator returns these, the routes declare them as
response models (so ``/openapi.json`` documents them), and the SDK parses
responses with the same classes (:func:`parse_response`, unknown fields ignored).
"""

from __future__ import annotations

from sealroom.wire.base import MAX_JSON_BODY, ReasonBody, WireModel, parse_body, parse_response
from sealroom.wire.datasets import (
    BudgetView,
    DatasetPage,
    DatasetView,
    Inclusion,
    PolicyBody,
    PolicyCreated,
    PolicyView,
    PublishDatasetBody,
    PublishedDataset,
    RequesterBudget,
    SearchHit,
    SearchPage,
)
from sealroom.wire.fields import SignedEnvelope
from sealroom.wire.jobs import (
    CompleteJobBody,
    EnclaveBody,
    EnclaveList,
    EnclaveRegistered,
    EnclaveView,
    JobInput,
    JobView,
    LeaseView,
    LedgerCharge,
    LedgerView,
    SealedOutput,
)
from sealroom.wire.log import ConsistencyProofView, InclusionProofView, LogEntryView, LogKey
from sealroom.wire.parties import PartyView, RegisterPartyBody
from sealroom.wire.relay import (
    CreateSessionBody,
    MessagePosted,
    Participant,
    SessionList,
    SessionParticipant,
    SessionView,
)
from sealroom.wire.requests import (
    ApprovalBody,
    CreateRequestBody,
    DraftView,
    HistoryItem,
    KeywordOverlapBody,
    Precheck,
    RequestInput,
    RequestList,
    RequestStatus,
    RequestView,
    ResultView,
)
from sealroom.wire.service import (
    ComputationInfo,
    ComputationList,
    ErrorBody,
    ErrorDetail,
    Health,
    Readiness,
    ReadinessCheck,
)
from sealroom.wire.uploads import StartUploadBody, UploadView

__all__ = [
    "MAX_JSON_BODY",
    "ApprovalBody",
    "BudgetView",
    "CompleteJobBody",
    "ComputationInfo",
    "ComputationList",
    "ConsistencyProofView",
    "CreateRequestBody",
    "CreateSessionBody",
    "DatasetPage",
    "DatasetView",
    "DraftView",
    "EnclaveBody",
    "EnclaveList",
    "EnclaveRegistered",
    "EnclaveView",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "HistoryItem",
    "Inclusion",
    "InclusionProofView",
    "JobInput",
    "JobView",
    "KeywordOverlapBody",
    "LeaseView",
    "LedgerCharge",
    "LedgerView",
    "LogEntryView",
    "LogKey",
    "MessagePosted",
    "Participant",
    "PartyView",
    "PolicyBody",
    "PolicyCreated",
    "PolicyView",
    "Precheck",
    "PublishDatasetBody",
    "PublishedDataset",
    "Readiness",
    "ReadinessCheck",
    "ReasonBody",
    "RegisterPartyBody",
    "RequestInput",
    "RequestList",
    "RequestStatus",
    "RequestView",
    "RequesterBudget",
    "ResultView",
    "SealedOutput",
    "SearchHit",
    "SearchPage",
    "SessionList",
    "SessionParticipant",
    "SessionView",
    "SignedEnvelope",
    "StartUploadBody",
    "UploadView",
    "WireModel",
    "parse_body",
    "parse_response",
]
