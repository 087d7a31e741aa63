"""Byte streams -> Arrow tables, with strict validation and errors that point at the line.

Formats: JSON Lines (``.jsonl``, ``.ndjson``), CSV (``.csv``, ``.tsv``, with a
header row) and Parquet (``.parquet``). JSONL and CSV may be gzip-compressed
(``.gz``, or recognised by their magic bytes) and come from any byte stream (a
file, stdin, an object store); they are read as a stream of lines, so a bad line
is reported by source name and line number before anything is built.

CSV is parsed by Python's strict ``csv`` module and goes into Arrow in batches of
:data:`BATCH_ROWS` rows as text, so memory holds the Arrow table (about the size
of the file) and one batch, never a Python object per cell; types are inferred
afterwards with Arrow compute kernels. The delimiter is ``,`` (tab for ``.tsv``)
or given; a header that parses to one column but contains ``;``, a tab or ``|``
is refused, naming the likely delimiter, never read silently as one column.
Parquet is read row group by row group and its types mapped onto the same
vocabulary (:mod:`sealroom.connectors.types`).

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
import gzip
import io
import json
import math
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from sealroom.connectors.types import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_shape,
    normalise_table,
    to_utc_seconds,
)
from sealroom.errors import InvalidInput
from sealroom.statements.canonical import dict_without_duplicates

__all__ = [
    "BATCH_ROWS",
    "DEFAULT_LIMITS",
    "FORMATS",
    "ReadLimits",
    "format_of",
    "read_stream",
    "read_table",
]

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BATCH_ROWS = 1 << 14
DELIMITERS = {";": "';'", "\t": "a tab", "|": "'|'"}
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def format_of(name: str) -> str | None:
    """The format a source name implies by its suffix (``.gz`` looked through), or None."""
    lower = name.lower().removesuffix(".gz")
    dot = lower.rfind(".")
    return FORMATS.get(lower[dot:]) if dot >= 0 else None


def _format(name: str, format: str | None) -> str:
    fmt = format if format is not None else format_of(name)
    if fmt not in ("jsonl", "csv", "parquet"):
        raise InvalidInput(
            f"{name}: unknown format {format or '(no known extension)'!r}; use .jsonl/.ndjson, "
            ".csv/.tsv or .parquet (optionally .gz), or name the format (--format)"
        )
    return fmt


def _default_delimiter(name: str, delimiter: str | None) -> str | None:
    if delimiter is None and name.lower().removesuffix(".gz").endswith(".tsv"):
        return "\t"
    return delimiter


def read_table(
    path: Path,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> pa.Table:
    """Read the file ``path`` (``format`` "jsonl", "csv" or "parquet"; from the name when None)."""
    name = path.name
    fmt = _format(name, format)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise InvalidInput(f"{name}: not a regular file")
    if size > limits.max_bytes:
        raise InvalidInput(
            f"{name}: file is {size} bytes, over the limit of {limits.max_bytes} bytes"
        )
    if size == 0:
        raise InvalidInput(f"{name}: the file is empty")
    try:
        f = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot be read ({exc.strerror})") from None
    with f:
        if fmt == "parquet" and f.peek(4)[:4] == _PARQUET_MAGIC:
            return _read_parquet(f, name, limits)
        return read_stream(f, name=name, format=fmt, delimiter=delimiter, limits=limits)


def read_stream(
    stream: IO[bytes],
    *,
    name: str,
    format: str | None = None,
    delimiter: str | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> pa.Table:
    """Read a byte stream (a file, stdin, an object body) named ``name`` in errors.

    gzip is recognised by its magic bytes; the stream is read once, front to back,
    and at most ``limits.max_bytes`` (decompressed) are accepted.
    """
    fmt = _format(name, format)
    raw = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(_Raw(stream))
    head = raw.peek(2)[:2]
    if name.lower().endswith(".gz") and head != _GZIP_MAGIC:
        raise InvalidInput(f"{name}: the name ends in .gz but the data is not gzip-compressed")
    compressed = head == _GZIP_MAGIC
    f: IO[bytes] = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if compressed else raw
    try:
        if fmt == "parquet":
            return _parquet_from_stream(f, name, limits)
        delim = _default_delimiter(name, delimiter)
        if fmt == "jsonl":
            if delim is not None:
                raise InvalidInput(f"{name}: a delimiter applies to CSV only")
            return _build(_read_jsonl(f, name, limits), name)
        return _read_csv(f, name, limits, delim)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        if not compressed:
            raise
        raise InvalidInput(f"{name}: unreadable gzip data ({exc})") from None


class _Raw(io.RawIOBase):
    """A raw stream over anything with ``read(n)`` (an HTTP body), so it can be buffered."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --- Parquet --------------------------------------------------------------------------------


