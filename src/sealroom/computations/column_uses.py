"""Which input columns a request names, checked against the attested schemas before any row is read.

A requester learns that a column is missing or of the wrong kind when the request is
made, not after every owner approved and uploaded: the coordinator's pre-check runs
:func:`check_column_uses` on the schemas the owners published (public, so naming them
leaks nothing), and the enclave runs it again on the tables it is given, so both
places refuse with the same words. The kinds are as loose as the computations that
read the columns (``numeric`` admits numeric strings, which the computations parse
per cell), so the early check never refuses what the enclave would accept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sealroom.errors import InvalidInput

__all__ = ["ColumnUse", "Need", "check_column_uses"]

Need = Literal["text", "numeric", "number", "key"]
"""What a column must hold: ``text`` strings; ``numeric`` numbers, booleans or numeric
strings (parsed per cell); ``number`` numbers or booleans only; ``key`` any flat type."""

Where = int | Literal["each", "one"]
"""Which inputs hold the column: input ``i``; ``each`` every input; ``one`` exactly one."""

_TEXT = frozenset({"string", "large_string", "utf8", "large_utf8", "string_view"})
_NUMBER = re.compile(
    r"^(u?int(8|16|32|64)|half_float|float|double|float(16|32|64)|bool|decimal(32|64|128|256)?\(.*\))$"
)
_NESTED = re.compile(
    r"^(list|large_list|list_view|large_list_view|fixed_size_list|struct|map|dense_union|sparse_union)\b"
)

_ALLOWED: dict[Need, str] = {
    "text": "string",
    "numeric": "numbers, booleans or numeric strings",
    "number": "numbers or booleans",
    "key": "a flat (non-nested) type",
}


@dataclass(frozen=True, slots=True)
class ColumnUse:
    """One column a request names: the parameter (``role``) that names it and what it needs."""

    column: str
    need: Need
    role: str
    where: Where = "each"


def _fits(type_text: str, need: Need) -> bool:
    if type_text == "null":
        return True  # every cell is missing: the computation skips them, as it would here
    if need == "text":
        return type_text in _TEXT
    if need == "number":
        return _NUMBER.match(type_text) is not None
    if need == "numeric":
        return type_text in _TEXT or _NUMBER.match(type_text) is not None
    return _NESTED.match(type_text) is None


def check_column_uses(
    computation: str,
    uses: Sequence[ColumnUse],
    schemas: Sequence[Sequence[tuple[str, str]]],
    input_names: Sequence[str],
) -> None:
    """Raise :class:`InvalidInput` naming the input, the column, the parameter and the
    columns that input has, for the first use its schema cannot satisfy."""

    def name(i: int) -> str:
        return input_names[i] if i < len(input_names) else f"{input_names[-1]} {i + 1}"

    types = [dict(schema) for schema in schemas]
    for use in uses:
        if use.where == "one":
            holders = [i for i, t in enumerate(types) if use.column in t]
            if not holders:
                raise InvalidInput(
                    f"{computation}: no input has column {use.column!r} (named as {use.role})"
                )
            if len(holders) > 1:
                raise InvalidInput(
                    f"{computation}: {use.role} {use.column!r} is a column of inputs "
                    f"{[name(i) for i in holders]}; it must come from exactly one"
                )
            targets = holders
        else:
            targets = list(range(len(types))) if use.where == "each" else [use.where]
        for i in targets:
            if i >= len(types):
                continue  # the input count is checked (and named) before this
            if use.column not in types[i]:
                have = ", ".join(types[i]) or "none"
                raise InvalidInput(
                    f"{computation}: input {name(i)!r} has no column {use.column!r} "
                    f"(named as {use.role}; its columns: {have})"
                )
            found = types[i][use.column]
            if not _fits(found, use.need):
                raise InvalidInput(
                    f"{computation}: input {name(i)!r} column {use.column!r} is {found}; "
                    f"as {use.role} it must hold {_ALLOWED[use.need]}"
                )
