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
from sealroom.transparency.entries import SALT_SIZE

__all__ = ["BUNDLE_TYPE", "ConsistencyProof", "LogEntryProof", "LogProof", "ProofBundle"]

BUNDLE_TYPE = "sealroom.proof-bundle"
BUNDLE_VERSION = 1
MAX_BUNDLE_SIZE = 64 << 20
MAX_STATEMENTS = 256
MAX_PROOF_LENGTH = 64
MAX_CONSISTENCY_PROOFS = 16

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
    """Inclusion of one statement (by digest) at ``index`` in the checkpointed tree.

    ``salt`` opens the leaf of a private statement, which holds a salted commitment to the
    statement rather than the statement (:mod:`sealroom.transparency.entries`). It is written
    only when present, so proofs of statements logged in clear keep their bytes.
    """

    digest: Digest
    index: int
    proof: tuple[bytes, ...]
    salt: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "index": self.index,
            "proof": [b64encode(h) for h in self.proof],
        }
        if self.salt is not None:
            out["salt"] = b64encode(self.salt)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> LogEntryProof:
        fields = {"digest", "index", "proof"}
        if isinstance(data, dict) and "salt" in data:
            fields.add("salt")
        d = exact_keys(data, fields, "log entry")
        proof = _list(d["proof"], "log entry proof", MAX_PROOF_LENGTH)
        return cls(
            digest=_digest(d["digest"], "log entry digest"),
            index=_int(d["index"], "log entry index"),
            proof=tuple(b64_field(h, "log entry proof hash", 32) for h in proof),
            salt=b64_field(d["salt"], "log entry salt", SALT_SIZE) if "salt" in d else None,
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """A consistency proof between the bundle's checkpoint and another tree ``size`` of the
    same log (from the smaller size to the larger), so an offline verifier who trusts a
    checkpoint of that size can relate the two."""

    size: int
    proof: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "proof": [b64encode(h) for h in self.proof]}

    @classmethod
    def from_dict(cls, data: Any) -> ConsistencyProof:
        d = exact_keys(data, {"size", "proof"}, "consistency proof")
        proof = _list(d["proof"], "consistency proof", MAX_PROOF_LENGTH)
        return cls(
            size=_int(d["size"], "consistency proof size"),
            proof=tuple(b64_field(h, "consistency proof hash", 32) for h in proof),
        )


@dataclass(frozen=True, slots=True)
class LogProof:
    """A signed checkpoint (C2SP note, with any witness cosignatures), the log key that signed
    it, inclusion proofs, and optional consistency proofs to other sizes of the log.

    ``consistency`` is written only when present, so bundles without it keep the bytes
    (and digests) of bundles made before it existed.
    """

    verifier_key: str
    checkpoint: str
    entries: tuple[LogEntryProof, ...]
    consistency: tuple[ConsistencyProof, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verifier_key": self.verifier_key,
            "checkpoint": self.checkpoint,
            "entries": [e.to_dict() for e in self.entries],
        }
        if self.consistency:
            out["consistency"] = [c.to_dict() for c in self.consistency]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> LogProof:
        fields = {"verifier_key", "checkpoint", "entries"}
        if isinstance(data, dict) and "consistency" in data:
            fields.add("consistency")
        d = exact_keys(data, fields, "log")
        entries = _list(d["entries"], "log entries", MAX_STATEMENTS)
        proofs = _list(d.get("consistency", []), "log consistency", MAX_CONSISTENCY_PROOFS)
        log = cls(
            verifier_key=_str(d["verifier_key"], "log verifier_key", max_len=1024),
            checkpoint=_str(d["checkpoint"], "log checkpoint", max_len=64 << 10),
            entries=tuple(LogEntryProof.from_dict(e) for e in entries),
            consistency=tuple(ConsistencyProof.from_dict(c) for c in proofs),
        )
        if len({c.size for c in log.consistency}) != len(log.consistency):
            raise StatementFormatError("log consistency: two proofs for the same size")
        return log

    def consistency_to(self, size: int) -> ConsistencyProof | None:
        return next((c for c in self.consistency if c.size == size), None)

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
