"""Local files -> Arrow tables, with strict validation and errors that point at the line.

Formats: JSON Lines (``.jsonl``, ``.ndjson``) and CSV (``.csv``, with a header
row). Both are read as a stream of lines, so a bad line is reported by file name
and line number before anything is built.

Types are simple and deterministic; the same bytes always give the same table:

* JSONL: strings -> ``string``; integers -> ``int64``; numbers with a fraction
  (or integers mixed with them) -> ``float64``; ``true``/``false`` -> ``bool``;
  arrays of strings -> ``list<string>`` (e.g. ``tags``); ``null`` or a missing key
  -> null. A column mixing other kinds (a string here, a number there) is an
  error, as are nested objects and arrays of non-strings.
* CSV: every cell is text; a column whose non-empty cells all parse as integers
  is ``int64``, else all numbers -> ``float64``, else all ``true``/``false`` ->
  ``bool``; empty cells are null.
* In both, a string column whose every non-null value is an RFC 3339 date-time
  with a UTC offset (``2026-03-04T10:22:31Z``) becomes ``timestamp[s, tz=UTC]``,
  converted to UTC; fractional seconds are truncated.

Column order is the order of first appearance (the first record's keys, then
keys that appear later, in order) or the CSV header.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from sealroom.errors import InvalidInput
from sealroom.statements.canonical import dict_without_duplicates

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "ReadLimits",
    "read_table",
]

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadLimits:
    """Bounds on what a reader accepts; the defaults suit a laptop-sized dataset."""

    max_bytes: int = 256 << 20
    max_field_bytes: int = 64 << 10
    max_columns: int = 256
    max_column_name: int = 200


DEFAULT_LIMITS = ReadLimits()


def read_table(
    path: Path, *, format: str | None = None, limits: ReadLimits = DEFAULT_LIMITS
) -> pa.Table:
    """Read ``path`` (``format`` "jsonl" or "csv"; from the extension when None)."""
    fmt = format if format is not None else FORMATS.get(path.suffix.lower())
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(
            f"{path.name}: unknown format {format or path.suffix or '(no extension)'!r}; "
            "use .jsonl/.ndjson or .csv, or pass format='jsonl' or 'csv'"
        )
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidInput(f"{path.name}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise InvalidInput(f"{path.name}: not a regular file")
    if size > limits.max_bytes:
        raise InvalidInput(
            f"{path.name}: file is {size} bytes, over the limit of {limits.max_bytes} bytes"
        )
    if size == 0:
        raise InvalidInput(f"{path.name}: the file is empty")
    with path.open("rb") as f:
        columns = (
            _read_jsonl(f, path.name, limits) if fmt == "jsonl" else _read_csv(f, path.name, limits)
        )
    return _build(columns, path.name)


# --- line decoding --------------------------------------------------------------------------


def _lines(f: BinaryIO, name: str) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, strictly UTF-8; a leading BOM is dropped."""
    head = f.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(f"{name}: the file is UTF-16 encoded; save it as UTF-8")
    f.seek(0)
    for number, raw in enumerate(f, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{name} line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1}); the file must be UTF-8 encoded"
            ) from None


# --- column accumulation --------------------------------------------------------------------


