"""OpenAPI documentation models for the HTTP API (docs/http-api.md).

The app reads request bodies raw, because the request signature covers the
exact bytes, and the coordinator validates them itself; so FastAPI never sees
these models as parameters. They exist only to describe the bodies and
responses in ``/openapi.json``: :func:`install_openapi` adds them to the
generated schema. Nothing here parses or validates a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

__all__ = ["BODIES", "NO_BODY", "PUBLIC", "RESPONSES", "document", "install_openapi"]

Digest = str
_REF = "#/components/schemas/{model}"
_BINARY = {"type": "string", "format": "binary"}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """A response: clients ignore fields they do not know, so servers may add some."""

    model_config = ConfigDict(extra="allow", frozen=True)


# --- shared pieces ---------------------------------------------------------------------------


class Signer(_Doc):
    signing_key: str = Field(description="Ed25519 public key, base64 (32 bytes).")
    sealing_key: str = Field(description="X25519 public key, base64 (32 bytes).")


class Envelope(_Doc):
    """A signed statement: canonical JSON payload (base64) and an Ed25519 signature over it."""

    type: str = Field(description="Statement type, e.g. DatasetAttestation.")
    version: int
    payload: str = Field(description="The statement's canonical JSON (RFC 8785), base64.")
    signer: Signer
    signature: str = Field(description="Ed25519 signature over the PAE encoding, base64.")


class ErrorDetail(_Doc):
    code: str = Field(description="Stable error code from the catalog (api/errors.py).")
    message: str = Field(description="Safe public message for the code.")
    detail: str = Field(description="What to fix.")


class ErrorBody(_Doc):
    error: ErrorDetail


# --- request bodies --------------------------------------------------------------------------


class RegisterPartyBody(_Doc):
    name: str
    signing_key: str = Field(description="base64; must be the key that signs this call")
    sealing_key: str = Field(description="base64")


class PolicyBody(_Doc):
    policy: Envelope


class PublishDatasetBody(_Doc):
    attestation: Envelope
    policy: Envelope | None = Field(
        default=None, description="Required when the attestation names a policy not yet stored."
    )


class ReasonBody(_Doc):
    reason: str = Field(min_length=1, max_length=2000)


class CreateRequestBody(_Doc):
    request: Envelope = Field(description="A ComputationRequest envelope.")


class KeywordOverlapBody(_Doc):
    dataset_a: Digest
    dataset_b: Digest
    request: Envelope | None = Field(
        default=None, description="The signed draft; without it the server answers the draft."
    )


class ApprovalBody(_Doc):
    approval: Envelope = Field(description="An Approval envelope.")


class EnclaveBody(_Doc):
    evidence: Envelope = Field(description="An EnclaveEvidence envelope.")


class SealedOutput(_Doc):
    recipient: str
    sealed: str = Field(description="The recipient's sealed ReleasedOutput, base64.")


class CompleteJobBody(_Doc):
    receipt: Envelope
    outputs: list[SealedOutput]


# --- responses -------------------------------------------------------------------------------


class HealthView(_Open):
    status: Literal["ok"]
    version: str


class ComputationInfo(_Open):
    id: str
    version: str
    summary: str
    privacy_class: str
    release: Literal["all-parties", "requester"]
    inputs: list[str]
    code_digest: Digest
    parameters_schema: dict[str, Any]
    output_schema: dict[str, Any]


class ComputationList(_Open):
    computations: list[ComputationInfo]


class PartyView(_Open):
    party: str
    name: str
    signing_key: str
    sealing_key: str
    kind: Literal["party", "enclave"]
    registered_at: int


class LogKeyView(_Open):
    verifier_key: str
    origin: str


class LogEntryView(_Open):
    index: int
    entry: Envelope


class InclusionProofView(_Open):
    index: int
    size: int
    proof: list[str]


class ConsistencyProofView(_Open):
    first: int
    second: int
    proof: list[str]


class PolicyCreated(_Open):
    policy: Digest
    log_index: int


class PolicyView(_Open):
    policy: Digest
    envelope: Envelope
    log_index: int


class Keyword(_Open):
    term: str
    count: int | None


class TimeRange(_Open):
    start: int
    end: int


class DatasetView(_Open):
    dataset: Digest
    owner: str
    owner_name: str | None
    title: str
    description: str
    topics: list[str]
    keywords: list[Keyword]
    profile: dict[str, Any]
    row_count: int
    time_range: TimeRange | None
    schema_: list[dict[str, Any]] = Field(alias="schema")
    policy: Digest | None
    commitment: dict[str, Any]
    status: Literal["active", "withdrawn"]
    created_at: int
    log_index: int
    envelope: Envelope


class Inclusion(_Open):
    checkpoint: str = Field(description="C2SP signed checkpoint the proof is against.")
    proof: list[str]
    size: int


class PublishedDataset(DatasetView):
    inclusion: Inclusion


class DatasetPage(_Open):
    items: list[DatasetView]
    next_cursor: str | None


class SearchHit(_Open):
    dataset: DatasetView
    score: float
    jaccard: float | None


class SearchPage(_Open):
    items: list[SearchHit]
    next_cursor: str | None
    total: int


class ComputationRef(_Open):
    id: str
    version: str
    code_digest: Digest


class RequestInput(_Open):
    dataset: Digest
    owner: str
    decision: Literal["pending", "approve", "reject"]
    mode: Literal["manual", "policy"] | None
    reason: str | None
    approval: Digest | None
    sealed: bool
    enclave: Digest | None


class Precheck(_Open):
    dataset: Digest
    allowed: bool
    automatic: bool
    reasons: list[str]


RequestStatus = Literal[
    "pending", "approved", "running", "completed", "failed", "rejected", "withdrawn", "expired"
]


class HistoryItem(_Open):
    status: RequestStatus
    at: int
    reason: str | None


class RequestView(_Open):
    request: Digest
    envelope: Envelope
    requester: str
    computation: ComputationRef
    parameters: dict[str, Any]
    inputs: list[RequestInput]
    recipients: list[str]
    status: RequestStatus
    status_reason: str | None
    precheck: list[Precheck]
    history: list[HistoryItem]
    receipt: Digest | None
    created_at: int
    expires_at: int
    log_index: int


class RequestList(_Open):
    items: list[RequestView]


class DraftView(_Open):
    draft: dict[str, Any] = Field(description="The unsigned ComputationRequest to sign.")


class ResultView(_Open):
    request: Digest
    recipient: str
    sealed: str
    receipt: Envelope


class EnclaveRegistered(_Open):
    evidence: Digest
    party: str
    tee: str
    simulated: bool
    log_index: int


class EnclaveView(_Open):
    evidence: Digest
    envelope: Envelope
    tee: str
    simulated: bool
    party: str
    log_index: int


class JobInput(_Open):
    dataset: Digest
    size: int


class JobView(_Open):
    request: Envelope
    approvals: list[Envelope]
    attestations: list[Envelope]
    policies: list[Envelope]
    room_policy: Envelope | None
    inputs: list[JobInput]
    evidence: Digest
    lease_until: int


class SessionParticipant(_Doc):
    role: str = Field(description="The participant's role in the protocol, e.g. a, b, server.")
    party: str


class SessionMember(_Open):
    role: str
    party: str
    active: bool = Field(description="Whether this participant has posted a message yet.")


class CreateSessionBody(_Doc):
    session: str = Field(
        description="32 lowercase hex characters, chosen at random by the creator."
    )
    protocol: str
    participants: list[SessionParticipant] = Field(description="2..200, the caller among them.")
    request: Digest | None
    expires_in: int = Field(description="Seconds, 60..86400.")


class SessionView(_Open):
    session: str
    protocol: str
    request: Digest | None
    created_by: str
    created_at: int
    expires_at: int
    participants: list[SessionMember]


class SessionList(_Open):
    sessions: list[SessionView]


class MessagePosted(_Open):
    index: int


# --- the route tables ------------------------------------------------------------------------

_SEALED = "sealed"
"""Marker for the sealed input upload's raw-bytes body."""
_RELAYED = "relayed"
"""Marker for a relayed protocol message's raw-bytes body."""

