"""Signed envelopes: Ed25519 over a domain-separated pre-authentication encoding.

The signature covers ``PAE(type, version, payload)``::

    "sealroom-statement-v1" SP LEN(type) SP type SP version SP LEN(payload) SP payload

(lengths and version in ASCII decimal, as in DSSE), so a signature over one
statement type or version can never be replayed as another, and the payload
boundary is unambiguous. A statement's **digest** is ``sha256:`` + hex of
SHA-256 over the same PAE: it names type, version and content, but not the
signature, so re-signing cannot change what others refer to.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sealroom.crypto.keys import (
    KEM_PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    PublicIdentity,
    b64encode,
)
from sealroom.errors import InvalidInput, SignatureInvalid, StatementFormatError
from sealroom.statements.canonical import (
    b64_field,
    canonical_json,
    exact_keys,
    parse_json_strict,
)
from sealroom.statements.fields import Digest

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "Envelope",
    "Signed",
    "Statement",
    "digest_of",
    "pae",
    "sign_statement",
    "signer_keys",
]

_PAE_DOMAIN = b"sealroom-statement-v1"
MAX_ENVELOPE_SIZE = 16 << 20

S = TypeVar("S", bound="Statement")


def signer_keys(public: PublicIdentity) -> dict[str, str]:
    """A party's public keys as documents carry them; ``kem_key`` only for a post-quantum identity.

    Omitting it (rather than writing null) keeps every envelope of a legacy
    identity byte for byte what it was, so their digests do not change.
    """
    keys = {
        "signing_key": b64encode(public.signing_key),
        "sealing_key": b64encode(public.sealing_key),
    }
    if public.kem_key is not None:
        keys["kem_key"] = b64encode(public.kem_key)
    return keys


def pae(statement_type: str, version: int, payload: bytes) -> bytes:
    t = statement_type.encode("utf-8")
    return b" ".join(
        [
            _PAE_DOMAIN,
            str(len(t)).encode(),
            t,
            str(version).encode(),
            str(len(payload)).encode(),
            payload,
        ]
    )


def digest_of(statement_type: str, version: int, payload: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(pae(statement_type, version, payload)).hexdigest())


class Statement(BaseModel):
    """Base of every signed statement: strict, frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int]
    MAX_PAYLOAD: ClassVar[int] = 256 << 10

    def payload(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def digest(self) -> Digest:
        return digest_of(self.TYPE, self.VERSION, self.payload())

    def check_signer(self, signer: PublicIdentity) -> None:
        """Raise :class:`SignatureInvalid` unless ``signer`` may sign this statement.

        Each statement type names who signs it (owner, requester, enclave, ...).
        """
        raise NotImplementedError

    @classmethod
    def build(cls: type[S], **fields: Any) -> S:
        """This statement from fields a user supplied: a field the model refuses is a
        :class:`StatementFormatError` naming it (never a bare validation error)."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise StatementFormatError(f"{cls.TYPE} v{cls.VERSION}: {_describe(exc)}") from None

    @classmethod
    def parse_payload(cls: type[S], payload: bytes) -> S:
        """Strictly parse canonical payload bytes into this statement type."""
        what = f"{cls.TYPE} v{cls.VERSION}"
        value = parse_json_strict(payload, max_size=cls.MAX_PAYLOAD, what=what)
        if not isinstance(value, dict):
            raise StatementFormatError(f"{what}: payload must be a JSON object")
        try:
            model = cls.model_validate_json(payload, strict=True)
        except ValidationError as exc:
            raise StatementFormatError(f"{what}: {_describe(exc)}") from None
        if model.payload() != bytes(payload):
            raise StatementFormatError(f"{what}: payload is not in canonical (RFC 8785) form")
        return model


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A statement's canonical payload with its signer and signature, as stored and sent."""

    type: str
    version: int
    payload: bytes
    signer: PublicIdentity
    signature: bytes

    @property
    def digest(self) -> Digest:
        return digest_of(self.type, self.version, self.payload)

    def verify_signature(self) -> None:
        self.signer.verify(
            self.signature,
            pae(self.type, self.version, self.payload),
            what=f"{self.type} signature",
        )

    def open(self, cls: builtins.type[S]) -> Signed[S]:
        """Verify signature, type, version, payload and signer; return the typed statement."""
        if self.type != cls.TYPE:
            raise StatementFormatError(f"expected a {cls.TYPE} statement, got {self.type}")
        if self.version != cls.VERSION:
            raise StatementFormatError(
                f"unknown version {self.version} of {self.type} (supported: {cls.VERSION})"
            )
        self.verify_signature()
        statement = cls.parse_payload(self.payload)
        statement.check_signer(self.signer)
        return Signed(statement=statement, envelope=self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "version": self.version,
            "payload": b64encode(self.payload),
            "signer": signer_keys(self.signer),
            "signature": b64encode(self.signature),
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        data = exact_keys(data, {"type", "version", "payload", "signer", "signature"}, "envelope")
        kind, version = data["type"], data["version"]
        if not isinstance(kind, str) or not 0 < len(kind) <= 100:
            raise StatementFormatError("envelope.type must be a string of 1-100 characters")
        if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 1000:
            raise StatementFormatError("envelope.version must be an integer in 1..999")
        raw_signer = data["signer"]
        fields = {"signing_key", "sealing_key"}
        if isinstance(raw_signer, dict) and "kem_key" in raw_signer:
            fields.add("kem_key")
        signer = exact_keys(raw_signer, fields, "envelope.signer")
        try:
            public = PublicIdentity(
                signing_key=b64_field(signer["signing_key"], "signer.signing_key"),
                sealing_key=b64_field(signer["sealing_key"], "signer.sealing_key"),
                kem_key=(
                    b64_field(signer["kem_key"], "signer.kem_key", KEM_PUBLIC_KEY_SIZE)
                    if "kem_key" in signer
                    else None
                ),
            )
        except StatementFormatError:
            raise
        except InvalidInput as exc:
            raise StatementFormatError(exc.detail) from None
        payload = b64_field(data["payload"], "envelope.payload")
        signature = b64_field(data["signature"], "envelope.signature", SIGNATURE_SIZE)
        return cls(type=kind, version=version, payload=payload, signer=public, signature=signature)

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        value = parse_json_strict(data, max_size=MAX_ENVELOPE_SIZE, what="envelope")
        envelope = cls.from_dict(value)
        if envelope.to_json() != bytes(data):
            raise StatementFormatError("envelope is not in canonical (RFC 8785) form")
        return envelope


@dataclass(frozen=True, slots=True)
class Signed(Generic[S]):
    """A statement whose envelope has been verified. Only :meth:`Envelope.open` makes one."""

    statement: S
    envelope: Envelope

    @property
    def digest(self) -> Digest:
        return self.envelope.digest


def sign_statement(statement: S, identity: Identity) -> Signed[S]:
    statement.check_signer(identity.public)
    payload = statement.payload()
    if len(payload) > statement.MAX_PAYLOAD:
        raise InvalidInput(f"{statement.TYPE} payload exceeds {statement.MAX_PAYLOAD} bytes")
    envelope = Envelope(
        type=statement.TYPE,
        version=statement.VERSION,
        payload=payload,
        signer=identity.public,
        signature=identity.sign(pae(statement.TYPE, statement.VERSION, payload)),
    )
    return Signed(statement=statement, envelope=envelope)


def require_signer(expected_party: str, signer: PublicIdentity, *, role: str) -> None:
    if signer.party_id != expected_party:
        raise SignatureInvalid(
            f"signed by {signer.party_id}, "
            f"but the {role} named in the statement is {expected_party}"
        )
