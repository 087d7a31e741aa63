"""A released output as its recipient holds it: the body and the salt of its commitment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sealroom.crypto.keys import PartyId, b64decode_strict, b64encode
from sealroom.errors import InvalidInput, StatementFormatError
from sealroom.statements.canonical import canonical_json, parse_json_strict
from sealroom.statements.fields import DIGEST_PATTERN, PARTY_ID_PATTERN, Digest
from sealroom.statements.models import OUTPUT_SALT_SIZE, output_commitment

__all__ = ["OUTPUT_TYPE", "ReleasedOutput"]

OUTPUT_TYPE = "sealroom.released-output"
MAX_OUTPUT_SIZE = 64 << 20


def _field(d: dict[str, Any], name: str, pattern: str) -> str:
    value = d[name]
    if not isinstance(value, str) or not re.match(pattern, value):
        raise StatementFormatError(f"output.{name} is malformed")
    return value


def _b64(value: Any, what: str, size: int | None = None) -> bytes:
    try:
        return b64decode_strict(value, what=what, size=size)
    except InvalidInput as exc:
        raise StatementFormatError(exc.detail) from None


@dataclass(frozen=True, slots=True)
class ReleasedOutput:
    """A recipient's opened result: the body and the salt of the receipt's commitment to it."""

    request: Digest
    recipient: PartyId
    salt: bytes
    body: bytes

    def commitment(self) -> str:
        return output_commitment(self.salt, self.body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": OUTPUT_TYPE,
            "version": 1,
            "request": self.request,
            "recipient": self.recipient,
            "salt": b64encode(self.salt),
            "body": b64encode(self.body),
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> ReleasedOutput:
        expected = {"type", "version", "request", "recipient", "salt", "body"}
        if not isinstance(data, dict) or set(data) != expected:
            raise StatementFormatError(f"output must be an object with fields {sorted(expected)}")
        if data["type"] != OUTPUT_TYPE or data["version"] != 1:
            raise StatementFormatError(f"not a {OUTPUT_TYPE} v1 document")
        return cls(
            request=Digest(_field(data, "request", DIGEST_PATTERN)),
            recipient=PartyId(_field(data, "recipient", PARTY_ID_PATTERN)),
            salt=_b64(data["salt"], "output.salt", OUTPUT_SALT_SIZE),
            body=_b64(data["body"], "output.body"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ReleasedOutput:
        value = parse_json_strict(data, max_size=MAX_OUTPUT_SIZE, what="output")
        output = cls.from_dict(value)
        if output.to_json() != bytes(data):
            raise StatementFormatError("output is not in canonical (RFC 8785) form")
        return output