def _parquet_from_stream(f: IO[bytes], name: str, limits: ReadLimits) -> pa.Table:
    """Parquet needs random access (its footer is at the end): spool to a private temp file."""
    with tempfile.TemporaryFile(prefix="sealroom-") as spool:
        copied = 0
        while chunk := f.read(1 << 20):
            copied += len(chunk)
            if copied > limits.max_bytes:
                raise InvalidInput(f"{name}: more than the limit of {limits.max_bytes} bytes")
            spool.write(chunk)
        if copied == 0:
            raise InvalidInput(f"{name}: the file is empty")
        spool.seek(0)
        return _read_parquet(spool, name, limits)


def _read_parquet(f: IO[bytes], name: str, limits: ReadLimits) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(f)
        check_shape(parquet.schema_arrow, name, limits)
        batches: list[pa.RecordBatch] = []
        held = 0
        for group in range(parquet.num_row_groups):
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
                held += batch.nbytes
                if held > limits.max_bytes:
                    raise InvalidInput(
                        f"{name}: the data is over the limit of {limits.max_bytes} bytes in memory"
                    )
                batches.append(batch)
        table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{name}: not a readable Parquet file ({_short(exc)})") from None
    if table.num_rows == 0:
        raise InvalidInput(f"{name}: the file has a schema but no records")
    return normalise_table(table, name, limits)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# --- line decoding --------------------------------------------------------------------------


def _lines(f: IO[bytes], name: str, limits: ReadLimits) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line, strictly UTF-8; a leading BOM is dropped."""
    total = 0
    for number, raw in enumerate(f, start=1):
        if number == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise InvalidInput(f"{name}: the data is UTF-16 encoded; save it as UTF-8")
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        total += len(raw)
        if total > limits.max_bytes:
            raise InvalidInput(f"{name}: more than the limit of {limits.max_bytes} bytes")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{name} line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1}); the file must be UTF-8 encoded"
            ) from None


# --- column accumulation --------------------------------------------------------------------


class _Columns:
    """Columns in first-appearance order, built as Arrow chunks of :data:`BATCH_ROWS` rows,
    plus the kinds seen in each (and the first line of each kind, for errors)."""

    def __init__(self, limits: ReadLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.values: dict[str, list[Any]] = {}  # the current batch
        self.batch_kinds: dict[str, set[str]] = {}
        self.chunks: dict[str, list[pa.Array]] = {}
        self.lengths: list[int] = []  # of the batches already built
        self.kinds: dict[str, set[str]] = {}
        self.first_line: dict[str, dict[str, int]] = {}
        self.pending = 0
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
        self.values[column] = [None] * self.pending
        self.batch_kinds[column] = set()
        self.chunks[column] = [pa.nulls(n) for n in self.lengths]
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
                self.batch_kinds[column].add(kind)
                self.first_line[column].setdefault(kind, line)
            vals.append(value)
        self.pending += 1
        self.rows += 1
        if self.pending >= BATCH_ROWS:
            self.flush()

    def final_kind(self, column: str) -> str:
        """The column's one kind (ints among floats are floats); mixing others is an error."""
        kinds = self.kinds[column]
        if kinds == {"int", "float"}:
            return "float"
        if len(kinds) > 1:
            first = sorted(kinds, key=lambda k: self.first_line[column].get(k, 0))
            lines = ", ".join(f"{k} at line {self.first_line[column][k]}" for k in first)
            raise InvalidInput(f"{self.name}: column {column!r} mixes types ({lines})")
        return next(iter(kinds), "null")

    def flush(self) -> None:
        if not self.pending:
            return
        for column, vals in self.values.items():
            kinds = self.batch_kinds[column]
            if len(kinds) > 1 and kinds != {"int", "float"}:
                self.final_kind(column)  # raises, naming the lines
            if not kinds:
                array = pa.nulls(len(vals))
            elif "float" in kinds:
                array = pa.array([None if v is None else float(v) for v in vals], pa.float64())
            else:
                array = pa.array(vals, type=_ARROW[next(iter(kinds))])
            self.chunks[column].append(array)
            vals.clear()
            kinds.clear()
        self.lengths.append(self.pending)
        self.pending = 0

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


