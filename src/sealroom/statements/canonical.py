"""Canonical JSON (RFC 8785) and the strict parser every statement goes through.

Statements carry no floating-point numbers: exact quantities (privacy budgets,
amounts) are decimal strings and everything else is an integer within the
I-JSON safe range, so a digest computed on one machine is the digest on every
other. The parser rejects what RFC 8785 would silently normalise away
(duplicate keys, non-finite numbers, floats, lone surrogates) so two byte
strings that parse equal really are the same statement.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from sealroom.crypto.keys import b64decode_strict
from sealroom.errors import InvalidInput, StatementFormatError

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "b64_field",
    "canonical_json",
    "dict_without_duplicates",
    "exact_keys",
    "parse_json_strict",
    "safe_int",
]

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of ``value``; rejects floats and unsafe integers."""
    _check_value(value, depth=0, path="$")
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise StatementFormatError(f"cannot canonicalise: {exc}") from exc


def parse_json_strict(data: bytes, *, max_size: int, what: str) -> Any:
    """Parse UTF-8 JSON by the rules above; errors name ``what``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise StatementFormatError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise StatementFormatError(f"{what}: {len(data)} bytes exceeds the limit of {max_size}")
    try:
        text = bytes(data).decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise StatementFormatError(f"{what}: not valid UTF-8 ({exc.reason})") from exc
    if text.startswith("\ufeff"):
        raise StatementFormatError(f"{what}: a byte-order mark is not allowed")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_int=safe_int,
            parse_constant=_no_constant,
        )
    except StatementFormatError as exc:
        raise StatementFormatError(f"{what}: {exc.detail}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise StatementFormatError(f"{what}: not valid JSON ({exc})") from exc
    try:
        _check_value(value, depth=0, path="$")
    except StatementFormatError as exc:
        raise StatementFormatError(f"{what}: {exc.detail}") from None
    return value


def dict_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` object hook that refuses a repeated key (``ValueError`` naming it)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    try:
        return dict_without_duplicates(pairs)
    except ValueError as exc:
        raise StatementFormatError(str(exc)) from None


MAX_INT_DIGITS = len(str(MAX_SAFE_INT))


def safe_int(text: str) -> int:
    """A ``json.loads`` ``parse_int`` hook: refuses an integer literal longer than any safe
    integer before converting it (a 5,000-digit literal would otherwise trip Python's
    int-digit limit as a bare ``ValueError``, or cost quadratic time below it)."""
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise StatementFormatError(
            f"an integer of {digits} digits is outside the safe range (at most {MAX_SAFE_INT})"
        )
    return int(text)


def _no_float(text: str) -> Any:
    raise StatementFormatError(f"number {text} is not an integer (use a decimal string)")


def _no_constant(text: str) -> Any:
    raise StatementFormatError(f"{text} is not valid JSON")


def _check_value(value: Any, *, depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise StatementFormatError(f"nesting deeper than {MAX_DEPTH} at {path}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise StatementFormatError(f"integer at {path} is outside the safe range")
        return
    if isinstance(value, float):
        raise StatementFormatError(f"float at {path}: use an integer or a decimal string")
    if isinstance(value, str):
        _check_text(value, path)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, depth=depth + 1, path=f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise StatementFormatError(f"non-string key at {path}")
            _check_text(key, path)
            _check_value(item, depth=depth + 1, path=f"{path}.{key}")
        return
    raise StatementFormatError(f"unsupported JSON type {type(value).__name__} at {path}")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8", errors="strict")
    except UnicodeEncodeError as exc:
        raise StatementFormatError(f"string at {path} is not valid Unicode") from exc


def exact_keys(data: Any, expected: set[str], what: str) -> dict[str, Any]:
    """``data`` as an object with exactly the ``expected`` fields, or a format error naming the rest."""
    if not isinstance(data, dict):
        raise StatementFormatError(f"{what} must be a JSON object")
    keys = set(data)
    if keys != expected:
        detail = []
        if missing := sorted(expected - keys):
            detail.append(f"missing {missing}")
        if unknown := sorted(keys - expected):
            detail.append(f"unknown {unknown}")
        raise StatementFormatError(f"{what}: " + ", ".join(detail))
    return data


def b64_field(value: Any, what: str, size: int | None = None) -> bytes:
    """Canonical base64 in a document, reported as a format error of that document."""
    try:
        return b64decode_strict(value, what=what, size=size)
    except InvalidInput as exc:
        raise StatementFormatError(exc.detail) from None
