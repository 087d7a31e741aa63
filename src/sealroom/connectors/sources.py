"""Where an owner's data comes from: one small seam over files, stdin, PostgreSQL and S3.

A :class:`Source` reads its data into an Arrow table in the types of
:mod:`sealroom.connectors.types`, and describes itself by a *locator*: a small
JSON object with no secret in it (no password, no key) that the owner's dataset
index keeps, so approval reads the same data again later and the commitment
check catches any change. Credentials come from where their tools look for them
(libpq's ``PGPASSWORD``/``~/.pgpass``, the AWS credential chain), never from the
locator. A source that cannot be read twice (stdin) has no locator: approval then
needs the data named again.

Sources are written as text the way a user types them: a path, ``-`` for stdin,
``postgresql://user@host/db`` with a table or a read-only query, or
``s3://bucket/key``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import pyarrow as pa

from sealroom.connectors.files import read_stream, read_table
from sealroom.connectors.types import DEFAULT_LIMITS, ReadLimits
from sealroom.errors import InvalidInput

__all__ = [
    "FileSource",
    "Source",
    "StdinSource",
    "from_locator",
    "open_source",
]

_FORMATS = ("csv", "jsonl", "parquet")


class Source(Protocol):
    """Data an owner publishes, read into Arrow."""

    @property
    def name(self) -> str:
        """How messages name the source; never holds a secret."""
        ...

    def read(self, *, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
        """The whole table, read as a stream (every bad input is an ``InvalidInput``)."""
        ...

    def locator(self) -> dict[str, str] | None:
        """What to keep to read it again (no secrets), or None if it cannot be re-read."""
        ...


def _check_format(format: str | None) -> None:
    if format is not None and format not in _FORMATS:
        raise InvalidInput(f"unknown format {format!r}; use one of {', '.join(_FORMATS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSource:
    """A local file: JSONL, CSV/TSV or Parquet, optionally gzip-compressed."""

    path: Path
    format: str | None = None
    delimiter: str | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def read(self, *, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
        return read_table(self.path, format=self.format, delimiter=self.delimiter, limits=limits)

    def locator(self) -> dict[str, str]:
        loc = {"kind": "file", "path": str(Path(self.path).resolve())}
        if self.format is not None:
            loc["format"] = self.format
        if self.delimiter is not None:
            loc["delimiter"] = self.delimiter
        return loc


@dataclass(frozen=True, slots=True, kw_only=True)
class StdinSource:
    """Standard input (``-``), read once; its format must be named, there is no file name."""

    format: str
    delimiter: str | None = None
    stream: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return "stdin"

    def read(self, *, limits: ReadLimits = DEFAULT_LIMITS) -> pa.Table:
        if self.stream is None and sys.stdin.isatty():
            raise InvalidInput(
                "stdin is a terminal: pipe the data in (cat FILE | sealroom dataset publish - ...)"
            )
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        return read_stream(
            stream, name="stdin", format=self.format, delimiter=self.delimiter, limits=limits
        )

    def locator(self) -> None:
        return None


def open_source(
    location: str,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    table: str | None = None,
    query: str | None = None,
    endpoint: str | None = None,
    stdin: IO[bytes] | None = None,
) -> Source:
    """The source ``location`` names, with the options that apply to it (others refused)."""
    _check_format(format)
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme in ("postgresql", "postgres"):
        if format is not None or delimiter is not None or endpoint is not None:
            raise InvalidInput("a PostgreSQL source takes --table or --query, not a file option")
        from sealroom.connectors.postgres import PostgresSource

        return PostgresSource.parse(location, table=table, query=query)
    if table is not None or query is not None:
        raise InvalidInput("--table and --query apply to a postgresql:// source only")
    if scheme == "s3":
        from sealroom.connectors.s3 import S3Source

        return S3Source.parse(location, format=format, delimiter=delimiter, endpoint=endpoint)
    if endpoint is not None:
        raise InvalidInput("--endpoint applies to an s3:// source only")
    if scheme:
        raise InvalidInput(
            f"unknown source scheme {scheme + '://'!r}; use a file path, '-' for stdin, "
            "postgresql://... or s3://..."
        )
    if location == "-":
        if format is None:
            raise InvalidInput("reading stdin needs its format: --format csv, jsonl or parquet")
        return StdinSource(format=format, delimiter=delimiter, stream=stdin)
    return FileSource(path=Path(location), format=format, delimiter=delimiter)


def from_locator(locator: Mapping[str, str]) -> Source:
    """The source a dataset index entry recorded (see :meth:`Source.locator`)."""
    kind = locator.get("kind")
    if kind == "file" and isinstance(locator.get("path"), str):
        return FileSource(
            path=Path(locator["path"]),
            format=locator.get("format"),
            delimiter=locator.get("delimiter"),
        )
    if kind == "postgresql":
        from sealroom.connectors.postgres import PostgresSource

        return PostgresSource.from_locator(locator)
    if kind == "s3":
        from sealroom.connectors.s3 import S3Source

        return S3Source.from_locator(locator)
    raise InvalidInput(f"unknown data source in the dataset index: {kind!r}")
