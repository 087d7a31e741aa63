"""The column types every source yields, so a dataset commits and computes the same way
whether it came from CSV, JSONL, Parquet or a database.

The vocabulary: ``string``, ``int64``, ``double``, ``bool``, ``list<string>`` and
``timestamp[s, tz=UTC]``. Typed sources (Parquet, PostgreSQL) are mapped onto it:
narrower integers and floats widen, dictionary strings decode, dates become
midnight UTC, timestamps are floored to whole seconds and converted to UTC, and
a timestamp without a zone is taken as UTC (the alternative, the reader's local
zone, would make the same file commit differently on two machines). Anything
else (decimals, binary, structs, maps) is refused with the column's name: it
cannot be mapped without losing or inventing something, and the owner knows
best how to convert it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from sealroom.errors import InvalidInput

__all__ = [
    "DEFAULT_LIMITS",
    "UTC_SECONDS",
    "ReadLimits",
    "check_shape",
    "normalise_table",
    "to_utc_seconds",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLimits:
    """Bounds on what a reader accepts; the defaults suit a laptop-sized dataset.

    ``max_bytes`` bounds the bytes read (after decompression) and, for typed sources,
    the Arrow bytes held.
    """

    max_bytes: int = 256 << 20
    max_field_bytes: int = 64 << 10
    max_columns: int = 256
    max_column_name: int = 200


DEFAULT_LIMITS = ReadLimits()

UTC_SECONDS = pa.timestamp("s", tz="UTC")
SUPPORTED = "string, integer, floating point, boolean, date, timestamp and list of string"
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"


def check_shape(schema: pa.Schema, name: str, limits: ReadLimits) -> None:
    """Refuse too many columns and empty, over-long or duplicate names."""
    max_columns, max_name = limits.max_columns, limits.max_column_name
    if len(schema) > max_columns:
        raise InvalidInput(f"{name}: too many columns (limit {max_columns})")
    seen: set[str] = set()
    for field in schema:
        if not field.name:
            raise InvalidInput(f"{name}: empty column name")
        if len(field.name) > max_name:
            raise InvalidInput(f"{name}: column name longer than {max_name} characters")
        if field.name in seen:
            raise InvalidInput(f"{name}: duplicate column {field.name!r}")
        seen.add(field.name)


def to_utc_seconds(col: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A string column whose every value is an RFC 3339 date-time with an offset, as UTC
    seconds (fractions truncated); None if any value is not one."""
    if col.null_count == len(col):
        return None
    if pc.all(pc.match_substring_regex(col, _RFC3339), skip_nulls=True).as_py() is False:
        return None
    text = pc.replace_substring(pc.utf8_upper(col), " ", "T")
    text = pc.replace_substring_regex(text, r"\.\d+", "")
    try:
        return pc.cast(text, UTC_SECONDS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # e.g. February 30th: it stays text


def _field_bytes(col: pa.ChunkedArray, name: str, column: str, limit: int) -> None:
    if len(col) == 0:
        return
    values = pc.list_flatten(col) if pa.types.is_list(col.type) else col
    if len(values) == 0:
        return
    longest = pc.max(pc.binary_length(values)).as_py()
    if longest is not None and longest > limit:
        raise InvalidInput(f"{name}: field {column!r} is over the limit of {limit} bytes")


def _column(col: pa.ChunkedArray, name: str, column: str) -> pa.ChunkedArray:
    t = col.type
    where = f"{name}: column {column!r}"
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
        t = col.type
    if pa.types.is_null(t):
        return pc.cast(col, pa.string())
    if pa.types.is_boolean(t) or t == pa.int64() or t == pa.float64() or t == pa.string():
        return col
    if pa.types.is_integer(t):
        try:
            return pc.cast(col, pa.int64())
        except pa.ArrowInvalid:
            raise InvalidInput(f"{where}: integer out of the int64 range") from None
    if pa.types.is_floating(t):
        return pc.cast(col, pa.float64())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(col, pa.string())
    if pa.types.is_date(t):
        return pc.cast(pc.cast(col, pa.date32()), pa.timestamp("s")).cast(UTC_SECONDS)
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.assume_timezone(col, "UTC")
        floored = pc.floor_temporal(col, unit="second")
        return pc.cast(floored, pa.timestamp("s", tz=col.type.tz), safe=False).cast(UTC_SECONDS)
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)) and (
        pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)
    ):
        return pc.cast(col, pa.list_(pa.string()))
    raise InvalidInput(
        f"{where} is {t}, which sealroom does not read (it reads {SUPPORTED}); convert it "
        "first, e.g. a decimal to a float or to text"
    )


def normalise_table(table: pa.Table, name: str, limits: ReadLimits) -> pa.Table:
    """``table`` with every column mapped onto the vocabulary; schema metadata dropped."""
    check_shape(table.schema, name, limits)
    max_field = limits.max_field_bytes
    columns: list[pa.ChunkedArray] = []
    for field, col in zip(table.schema, table.columns, strict=True):
        out = _column(col, name, field.name)
        if out.type == pa.string() or pa.types.is_list(out.type):
            _field_bytes(out, name, field.name, max_field)
        columns.append(out)
    return pa.Table.from_arrays(columns, names=table.column_names)
