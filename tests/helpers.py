"""Deterministic identities and statements shared by tests."""

from __future__ import annotations

import hashlib
from typing import Any

from sealroom.crypto.keys import Identity, b64encode
from sealroom.policy.privacy import RequestShape
from sealroom.statements import (
    Approval,
    CommitmentRef,
    ComputationRef,
    ComputationRequest,
    DatasetAttestation,
    Keyword,
    TimeRange,
)

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z


def identity(name: str) -> Identity:
    """A fixed identity per name, so digests and ids are the same on every run."""
    seed = hashlib.sha256(b"sealroom-test-identity:" + name.encode()).digest()
    return Identity.from_private_bytes(seed, hashlib.sha256(seed).digest())


def digest_hex(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def attestation(owner: Identity, **overrides: Any) -> DatasetAttestation:
    fields: dict[str, Any] = {
        "owner": owner.party_id,
        "title": "TEE development logs",
        "description": "Work logs about dstack, attestation and reproducible builds.",
        "keywords": (Keyword(term="attestation", count=42), Keyword(term="kms", count=None)),
        "topics": ("tee", "dstack"),
        "schema": (),
        "row_count": 3,
        "time_range": TimeRange(start=T0 - 86_400, end=T0),
        "profile": {
            "projects": 2,
            "active_days": 1,
            "primary_focus": "remote attestation",
            "expertise": ("remote attestation", "reproducible builds"),
        },
        "commitment": CommitmentRef(
            format="arrow-ipc-stream/v1",
            root=b64encode(hashlib.sha256(b"root").digest()),
            length=1234,
            rows=3,
            chunk_size=1 << 20,
        ),
        "policy": None,
        "created_at": T0,
    }
    fields.update(overrides)
    return DatasetAttestation.model_validate(fields)


def request(requester: Identity, inputs: tuple[str, ...], **overrides: Any) -> ComputationRequest:
    fields: dict[str, Any] = {
        "requester": requester.party_id,
        "computation": ComputationRef(id="row-count", version="1.0.0", code_digest=digest_hex("c")),
        "parameters": {"k": 5},
        "inputs": inputs,
        "recipients": (requester.party_id,),
        "nonce": b64encode(b"\x01" * 16),
        "created_at": T0,
        "expires_at": T0 + 3600,
    }
    fields.update(overrides)
    return ComputationRequest.model_validate(fields)


def approval(approver: Identity, request_digest: str, dataset: str, **overrides: Any) -> Approval:
    fields: dict[str, Any] = {
        "request": request_digest,
        "dataset": dataset,
        "approver": approver.party_id,
        "decision": "approve",
        "mode": "manual",
        "policy": None,
        "reason": "looks fine",
        "conditions": (),
        "created_at": T0 + 60,
    }
    fields.update(overrides)
    return Approval.model_validate(fields)


# An exact request without isolating parameters or partners: how a policy test asks about a
# computation that is not requester-parametrised.
def exact_request(**params: Any) -> RequestShape:
    return RequestShape(dp=False, params=params, partners=frozenset())
