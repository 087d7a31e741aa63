"""The base of every wire model, and the two ways bytes become one.

Models are exact: the server builds them and FastAPI serialises them, and
their schema forbids unknown fields, so ``/openapi.json`` says precisely what
is sent. Parsing differs by side. A request body is parsed strictly with
unknown fields refused (:func:`parse_body`, a 400 with the field named); a
response is parsed strictly but ignores unknown fields (:func:`parse_response`),
so a newer server can add fields without breaking older clients, and anything
else is a :class:`ProtocolError` at the boundary.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from sealroom.errors import InvalidInput, ProtocolError, SealroomError
from sealroom.statements.canonical import parse_json_strict
from sealroom.wire.fields import Reason

__all__ = ["MAX_JSON_BODY", "ReasonBody", "WireModel", "parse_body", "parse_response"]

MAX_JSON_BODY = 1 << 20
"""The largest JSON request body (1 MiB)."""


class WireModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (envelopes as objects, bytes as base64), for ``--json`` output."""
        return self.model_dump(mode="json", by_alias=True)


M = TypeVar("M", bound=WireModel)


class ReasonBody(WireModel):
    """Body of the withdrawals and of a job's failure."""

    reason: Reason


def _where(err: ErrorDetails) -> str:
    return ".".join(str(p) for p in err["loc"]) or "(root)"


def _describe(exc: ValidationError, what: str) -> str:
    errors = exc.errors()
    top = [e for e in errors if len(e["loc"]) == 1]
    unknown = sorted(str(e["loc"][0]) for e in top if e["type"] == "extra_forbidden")
    if unknown:
        return f"{what}: unknown field(s) {unknown}"
    missing = sorted(str(e["loc"][0]) for e in top if e["type"] == "missing")
    if missing:
        return f"{what}: missing field(s) {missing}"
    first = errors[0]
    return f"{what}: {_where(first)}: {first['msg']}"


def parse_body(cls: type[M], raw: bytes, *, what: str) -> M:
    """A JSON request body as ``cls``, or :class:`InvalidInput` naming the field.

    The bytes pass the same strict JSON rules as statements first (no duplicate
    keys, no floats, bounded depth and size), then the model's own limits.
    """
    if not raw:
        raise InvalidInput("a JSON object body is required")
    value = parse_json_strict(raw, max_size=MAX_JSON_BODY, what="request body")
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object")
    try:
        return cls.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise InvalidInput(_describe(exc, what)) from None


def parse_response(cls: type[M], raw: bytes, *, what: str) -> M:
    """A response body as ``cls`` (unknown fields ignored), or :class:`ProtocolError`."""
    try:
        return cls.model_validate_json(raw, strict=True, extra="ignore")
    except ValidationError as exc:
        parts = [f"{_where(err)}: {err['msg']}" for err in exc.errors()[:3]]
        raise ProtocolError(f"malformed response to {what}: {'; '.join(parts)}") from None
    except SealroomError as exc:
        raise ProtocolError(f"malformed response to {what}: {exc.detail or exc}") from None
