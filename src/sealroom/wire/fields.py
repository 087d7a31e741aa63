"""Field types of the HTTP API's models: envelopes, base64, names and reasons, with their limits.

Each type states in its JSON Schema exactly what the server accepts, so the
published OpenAPI document is the contract and not a sketch of it.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints
from typing_extensions import TypedDict

from sealroom.crypto.keys import b64decode_strict, b64encode
from sealroom.errors import SealroomError
from sealroom.statements import Envelope
from sealroom.statements.fields import DIGEST_PATTERN, PARTY_ID_PATTERN

__all__ = [
    "B64_PATTERN",
    "B64Field",
    "DigestStr",
    "EnvelopeField",
    "Identifier",
    "KemKey",
    "Key32",
    "Name",
    "PartyIdStr",
    "Reason",
    "SignedEnvelope",
]

B64_PATTERN = (
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
)
"""Canonical standard base64 with padding (what :func:`b64decode_strict` accepts)."""

B64Str = Annotated[str, StringConstraints(pattern=B64_PATTERN)]
Key32 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]
"""A 32-byte public key in canonical base64."""
KemKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{1621}[AQgw]==$")]
"""A 1216-byte X-Wing (ML-KEM-768 + X25519) public key in canonical base64."""
Signature64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{85}[AQgw]==$")]
"""A 64-byte Ed25519 signature in canonical base64."""

DigestStr = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]
PartyIdStr = Annotated[str, StringConstraints(pattern=PARTY_ID_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
"""A display name: 1..200 characters, not only whitespace (stored stripped)."""
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")]
"""A free-text reason: 1..2000 characters, not only whitespace (stored stripped)."""


class SignerKeys(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    signing_key: Key32
    sealing_key: Key32
    kem_key: NotRequired[KemKey]


class SignedEnvelope(TypedDict):
    """A signed statement as it travels: ``Envelope.to_dict()`` (docs/http-api.md)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    version: Annotated[int, Field(ge=1, le=999)]
    payload: Annotated[B64Str, Field(description="The statement's canonical JSON (RFC 8785).")]
    signer: SignerKeys
    signature: Annotated[Signature64, Field(description="Ed25519 over the PAE encoding.")]


def _envelope(value: Any) -> Envelope:
    # Statement format errors propagate as themselves (a 400 ``statement_format`` on the server,
    # a ProtocolError in the SDK); only the shape pydantic can name is a ValueError.
    if isinstance(value, Envelope):
        return value
    if not isinstance(value, dict):
        raise ValueError("must be an envelope object")
    return Envelope.from_dict(value)


def _b64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return b64decode_strict(value, what="base64 field")
    except SealroomError as exc:
        raise ValueError(exc.detail or exc.public_message) from None


EnvelopeField = Annotated[
    Envelope,
    BeforeValidator(_envelope, json_schema_input_type=SignedEnvelope),
    PlainSerializer(lambda e: e.to_dict(), return_type=SignedEnvelope),
]
"""An :class:`Envelope`, parsed for shape only: flows and services re-open it before acting."""

B64Field = Annotated[
    bytes,
    BeforeValidator(_b64, json_schema_input_type=B64Str),
    PlainSerializer(b64encode, return_type=B64Str),
]
"""Bytes that travel as canonical base64."""