def _read_jsonl(f: IO[bytes], name: str, limits: ReadLimits) -> _Columns:
    cols = _Columns(limits, name)
    for number, text in _lines(f, name, limits):
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


def _csv_error(name: str, line: int, exc: csv.Error) -> InvalidInput:
    message = str(exc)
    if "field larger than field limit" in message:
        return InvalidInput(f"{name} line {line}: a field is over the CSV field size limit")
    if "unexpected end of data" in message:
        message = "unterminated quoted field"
    return InvalidInput(f"{name} line {line}: broken CSV ({message})")


def _check_delimiter(delimiter: str, name: str) -> None:
    if len(delimiter) != 1 or delimiter in '"\r\n' or delimiter.isalnum():
        raise InvalidInput(
            f"{name}: the delimiter must be one character other than a letter, digit, quote or "
            f"newline, got {delimiter!r}"
        )


def _read_csv(f: IO[bytes], name: str, limits: ReadLimits, delimiter: str | None) -> pa.Table:
    if delimiter is not None:
        _check_delimiter(delimiter, name)
    raw = f if isinstance(f, io.BufferedReader) else io.BufferedReader(_Raw(f))
    if raw.peek(2)[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InvalidInput(f"{name}: the data is UTF-16 encoded; save it as UTF-8")
    # Decoded in C; bytes that are not UTF-8 become lone surrogates, which Arrow refuses
    # per batch, and the batch is then searched for the line to name.
    text = io.TextIOWrapper(
        io.BufferedReader(_Counted(raw, name, limits.max_bytes)),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    reader = csv.reader(text, strict=True, delimiter=delimiter or ",")
    header: list[str] = []
    cols = _Columns(limits, name)
    chunks: list[list[pa.Array]] = []
    pending: list[list[str]] = []
    pending_lines: list[int] = []
    rows = 0

    def flush() -> None:
        for i, (column, values) in enumerate(zip(chunks, zip(*pending, strict=True), strict=True)):
            try:
                cells = pa.array(values, type=pa.string())
            except UnicodeEncodeError:
                raise _not_utf8(name, header[i], pending, pending_lines, i) from None
            longest = pc.max(pc.binary_length(cells)).as_py()
            if longest is not None and longest > limits.max_field_bytes:
                at = pc.index(pc.greater(pc.binary_length(cells), limits.max_field_bytes), True)
                raise InvalidInput(
                    f"{name} line {pending_lines[at.as_py()]}: field {header[i]!r} is over the "
                    f"limit of {limits.max_field_bytes} bytes"
                )
            column.append(pc.if_else(pc.equal(cells, ""), pa.scalar(None, pa.string()), cells))
        pending.clear()
        pending_lines.clear()

    try:
        for row in reader:
            if not header:
                if not row or all(not c.strip() for c in row):
                    continue
                header = [c.strip() for c in row]
                _check_header(header, name, reader.line_num, delimiter, cols)
                chunks = [[] for _ in header]
                continue
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidInput(
                    f"{name} line {reader.line_num}: {len(row)} fields, the header has "
                    f"{len(header)}"
                )
            pending.append(row)
            pending_lines.append(reader.line_num)
            rows += 1
            if rows % BATCH_ROWS == 0:
                flush()
    except csv.Error as exc:
        raise _csv_error(name, reader.line_num, exc) from None
    if not header:
        raise InvalidInput(f"{name}: the file is empty (no header)")
    if rows == 0:
        raise InvalidInput(f"{name}: the file has a header but no records")
    if pending:
        flush()
    return _infer_csv(header, chunks)


class _Counted(io.RawIOBase):
    """Passes bytes through and refuses more than ``limit`` of them."""

    def __init__(self, inner: IO[bytes], name: str, limit: int) -> None:
        self._inner, self._name, self._limit, self._seen = inner, name, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self._seen += len(data)
        if self._seen > self._limit:
            raise InvalidInput(f"{self._name}: more than the limit of {self._limit} bytes")
        buffer[: len(data)] = data
        return len(data)


def _not_utf8(
    name: str, column: str, pending: list[list[str]], lines: list[int], i: int
) -> InvalidInput:
    for row, line in zip(pending, lines, strict=True):
        try:
            row[i].encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = row[i][exc.start].encode("utf-8", "surrogateescape")[0]
            return InvalidInput(
                f"{name} line {line}: not valid UTF-8 (byte 0x{byte:02x} in field {column!r}); "
                "the file must be UTF-8 encoded"
            )
    return InvalidInput(f"{name}: not valid UTF-8; the file must be UTF-8 encoded")


def _check_header(
    header: list[str], name: str, line: int, delimiter: str | None, cols: _Columns
) -> None:
    if delimiter is None and len(header) == 1:
        for candidate, said in DELIMITERS.items():
            if candidate in header[0]:
                shown = "'\\t'" if candidate == "\t" else repr(candidate)
                raise InvalidInput(
                    f"{name} line {line}: the header is one column but contains {said}; the file "
                    f"is likely {said}-separated: pass the delimiter (--delimiter {shown})"
                )
    seen: set[str] = set()
    for column in header:
        try:
            column.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{name} line {line}: the header is not valid UTF-8; the file must be UTF-8 encoded"
            ) from None
        if column in seen:
            raise InvalidInput(f"{name} line {line}: duplicate column {column!r}")
        seen.add(column)
        cols.add_column(column, line)


_INT_RE = r"^[+-]?\d+$"
_FLOAT_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _all_match(col: pa.ChunkedArray, pattern: str) -> bool:
    return bool(
        pc.all(pc.match_substring_regex(col, pattern), skip_nulls=True).as_py() is not False
    )


def _infer_csv(header: list[str], chunks: list[list[pa.Array]]) -> pa.Table:
    """Every column is text; give each the narrowest type all its non-empty cells fit.

    Each column's text is let go once it is converted, so at most one column is held twice.
    """
    columns: list[pa.ChunkedArray] = []
    for i in range(len(header)):
        text = pa.chunked_array(chunks[i], type=pa.string())
        chunks[i] = []
        columns.append(_infer_column(text))
        del text
    return pa.Table.from_arrays(columns, names=header)


def _infer_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if col.null_count == len(col):
        return col
    if _all_match(col, _INT_RE):
        try:
            return pc.cast(pc.replace_substring_regex(col, r"^\+", ""), pa.int64())
        except pa.ArrowInvalid:
            pass  # out of the int64 range: a float, as before
    if _all_match(col, _FLOAT_RE):
        return pc.cast(col, pa.float64())
    lower = pc.utf8_lower(col)
    if pc.all(pc.is_in(pc.drop_null(lower), pa.array(["true", "false"]))).as_py() is not False:
        return pc.equal(lower, "true")
    stamps = to_utc_seconds(col)
    return stamps if stamps is not None else col


# --- building the JSONL table ---------------------------------------------------------------


def _build(cols: _Columns, name: str) -> pa.Table:
    cols.flush()
    arrays: list[pa.ChunkedArray] = []
    for column in list(cols.chunks):
        kind = cols.final_kind(column)
        target = _ARROW[kind]
        chunks = [
            c if c.type == target else pc.cast(c, target, safe=False) for c in cols.chunks[column]
        ]
        cols.chunks[column] = []
        array = pa.chunked_array(chunks, type=target)
        if kind == "str":
            stamps = to_utc_seconds(array)
            if stamps is not None:
                array = stamps
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(cols.values))


_ARROW: dict[str, pa.DataType] = {
    "null": pa.string(),
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list": pa.list_(pa.string()),
}