BODIES: dict[tuple[str, str], type[BaseModel] | str] = {
    ("post", "/v1/parties"): RegisterPartyBody,
    ("post", "/v1/policies"): PolicyBody,
    ("post", "/v1/datasets"): PublishDatasetBody,
    ("post", "/v1/datasets/{dataset}/withdraw"): ReasonBody,
    ("post", "/v1/requests"): CreateRequestBody,
    ("post", "/v1/compute/keyword-overlap"): KeywordOverlapBody,
    ("post", "/v1/requests/{rid}/approvals"): ApprovalBody,
    ("put", "/v1/requests/{rid}/inputs/{dataset}"): _SEALED,
    ("post", "/v1/requests/{rid}/withdraw"): ReasonBody,
    ("post", "/v1/enclaves"): EnclaveBody,
    ("post", "/v1/jobs/{rid}/complete"): CompleteJobBody,
    ("post", "/v1/jobs/{rid}/fail"): ReasonBody,
    ("post", "/v1/sessions"): CreateSessionBody,
    ("post", "/v1/sessions/{sid}/messages"): _RELAYED,
}
"""The body each mutating route takes. ``POST /v1/jobs/claim`` takes none."""

NO_BODY: frozenset[tuple[str, str]] = frozenset({("post", "/v1/jobs/claim")})

