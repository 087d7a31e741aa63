"""A released output as its recipient holds it: the body and the salt of its commitment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sealroom.crypto.keys import PartyId, b64encode
from sealroom.errors import StatementFormatError
from sealroom.statements.canonical import (
    b64_field,
    canonical_json,
    exact_keys,
    parse_json_strict,
)
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
        fields = {"type", "version", "request", "recipient", "salt", "body"}
        data = exact_keys(data, fields, "output")
        if data["type"] != OUTPUT_TYPE or data["version"] != 1:
            raise StatementFormatError(f"not a {OUTPUT_TYPE} v1 document")
        return cls(
            request=Digest(_field(data, "request", DIGEST_PATTERN)),
            recipient=PartyId(_field(data, "recipient", PARTY_ID_PATTERN)),
            salt=b64_field(data["salt"], "output.salt", OUTPUT_SALT_SIZE),
            body=b64_field(data["body"], "output.body"),
        )

    @classmethod
    def from_json(cls, data: bytes) -> ReleasedOutput:
        value = parse_json_strict(data, max_size=MAX_OUTPUT_SIZE, what="output")
        output = cls.from_dict(value)
        if output.to_json() != bytes(data):
            raise StatementFormatError("output is not in canonical (RFC 8785) form")
        return output
