"""File sources: gzip, stdin, Parquet, CSV delimiters, and one table whatever the carrier."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sealroom.connectors import (
    FileSource,
    ReadLimits,
    StdinSource,
    from_locator,
    open_source,
    read_table,
)
from sealroom.crypto.commit import commit_table
from sealroom.errors import InvalidInput

CSV = (
    "ts,project,n,x,ok,text\n"
    "2026-01-01T00:00:00Z,alpha,1,1.5,true,first note\n"
    '2026-01-02T10:30:00.75+02:00,beta,,2,FALSE,"second, quoted"\n'
    "2026-01-03T00:00:00Z,alpha,3,-.5e1,false,third\n"
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def test_gzip_by_suffix_and_by_magic_give_the_same_table(tmp_path: Path) -> None:
    plain = read_table(write(tmp_path, "d.csv", CSV))
    zipped = read_table(write(tmp_path, "d.csv.gz", gzip.compress(CSV.encode())))
    # Compressed but not named so: recognised by its magic bytes, not read as text.
    unnamed = read_table(write(tmp_path, "e.csv", gzip.compress(CSV.encode())))
    assert plain.equals(zipped)
    assert plain.equals(unnamed)
    assert [str(t) for t in plain.schema.types] == [
        "timestamp[s, tz=UTC]",
        "string",
        "int64",
        "double",
        "bool",
        "string",
    ]
    # +02:00 converted to UTC, the fraction truncated
    assert plain.column("ts")[1].as_py() == dt.datetime(2026, 1, 2, 8, 30, tzinfo=dt.UTC)
    assert plain.column("n").to_pylist() == [1, None, 3]
    assert plain.column("x").to_pylist() == [1.5, 2.0, -5.0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.csv.gz", gzip.compress(CSV.encode(), mtime=0)[:40], r"t.csv.gz: unreadable gzip data"),
        ("n.csv.gz", CSV.encode(), r"n.csv.gz: the name ends in .gz but the data is not gzip"),
        (
            "c.jsonl.gz",
            b"\x1f\x8b" + b"\x08\x00" + b"garbage" * 5,
            r"c.jsonl.gz: unreadable gzip data",
        ),
    ],
)
def test_bad_gzip(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_table(write(tmp_path, name, content))


def test_gzip_bomb_is_bounded_by_decompressed_bytes(tmp_path: Path) -> None:
    bomb = gzip.compress(b"a\n" + b"1\n" * 500_000)  # ~1 MB of text in a few KB
    p = write(tmp_path, "bomb.csv.gz", bomb)
    assert p.stat().st_size < 10_000
    with pytest.raises(InvalidInput, match=r"bomb.csv.gz: more than the limit of 100000 bytes"):
        read_table(p, limits=ReadLimits(max_bytes=100_000))


def test_semicolon_csv_is_refused_naming_the_delimiter(tmp_path: Path) -> None:
    p = write(tmp_path, "semi.csv", "a;b;c\n1;2;3\n")
    with pytest.raises(
        InvalidInput, match=r"semi.csv line 1: .*likely ';'-separated.*--delimiter ';'"
    ):
        read_table(p)
    t = read_table(p, delimiter=";")
    assert t.column_names == ["a", "b", "c"]
    assert t.column("c").to_pylist() == [3]


@pytest.mark.parametrize(("sep", "said"), [("\t", "a tab"), ("|", "'|'")])
def test_other_delimiters_are_named(tmp_path: Path, sep: str, said: str) -> None:
    p = write(tmp_path, "x.csv", f"a{sep}b\n1{sep}2\n")
    with pytest.raises(InvalidInput, match=f"likely {said}-separated"):
        read_table(p)
    assert read_table(p, delimiter=sep).column_names == ["a", "b"]


def test_one_real_column_still_reads(tmp_path: Path) -> None:
    t = read_table(write(tmp_path, "one.csv", "name\nAda\nGrace\n"))
    assert t.column("name").to_pylist() == ["Ada", "Grace"]


def test_tsv_by_suffix(tmp_path: Path) -> None:
    t = read_table(write(tmp_path, "d.tsv", "a\tb\n1\tx y\n"))
    assert t.column("b").to_pylist() == ["x y"]


@pytest.mark.parametrize("bad", ["ab", "a", '"', "\n"])
def test_bad_delimiter(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="the delimiter must be one character"):
        read_table(write(tmp_path, "d.csv", CSV), delimiter=bad)


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    bad_utf8 = b"a,b\n1,ok\n2,caf\xe9\n"
    with pytest.raises(
        InvalidInput, match=r"u.csv line 3: not valid UTF-8 \(byte 0xe9 in field 'b'\)"
    ):
        read_table(write(tmp_path, "u.csv", bad_utf8))
    with pytest.raises(InvalidInput, match=r"j.csv line 3: broken CSV"):
        read_table(write(tmp_path, "j.csv", 'a,b\n1,2\n3,"x"y\n'))


def test_csv_batches_join_into_one_typed_column(tmp_path: Path) -> None:
    # More rows than one batch, the one float in the last batch: the whole column is float.
    rows = "\n".join(str(i) for i in range(40_000)) + "\n0.5\n"
    t = read_table(write(tmp_path, "many.csv", "v\n" + rows))
    assert t.schema.field("v").type == pa.float64()
    assert t.num_rows == 40_001
    assert t.column("v")[39_999].as_py() == 39_999.0


def test_parquet_maps_onto_the_csv_types(tmp_path: Path) -> None:
    csv_table = read_table(write(tmp_path, "d.csv", CSV))
    # Narrow and foreign types, as other tools write them.
    foreign = pa.table(
        {
            "ts": pa.array(
                [
                    dt.datetime(2026, 1, 1),
                    dt.datetime(2026, 1, 2, 8, 30, 0, 750_000),
                    dt.datetime(2026, 1, 3),
                ],
                type=pa.timestamp("ms"),
            ),
            "project": pa.array(["alpha", "beta", "alpha"]).dictionary_encode(),
            "n": pa.array([1, None, 3], type=pa.int16()),
            "x": pa.array([1.5, 2.0, -5.0], type=pa.float32()),
            "ok": [True, False, False],
            "text": pa.array(["first note", "second, quoted", "third"], type=pa.large_string()),
        }
    )
    p = tmp_path / "d.parquet"
    pq.write_table(foreign, p, row_group_size=2)
    t = read_table(p)
    assert t.equals(csv_table)
    assert commit_table(t).root == commit_table(csv_table).root


def test_parquet_refuses_what_it_cannot_map(tmp_path: Path) -> None:
    import decimal

    p = tmp_path / "dec.parquet"
    pq.write_table(pa.table({"amount": pa.array([decimal.Decimal("1.10")])}), p)
    with pytest.raises(InvalidInput, match=r"dec.parquet: column 'amount' is decimal128"):
        read_table(p)
    not_parquet = write(tmp_path, "no.parquet", "a,b\n1,2\n")
    with pytest.raises(InvalidInput, match=r"no.parquet: not a readable Parquet file"):
        read_table(not_parquet)


def test_stdin_needs_a_format_and_reads_gzip(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="reading stdin needs its format"):
        open_source("-")
    source = open_source("-", format="csv", stdin=io.BytesIO(gzip.compress(CSV.encode())))
    assert isinstance(source, StdinSource)
    assert source.locator() is None
    assert source.read().equals(read_table(write(tmp_path, "d.csv", CSV)))
    parquet = io.BytesIO()
    pq.write_table(pa.table({"a": [1, 2]}), parquet)
    got = open_source("-", format="parquet", stdin=io.BytesIO(parquet.getvalue())).read()
    assert got.column("a").to_pylist() == [1, 2]
    with pytest.raises(InvalidInput, match="stdin: the file is empty"):
        open_source("-", format="parquet", stdin=io.BytesIO(b"")).read()


def test_file_locator_round_trips(tmp_path: Path) -> None:
    p = write(tmp_path, "semi.csv", "a;b\n1;2\n")
    source = open_source(str(p), delimiter=";")
    assert isinstance(source, FileSource)
    again = from_locator(source.locator())
    assert again.read().equals(source.read())


@pytest.mark.parametrize(
    ("location", "options", "message"),
    [
        ("ftp://x/y", {}, r"unknown source scheme 'ftp://'"),
        ("d.csv", {"table": "t"}, r"--table and --query apply to a postgresql:// source only"),
        ("d.csv", {"endpoint": "http://x"}, r"--endpoint applies to an s3:// source only"),
        ("d.csv", {"format": "xlsx"}, r"unknown format 'xlsx'"),
        ("s3://bucket", {}, r"an S3 source is s3://BUCKET/KEY"),
        ("postgresql://u@h/db", {}, r"exactly one of --table or --query"),
        ("postgresql://u@h/db", {"table": "t", "query": "SELECT 1"}, r"exactly one of"),
    ],
)
def test_bad_locations(location: str, options: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_source(location, **options)


def test_jsonl_batches_join_with_late_columns_and_widened_numbers(tmp_path: Path) -> None:
    import json

    n = 40_000  # over two batches
    lines = [{"v": i, "text": "2026-01-01T00:00:00Z"} for i in range(n)]
    lines.append({"v": 0.5, "late": ["a", "b"], "text": "2026-01-02T00:00:00+01:00"})
    p = write(tmp_path, "many.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    t = read_table(p)
    assert t.schema.field("v").type == pa.float64()
    assert t.column("v")[n - 1].as_py() == float(n - 1)
    assert t.schema.field("late").type == pa.list_(pa.string())
    assert t.column("late").null_count == n
    assert t.column("late")[n].as_py() == ["a", "b"]
    assert t.schema.field("text").type == pa.timestamp("s", tz="UTC")
    assert t.column("text")[n].as_py() == dt.datetime(2026, 1, 1, 23, 0, tzinfo=dt.UTC)
    mixed = write(
        tmp_path,
        "mixed.jsonl",
        '{"a": 1}\n' * 20_000 + '{"a": "x"}\n',
    )
    with pytest.raises(
        InvalidInput, match=r"column 'a' mixes types \(int at line 1, str at line 20001\)"
    ):
        read_table(mixed)


def test_csv_empty_cells_do_not_change_a_column_type(tmp_path: Path) -> None:
    t = read_table(write(tmp_path, "e.csv", "b,i,s\ntrue,+5,2026-01-01T00:00:00Z\n,,\nFALSE,7,\n"))
    assert t.column("b").to_pylist() == [True, None, False]
    assert t.column("i").to_pylist() == [5, None, 7]
    assert t.schema.field("s").type == pa.timestamp("s", tz="UTC")


def test_parquet_that_expands_in_memory_is_bounded(tmp_path: Path) -> None:
    p = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"s": ["the same long value " * 5] * 200_000}), p)
    assert p.stat().st_size < 50_000  # dictionary + RLE: a few KB on disk
    with pytest.raises(
        InvalidInput, match=r"bomb.parquet: the data is over the limit of 1000000 bytes"
    ):
        read_table(p, limits=ReadLimits(max_bytes=1_000_000))