RESPONSES: dict[tuple[str, str], tuple[int, type[BaseModel]]] = {
    ("get", "/v1/health"): (200, HealthView),
    ("get", "/v1/computations"): (200, ComputationList),
    ("post", "/v1/parties"): (201, PartyView),
    ("get", "/v1/parties/{party}"): (200, PartyView),
    ("get", "/v1/log/key"): (200, LogKeyView),
    ("get", "/v1/log/entries/{index}"): (200, LogEntryView),
    ("get", "/v1/log/inclusion"): (200, InclusionProofView),
    ("get", "/v1/log/consistency"): (200, ConsistencyProofView),
    ("post", "/v1/policies"): (201, PolicyCreated),
    ("get", "/v1/policies/{digest}"): (200, PolicyView),
    ("post", "/v1/datasets"): (201, PublishedDataset),
    ("get", "/v1/datasets"): (200, DatasetPage),
    ("get", "/v1/datasets/{dataset}"): (200, DatasetView),
    ("post", "/v1/datasets/{dataset}/withdraw"): (200, DatasetView),
    ("get", "/v1/search"): (200, SearchPage),
    ("post", "/v1/requests"): (201, RequestView),
    ("post", "/v1/compute/keyword-overlap"): (201, RequestView),
    ("get", "/v1/requests"): (200, RequestList),
    ("get", "/v1/inbox"): (200, RequestList),
    ("get", "/v1/requests/{rid}"): (200, RequestView),
    ("post", "/v1/requests/{rid}/approvals"): (200, RequestView),
    ("put", "/v1/requests/{rid}/inputs/{dataset}"): (200, RequestView),
    ("post", "/v1/requests/{rid}/withdraw"): (200, RequestView),
    ("get", "/v1/requests/{rid}/result"): (200, ResultView),
    ("post", "/v1/enclaves"): (201, EnclaveRegistered),
    ("get", "/v1/enclave"): (200, EnclaveView),
    ("post", "/v1/jobs/claim"): (200, JobView),
    ("post", "/v1/jobs/{rid}/complete"): (200, RequestView),
    ("post", "/v1/jobs/{rid}/fail"): (200, RequestView),
    ("post", "/v1/sessions"): (201, SessionView),
    ("get", "/v1/sessions"): (200, SessionList),
    ("get", "/v1/sessions/{sid}"): (200, SessionView),
    ("post", "/v1/sessions/{sid}/messages"): (201, MessagePosted),
}

PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("get", "/v1/health"),
        ("get", "/v1/computations"),
        ("get", "/v1/parties/{party}"),
        ("get", "/v1/log/checkpoint"),
        ("get", "/v1/log/key"),
        ("get", "/v1/log/entries/{index}"),
        ("get", "/v1/log/inclusion"),
        ("get", "/v1/log/consistency"),
        ("get", "/v1/policies/{digest}"),
        ("get", "/v1/datasets"),
        ("get", "/v1/datasets/{dataset}"),
        ("get", "/v1/search"),
        ("get", "/v1/enclave"),
    }
)
"""Routes that need no request signature; every other route does."""

_EXTRA_MODELS: tuple[type[BaseModel], ...] = (ErrorBody, DraftView)

