"""Access to input columns with the checks every text computation needs."""

from __future__ import annotations

import pyarrow as pa

from sealroom.errors import InvalidInput

__all__ = ["text_values"]


def text_values(table: pa.Table, column: str, *, input_name: str) -> list[str | None]:
    """The values of a string column, or :class:`InvalidInput` naming the input and column."""
    if column not in table.column_names:
        names = ", ".join(table.column_names) or "none"
        raise InvalidInput(f"input {input_name!r} has no column {column!r} (columns: {names})")
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InvalidInput(
            f"input {input_name!r} column {column!r} is {col.type}, a text computation needs string"
        )
    values: list[str | None] = col.to_pylist()
    return values