class _Columns:
    """Values per column in first-appearance order, plus the kinds seen in each."""

    def __init__(self, limits: ReadLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.values: dict[str, list[Any]] = {}
        self.kinds: dict[str, set[str]] = {}
        self.first_line: dict[str, dict[str, int]] = {}
        self.rows = 0

    def add_column(self, column: str, line: int) -> None:
        if not column:
            raise InvalidInput(f"{self.name} line {line}: empty column name")
        if len(column) > self.limits.max_column_name:
            raise InvalidInput(
                f"{self.name} line {line}: column name longer than "
                f"{self.limits.max_column_name} characters"
            )
        if len(self.values) >= self.limits.max_columns:
            raise InvalidInput(
                f"{self.name} line {line}: too many columns (limit {self.limits.max_columns})"
            )
        self.values[column] = [None] * self.rows
        self.kinds[column] = set()
        self.first_line[column] = {}

    def add_row(self, row: dict[str, tuple[str, Any]], line: int) -> None:
        for column in row:
            if column not in self.values:
                self.add_column(column, line)
        for column, vals in self.values.items():
            kind, value = row.get(column, ("null", None))
            if kind != "null":
                self.kinds[column].add(kind)
                self.first_line[column].setdefault(kind, line)
            vals.append(value)
        self.rows += 1

    def check_size(self, column: str, text: str, line: int) -> None:
        if len(text) * 4 > self.limits.max_field_bytes and (
            len(text.encode("utf-8")) > self.limits.max_field_bytes
        ):
            raise InvalidInput(
                f"{self.name} line {line}: field {column!r} is over the limit of "
                f"{self.limits.max_field_bytes} bytes"
            )


# --- JSONL ----------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _json_cell(cols: _Columns, column: str, value: Any, line: int) -> tuple[str, Any]:
    where = f"{cols.name} line {line}: field {column!r}"
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidInput(f"{where}: integer out of the int64 range")
        return "int", value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{where}: number out of range")
        return "float", value
    if isinstance(value, str):
        cols.check_size(column, value, line)
        return "str", value
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{where}: arrays may only hold strings")
        cols.check_size(column, "".join(value), line)
        return "list", value
    raise InvalidInput(f"{where}: nested objects are not supported; flatten them first")


def _read_jsonl(f: BinaryIO, name: str, limits: ReadLimits) -> _Columns:
    cols = _Columns(limits, name)
    for number, text in _lines(f, name):
        if not text.strip():
            continue
        try:
            obj = json.loads(
                text, object_pairs_hook=dict_without_duplicates, parse_constant=_reject_constant
            )
        except (json.JSONDecodeError, ValueError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InvalidInput(f"{name} line {number}: broken JSON ({detail})") from None
        if not isinstance(obj, dict):
            raise InvalidInput(
                f"{name} line {number}: each line must be a JSON object, got {type(obj).__name__}"
            )
        cols.add_row({k: _json_cell(cols, k, v, number) for k, v in obj.items()}, number)
    if cols.rows == 0:
        raise InvalidInput(f"{name}: the file is empty (no records)")
    return cols


# --- CSV ------------------------------------------------------------------------------------


def _read_csv(f: BinaryIO, name: str, limits: ReadLimits) -> _Columns:
    cols = _Columns(limits, name)
    lines = _lines(f, name)
    last_line = [0]

    def texts() -> Iterator[str]:
        for number, text in lines:
            last_line[0] = number
            yield text

    reader = csv.reader(texts(), strict=True)
    header: list[str] | None = None
    try:
        for row in reader:
            line = reader.line_num
            if header is None:
                if not row or all(not c.strip() for c in row):
                    continue
                header = [c.strip() for c in row]
                seen: set[str] = set()
                for column in header:
                    if column in seen:
                        raise InvalidInput(f"{name} line {line}: duplicate column {column!r}")
                    seen.add(column)
                    cols.add_column(column, line)
                continue
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidInput(
                    f"{name} line {line}: {len(row)} fields, the header has {len(header)}"
                )
            cells: dict[str, tuple[str, Any]] = {}
            for column, cell in zip(header, row, strict=True):
                cols.check_size(column, cell, line)
                cells[column] = ("null", None) if cell == "" else ("str", cell)
            cols.add_row(cells, line)
    except csv.Error as exc:
        message = str(exc)
        if "field larger than field limit" in message:
            raise InvalidInput(
                f"{name} line {last_line[0]}: a field is over the CSV field size limit"
            ) from None
        if "unexpected end of data" in message:
            message = "unterminated quoted field"
        raise InvalidInput(f"{name} line {last_line[0]}: broken CSV ({message})") from None
    if header is None:
        raise InvalidInput(f"{name}: the file is empty (no header)")
    if cols.rows == 0:
        raise InvalidInput(f"{name}: the file has a header but no records")
    for column, vals in cols.values.items():
        cols.values[column], kind = _infer_csv(vals)
        cols.kinds[column] = {kind} if kind != "null" else set()
    return cols


def _infer_csv(vals: list[str | None]) -> tuple[list[Any], str]:
    present = [v for v in vals if v is not None]
    if not present:
        return vals, "null"
    if all(_INT.match(v) for v in present):
        ints = [None if v is None else int(v) for v in vals]
        if all(i is None or _INT64_MIN <= i <= _INT64_MAX for i in ints):
            return ints, "int"
    if all(_FLOAT.match(v) for v in present):
        return [None if v is None else float(v) for v in vals], "float"
    if all(v.lower() in ("true", "false") for v in present):
        return [None if v is None else v.lower() == "true" for v in vals], "bool"
    return vals, "str"


# --- building the table ---------------------------------------------------------------------


def _timestamps(vals: list[Any]) -> list[int | None] | None:
    """Unix seconds for a column of RFC 3339 strings, or None if any value is not one."""
    out: list[int | None] = []
    for v in vals:
        if v is None:
            out.append(None)
            continue
        if not _RFC3339.match(v):
            return None
        text = v.replace("z", "Z").replace("t", "T").replace(" ", "T")
        if "." in text:
            head, _, tail = text.partition(".")
            text = head + tail.lstrip("0123456789")
        try:
            out.append(int(datetime.fromisoformat(text).timestamp()))
        except ValueError:
            return None
    return out


def _build(cols: _Columns, name: str) -> pa.Table:
    arrays: list[pa.Array] = []
    for column, vals in cols.values.items():
        kinds = cols.kinds[column]
        if kinds == {"int", "float"}:
            kinds = {"float"}
            vals = [None if v is None else float(v) for v in vals]
        if len(kinds) > 1:
            first = sorted(kinds, key=lambda k: cols.first_line[column].get(k, 0))
            lines = ", ".join(f"{k} at line {cols.first_line[column][k]}" for k in first)
            raise InvalidInput(f"{name}: column {column!r} mixes types ({lines})")
        kind = next(iter(kinds), "null")
        if kind == "str":
            stamps = _timestamps(vals)
            if stamps is not None:
                arrays.append(pa.array(stamps, type=pa.timestamp("s", tz="UTC")))
                continue
        arrays.append(pa.array(vals, type=_ARROW[kind]))
    return pa.Table.from_arrays(arrays, names=list(cols.values))


_ARROW: dict[str, pa.DataType] = {
    "null": pa.string(),
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list": pa.list_(pa.string()),
}
