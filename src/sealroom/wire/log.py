"""The transparency log's public views: key, entries, proofs."""

from __future__ import annotations

from sealroom.wire.base import WireModel
from sealroom.wire.fields import B64Field, EnvelopeField

__all__ = ["ConsistencyProofView", "InclusionProofView", "LogEntryView", "LogKey"]


class LogKey(WireModel):
    verifier_key: str
    origin: str


class LogEntryView(WireModel):
    index: int
    entry: EnvelopeField


class InclusionProofView(WireModel):
    index: int
    size: int
    proof: tuple[B64Field, ...]


class ConsistencyProofView(WireModel):
    first: int
    second: int
    proof: tuple[B64Field, ...]
