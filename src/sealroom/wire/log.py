"""The transparency log's public views: key, entries, proofs."""

from __future__ import annotations

from pydantic import Field

from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, DigestStr, EnvelopeField

__all__ = ["ConsistencyProofView", "InclusionProofView", "LogEntryView", "LogKey"]


class LogKey(WireModel):
    verifier_key: str
    origin: str


class LogEntryView(WireModel):
    """A leaf as the public may see it: a public statement in clear (``entry``), or for a
    private one only the salted commitment the leaf holds (``commitment``; the parties get the
    statement and salt from the request's views and proof bundles). ``leaf_hash`` is always
    given, so a monitor can check the leaf against the tree."""

    index: int
    leaf_hash: B64Field
    entry: EnvelopeField | None = Field(
        default=None, description="The statement, if it is public (else null)."
    )
    commitment: DigestStr | None = Field(
        default=None,
        description="sha256:<hex>, SHA-256 over a domain tag, a 32-byte salt and the private "
        "statement (null for a public statement).",
    )


class InclusionProofView(WireModel):
    index: int
    size: int
    proof: tuple[B64Field, ...]


class ConsistencyProofView(WireModel):
    first: int
    second: int
    proof: tuple[B64Field, ...]
