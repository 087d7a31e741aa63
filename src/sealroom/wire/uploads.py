"""Chunked, resumable uploads of sealed inputs (issue 13).

An owner seals its input once, to a spool file, and cuts the sealed stream into parts of
``part_size`` bytes; it declares every part's SHA-256 when it starts the upload, so the
coordinator refuses a wrong, reordered or foreign part at once, and the upload resumes
after a crash from what the coordinator reports it holds.
"""

from __future__ import annotations

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, PartyIdStr

__all__ = [
    "DEFAULT_PART_SIZE",
    "MAX_LEAF_INDEX",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_SEALED_INPUT",
    "MIN_PART_SIZE",
    "StartUploadBody",
    "UploadView",
]

MIN_PART_SIZE = 1 << 16
MAX_PART_SIZE = 16 << 20
"""The largest part (sealed bytes): one request body, one database row."""
DEFAULT_PART_SIZE = 8 << 20
MAX_SEALED_INPUT = 8 << 30
"""The largest sealed input a coordinator takes (8 GiB): the client checks it before sealing."""
MAX_PARTS = 4096
MAX_LEAF_INDEX = 512 << 10
"""The largest sealed leaf index (32 bytes per committed chunk; 8 GiB at 1 MiB chunks)."""


class StartUploadBody(WireModel):
    """Signed by the input's owner: the upload's shape, fixed before any part is sent."""

    enclave: DigestStr = Field(description="Digest of the enclave evidence the input is sealed to.")
    size: int = Field(ge=1, le=MAX_SEALED_INPUT, description="Total sealed bytes.")
    part_size: int = Field(
        ge=MIN_PART_SIZE,
        le=MAX_PART_SIZE,
        description="Bytes per part; every part but the last has exactly this many.",
    )
    parts: tuple[DigestStr, ...] = Field(
        min_length=1, max_length=MAX_PARTS, description="SHA-256 of each part, in order."
    )
    leaves: B64Field = Field(
        description="The dataset commitment's leaf hashes, sealed to the enclave "
        "(purpose input-leaves): the enclave checks each chunk before parsing it."
    )


class UploadView(WireModel):
    upload: DigestStr = Field(description="The upload id: a digest of its shape.")
    request: DigestStr
    dataset: DigestStr
    owner: PartyIdStr
    enclave: DigestStr
    size: int
    part_size: int
    parts: int
    received: tuple[int, ...] = Field(description="Indexes of the parts the coordinator holds.")
    complete: bool
