"""Bounded field types for statements: every string, list and number has a limit."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Annotated, Any, NewType, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, ValidationError

from sealroom.crypto.keys import PARTY_ID_PREFIX, b64decode_strict
from sealroom.errors import InvalidInput
from sealroom.statements.canonical import canonical_json

__all__ = [
    "B64Bytes",
    "B64Hash",
    "B64KemKey",
    "B64Key",
    "B64Nonce",
    "BoundedObject",
    "DecimalStr",
    "Digest",
    "DigestStr",
    "Identifier",
    "LongText",
    "NonNegInt",
    "PartyIdStr",
    "ShortText",
    "SignedDecimalStr",
    "UnixTime",
    "canonical_decimal",
    "decimal_text",
    "parse_object",
]

Digest = NewType("Digest", str)
"""``sha256:<64 lowercase hex>``: the digest of a signed statement (see :mod:`.envelope`)."""

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
DigestStr = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]
PARTY_ID_PATTERN = rf"^{PARTY_ID_PREFIX}[a-z2-7]{{52}}$"
PartyIdStr = Annotated[str, StringConstraints(pattern=PARTY_ID_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
NonNegInt = Annotated[int, Field(ge=0, le=2**53 - 1)]
UnixTime = Annotated[int, Field(ge=0, le=253402300799)]  # up to 9999-12-31

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$")


def _check_decimal(text: str) -> str:
    """Non-negative decimal without exponent, sign, leading zeros or trailing fraction zeros."""
    if not _DECIMAL_RE.match(text) or (("." in text) and text.endswith("0")):
        raise ValueError("must be a canonical non-negative decimal string like '0.5'")
    try:
        Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError("not a decimal") from exc
    return text


_SIGNED_DECIMAL_RE = re.compile(r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$")


def _check_signed_decimal(text: str) -> str:
    """A decimal as :func:`_check_decimal`, optionally negative (never "-0")."""
    if not _SIGNED_DECIMAL_RE.match(text) or (("." in text) and text.endswith("0")):
        raise ValueError("must be a canonical decimal string like '-0.5'")
    if text.startswith("-") and Decimal(text) == 0:
        raise ValueError("zero has no sign")
    return text


def canonical_decimal(value: Decimal) -> str:
    """``value`` exactly, in the one form sealroom writes decimals: "-0.5", "2", "0".

    No exponent, no trailing fraction zeros, no "-0". Rounding is the caller's
    (each output states its own precision); this only spells the result.
    """
    if not value.is_finite():
        raise InvalidInput(f"{value} is not a finite number")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def decimal_text(value: float, *, places: int = 18) -> str:
    """A finite float as a canonical signed decimal string, rounded to ``places`` digits."""
    if not math.isfinite(value):
        raise InvalidInput(f"{value!r} is not a finite number")
    with localcontext() as ctx:
        ctx.prec = 60
        text = canonical_decimal(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places)))
    try:
        return _check_signed_decimal(text)
    except ValueError:
        raise InvalidInput(f"{value!r} is out of range for a decimal string") from None


def _b64(size: int | None, what: str) -> AfterValidator:
    def check(text: str) -> str:
        try:
            b64decode_strict(text, what=what, size=size)
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None
        return text

    return AfterValidator(check)


def _bounded_object(value: dict[str, Any]) -> dict[str, Any]:
    if len(canonical_json(value)) > MAX_OBJECT_BYTES:
        raise ValueError(f"exceeds {MAX_OBJECT_BYTES >> 10} KiB as canonical JSON")
    return value


MAX_OBJECT_BYTES = 64 << 10
BoundedObject = Annotated[dict[str, Any], AfterValidator(_bounded_object)]
"""A free-form JSON object (policy rules, computation parameters) of bounded size."""

DecimalStr = Annotated[str, AfterValidator(_check_decimal)]
SignedDecimalStr = Annotated[str, AfterValidator(_check_signed_decimal)]
B64Key = Annotated[str, StringConstraints(max_length=44), _b64(32, "key")]
B64KemKey = Annotated[str, StringConstraints(max_length=1624), _b64(1216, "kem key")]
"""An X-Wing (ML-KEM-768 + X25519) public key: 1216 bytes."""
B64Hash = Annotated[str, StringConstraints(max_length=44), _b64(32, "hash")]
B64Nonce = Annotated[str, StringConstraints(max_length=24), _b64(16, "nonce")]
B64Bytes = Annotated[str, StringConstraints(max_length=8 << 20), _b64(None, "bytes")]


M = TypeVar("M", bound=BaseModel)


def parse_object(model: type[M], data: Any, *, what: str) -> M:
    """Validate a JSON object (rules, parameters) as JSON, or raise :class:`InvalidInput`.

    JSON mode, because these objects come from JSON payloads: strict models accept
    arrays for tuples there (Python mode refuses a list). The error names the first
    offending field.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    try:
        raw = canonical_json(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.detail}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidInput(f"{what} {where}: {first['msg']}") from None