_SIGNATURE_HEADERS = (
    "Sealroom-Party",
    "Sealroom-Timestamp",
    "Sealroom-Nonce",
    "Sealroom-Signature",
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _request_body(spec: type[BaseModel] | str) -> dict[str, Any]:
    if spec == _RELAYED:
        return {
            "required": True,
            "description": "One protocol message (at most 64 MiB): an Ed25519 signature by the "
            "sender, then the message sealed to the recipient. Opaque to the coordinator.",
            "content": {"application/octet-stream": {"schema": dict(_BINARY)}},
        }
    if isinstance(spec, str):
        return {
            "required": True,
            "description": "The sealed canonical Arrow bytes (at most 64 MiB), sealed to the "
            "enclave named in the Sealroom-Enclave header.",
            "content": {"application/octet-stream": {"schema": dict(_BINARY)}},
        }
    return {
        "required": True,
        "description": "JSON object, at most 1 MiB. The request signature covers these exact bytes.",
        "content": _json(spec),
    }


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add request bodies, response bodies, the error body and signature headers to ``schema``."""
    models = {m for m in BODIES.values() if not isinstance(m, str)}
    models |= {m for _, m in RESPONSES.values()}
    models |= set(_EXTRA_MODELS)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "serialization") for m in ordered], ref_template=_REF)
    components = schema.setdefault("components", {})
    component_schemas = components.setdefault("schemas", {})
    for name, definition in defs.get("$defs", {}).items():
        component_schemas.setdefault(name, definition)
    components.setdefault("securitySchemes", {})["SealroomSignature"] = {
        "type": "apiKey",
        "in": "header",
        "name": "Sealroom-Signature",
        "description": "Ed25519 request signature over method, path+query, SHA-256(body), "
        "timestamp and nonce; sent with the headers " + ", ".join(_SIGNATURE_HEADERS) + ".",
    }
    paths: dict[str, Any] = schema.get("paths", {})
    for (method, path), spec in BODIES.items():
        op = paths.get(path, {}).get(method)
        if op is not None:
            op["requestBody"] = _request_body(spec)
    for (method, path), (status, model) in RESPONSES.items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue
        responses = op.setdefault("responses", {})
        responses.pop("422", None)  # validation errors answer 400 with the error body
        entry = responses.setdefault(str(status), {"description": "OK"})
        entry["content"] = _json(model)
    for path, path_item in paths.items():
        for method, op in path_item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            if (method, path) not in PUBLIC:
                op["security"] = [{"SealroomSignature": []}]
            op["responses"].pop("422", None)
            op["responses"].setdefault(
                "4XX", {"description": "Error (see the error catalog)", "content": _json(ErrorBody)}
            )
    draft = paths.get("/v1/compute/keyword-overlap", {}).get("post")
    if draft is not None:
        draft["responses"]["200"] = {
            "description": "The unsigned draft (when no request envelope is sent)",
            "content": _json(DraftView),
        }
    upload = paths.get("/v1/requests/{rid}/inputs/{dataset}", {}).get("put")
    if upload is not None:
        upload.setdefault("parameters", []).append(
            {
                "name": "Sealroom-Enclave",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": "Digest of the enclave evidence the bytes were sealed to.",
            }
        )
    job_input = paths.get("/v1/jobs/{rid}/inputs/{dataset}", {}).get("get")
    if job_input is not None:
        job_input["responses"]["200"] = {
            "description": "The sealed input bytes",
            "content": {"application/octet-stream": {"schema": dict(_BINARY)}},
        }
    bundle = paths.get("/v1/requests/{rid}/bundle", {}).get("get")
    if bundle is not None:
        bundle["responses"]["200"] = {
            "description": "The ProofBundle JSON (verification/bundle.py), without outputs",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    relayed = paths.get("/v1/sessions/{sid}/messages", {}).get("get")
    if relayed is not None:
        relayed["responses"]["200"] = {
            "description": "The caller's next message after `after`, as posted; its index and "
            "sender role in the Sealroom-Index and Sealroom-Sender headers",
            "content": {"application/octet-stream": {"schema": dict(_BINARY)}},
        }
        relayed["responses"]["204"] = {"description": "No message yet"}
    claim = paths.get("/v1/jobs/claim", {}).get("post")
    if claim is not None:
        claim["responses"]["204"] = {"description": "Nothing is ready"}
        claim["description"] = "Signed by an enclave; the body is empty."
    _drop_unreferenced(schema)
    return schema


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _drop_unreferenced(schema: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (FastAPI's 422 models, which never occur)."""
    component_schemas: dict[str, Any] = schema.get("components", {}).get("schemas", {})
    prefix = _REF.format(model="")
    live: set[str] = set()
    todo = [r.removeprefix(prefix) for r in _refs(schema.get("paths", {}))]
    while todo:
        name = todo.pop()
        if name in live or name not in component_schemas:
            continue
        live.add(name)
        todo.extend(r.removeprefix(prefix) for r in _refs(component_schemas[name]))
    for name in set(component_schemas) - live:
        del component_schemas[name]


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the generated schema completed by :func:`document`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
