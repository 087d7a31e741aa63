"""Deletions: the enclave's signed Deletion statements and the coordinator's erasure records."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField

__all__ = [
    "DeletionBody",
    "DeletionRecorded",
    "DeletionsView",
    "ErasureView",
    "LoggedStatement",
]


class DeletionBody(WireModel):
    """Signed by the enclave that ran the job."""

    deletion: EnvelopeField = Field(description="A Deletion envelope, signed by the enclave.")


class DeletionRecorded(WireModel):
    deletion: DigestStr
    request: DigestStr
    log_index: int


class ErasureView(WireModel):
    """One sealed blob the coordinator says it erased (its account, not a proof)."""

    kind: Literal["sealed-input", "sealed-result"]
    subject: str = Field(description="The dataset (sealed input) or recipient (sealed result).")
    sealed: DigestStr = Field(description="sha256 of the erased ciphertext.")
    size: int
    erased_at: int
    reason: str


class LoggedStatement(WireModel):
    """A statement with its log leaf, the salt of its commitment and its inclusion proof."""

    envelope: EnvelopeField
    log_index: int
    salt: B64Field | None = Field(
        default=None,
        description="The salt of the statement's log commitment (null if logged in clear).",
    )
    inclusion: tuple[B64Field, ...] = Field(
        description="The statement's inclusion proof in the view's checkpoint."
    )


class DeletionsView(WireModel):
    """A request's deletion record as of one signed checkpoint: the enclave's signed
    Deletions (with proofs) and the coordinator's erasures of sealed blobs."""

    request: DigestStr
    checkpoint: str = Field(description="The C2SP signed checkpoint the proofs are against.")
    deletions: tuple[LoggedStatement, ...]
    erasures: tuple[ErasureView, ...]
