"""Proof bundles: a receipt with everything needed to verify it offline, years later.

A bundle holds the receipt, the enclave's evidence (quote, collateral, event
log), every statement the receipt refers to, and a transparency-log inclusion
proof for each of them against one signed checkpoint. Optionally it carries
released outputs (salt + body), so a recipient can show an auditor what it got.
The bundle itself is not signed: every part inside it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sealroom.crypto.keys import b64encode
from sealroom.errors import StatementFormatError
from sealroom.statements import Digest, Envelope, canonical_json, parse_json_strict
from sealroom.statements.canonical import b64_field, exact_keys
from sealroom.statements.fields import DIGEST_PATTERN
from sealroom.statements.output import ReleasedOutput

__all__ = ["BUNDLE_TYPE", "LogEntryProof", "LogProof", "ProofBundle"]

BUNDLE_TYPE = "sealroom.proof-bundle"
BUNDLE_VERSION = 1
MAX_BUNDLE_SIZE = 64 << 20
MAX_STATEMENTS = 256
MAX_PROOF_LENGTH = 64

_DIGEST_RE = re.compile(DIGEST_PATTERN)


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StatementFormatError(f"{what} must be a non-negative integer")
    return value


def _str(value: Any, what: str, *, max_len: int) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise StatementFormatError(f"{what} must be a string of at most {max_len} characters")
    return value


def _digest(value: Any, what: str) -> Digest:
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise StatementFormatError(f"{what} must be a statement digest (sha256:<hex>)")
    return Digest(value)


def _list(value: Any, what: str, max_len: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > max_len:
        raise StatementFormatError(f"{what} must be a list of at most {max_len} items")
    return value


@dataclass(frozen=True, slots=True)
class LogEntryProof:
    """Inclusion of one statement (by digest) at ``index`` in the checkpointed tree."""

    digest: Digest
    index: int
    proof: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "index": self.index,
            "proof": [b64encode(h) for h in self.proof],
        }

    @classmethod
    def from_dict(cls, data: Any) -> LogEntryProof:
        d = exact_keys(data, {"digest", "index", "proof"}, "log entry")
        proof = _list(d["proof"], "log entry proof", MAX_PROOF_LENGTH)
        return cls(
            digest=_digest(d["digest"], "log entry digest"),
            index=_int(d["index"], "log entry index"),
            proof=tuple(b64_field(h, "log entry proof hash", 32) for h in proof),
        )


@dataclass(frozen=True, slots=True)
class LogProof:
    """A signed checkpoint (C2SP note), the log key that signed it, and inclusion proofs."""

    verifier_key: str
    checkpoint: str
    entries: tuple[LogEntryProof, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verifier_key": self.verifier_key,
            "checkpoint": self.checkpoint,
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, data: Any) -> LogProof:
        d = exact_keys(data, {"verifier_key", "checkpoint", "entries"}, "log")
        entries = _list(d["entries"], "log entries", MAX_STATEMENTS)
        return cls(
            verifier_key=_str(d["verifier_key"], "log verifier_key", max_len=1024),
            checkpoint=_str(d["checkpoint"], "log checkpoint", max_len=64 << 10),
            entries=tuple(LogEntryProof.from_dict(e) for e in entries),
        )

    def entry_for(self, digest: str) -> LogEntryProof | None:
        return next((e for e in self.entries if e.digest == digest), None)


@dataclass(frozen=True, slots=True)
class ProofBundle:
    receipt: Envelope
    evidence: Envelope
    statements: tuple[Envelope, ...]
    log: LogProof
    outputs: tuple[ReleasedOutput, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": BUNDLE_TYPE,
            "version": BUNDLE_VERSION,
            "receipt": self.receipt.to_dict(),
            "evidence": self.evidence.to_dict(),
            "statements": [s.to_dict() for s in self.statements],
            "log": self.log.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes) -> ProofBundle:
        value = parse_json_strict(data, max_size=MAX_BUNDLE_SIZE, what="proof bundle")
        d = exact_keys(
            value,
            {
                "type",
                "version",
                "receipt",
                "evidence",
                "statements",
                "log",
                "outputs",
            },
            "proof bundle",
        )
        if d["type"] != BUNDLE_TYPE:
            raise StatementFormatError(f"not a proof bundle (type {d['type']!r})")
        if d["version"] != BUNDLE_VERSION:
            raise StatementFormatError(
                f"unknown proof bundle version {d['version']!r} (supported: {BUNDLE_VERSION})"
            )
        statements = _list(d["statements"], "statements", MAX_STATEMENTS)
        outputs = _list(d["outputs"], "outputs", 64)
        bundle = cls(
            receipt=Envelope.from_dict(d["receipt"]),
            evidence=Envelope.from_dict(d["evidence"]),
            statements=tuple(Envelope.from_dict(s) for s in statements),
            log=LogProof.from_dict(d["log"]),
            outputs=tuple(ReleasedOutput.from_dict(o) for o in outputs),
        )
        if bundle.to_json() != bytes(data):
            raise StatementFormatError("proof bundle is not in canonical (RFC 8785) form")
        return bundle

    def statement(self, digest: str) -> Envelope | None:
        return next((s for s in self.statements if s.digest == digest), None)
