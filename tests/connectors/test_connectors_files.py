from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from sealroom.connectors import ReadLimits, read_table
from sealroom.errors import InvalidInput


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def test_jsonl_types_and_order(tmp_path: Path) -> None:
    lines = [
        {
            "ts": "2026-03-04T10:22:31Z",
            "project": "p",
            "text": "hello",
            "n": 1,
            "x": 1,
            "ok": True,
            "tags": ["a"],
        },
        {
            "ts": "2026-03-04T12:22:31+02:00",
            "project": "q",
            "text": "world",
            "n": 2,
            "x": 2.5,
            "ok": False,
        },
        {"text": "late", "extra": "e", "project": None},
    ]
    p = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n")
    t = read_table(p)
    assert t.column_names == ["ts", "project", "text", "n", "x", "ok", "tags", "extra"]
    assert t.schema.field("ts").type == pa.timestamp("s", tz="UTC")
    assert t.column("ts").cast(pa.int64()).to_pylist() == [
        1772619751,
        1772619751,
        None,
    ]  # +02:00 is converted to UTC
    assert t.schema.field("n").type == pa.int64()
    assert t.schema.field("x").type == pa.float64()
    assert t.schema.field("ok").type == pa.bool_()
    assert t.schema.field("tags").type == pa.list_(pa.string())
    assert t.column("extra").to_pylist() == [None, None, "e"]
    assert t.equals(read_table(p))


def test_csv_types(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "d.csv",
        'ts,n,f,b,text\n2026-01-01T00:00:00Z,1,1.5,true,"a, quoted\nnewline"\n2026-01-02T00:00:00Z,,2,FALSE,plain\n',
    )
    t = read_table(p)
    assert [str(f.type) for f in t.schema] == [
        "timestamp[s, tz=UTC]",
        "int64",
        "double",
        "bool",
        "string",
    ]
    assert t.column("n").to_pylist() == [1, None]
    assert t.column("text").to_pylist() == ["a, quoted\nnewline", "plain"]


def test_shipped_dataset_reads(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "src" / "sealroom" / "data" / "amiller.jsonl"
    t = read_table(path)
    assert t.num_rows == 2000
    assert t.column_names[:3] == ["ts", "project", "text"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.jsonl", b"", r"e.jsonl: the file is empty"),
        ("e.jsonl", b"\n  \n", r"e.jsonl: the file is empty \(no records\)"),
        (
            "u.jsonl",
            b'{"a": "ok"}\n{"a": "caf\xe9"}\n',
            r"u.jsonl line 2: not valid UTF-8 \(byte 0xe9",
        ),
        ("u16.jsonl", '{"a": 1}\n'.encode("utf-16"), r"UTF-16"),
        ("b.jsonl", b'{"a": 1}\n{"a": 2\n', r"b.jsonl line 2: broken JSON"),
        (
            "n.jsonl",
            b'{"a": 1}\n[1, 2]\n',
            r"n.jsonl line 2: each line must be a JSON object, got list",
        ),
        ("d.jsonl", b'{"a": 1, "a": 2}\n', r"d.jsonl line 1: broken JSON \(duplicate key 'a'\)"),
        ("nan.jsonl", b'{"a": NaN}\n', r"nan.jsonl line 1: broken JSON"),
        (
            "m.jsonl",
            b'{"a": 1}\n{"a": "x"}\n',
            r"m.jsonl: column 'a' mixes types \(int at line 1, str at line 2\)",
        ),
        ("o.jsonl", b'{"a": {"b": 1}}\n', r"o.jsonl line 1: field 'a': nested objects"),
        (
            "l.jsonl",
            b'{"tags": ["a", 1]}\n',
            r"l.jsonl line 1: field 'tags': arrays may only hold strings",
        ),
        ("i.jsonl", b'{"a": 99999999999999999999}\n', r"int64 range"),
        ("r.csv", b"a,b\n1,2\n3\n", r"r.csv line 3: 1 fields, the header has 2"),
        (
            "q.csv",
            b'a,b\n1,"unterminated\n',
            r"q.csv line 2: broken CSV \(unterminated quoted field\)",
        ),
        ("h.csv", b"a,a\n1,2\n", r"h.csv line 1: duplicate column 'a'"),
        ("o.csv", b"a,b\n", r"o.csv: the file has a header but no records"),
        ("x.txt", b"a\n", r"x.txt: unknown format"),
    ],
)
def test_strict_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        read_table(write(tmp_path, name, content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="nope.jsonl: no such file"):
        read_table(tmp_path / "nope.jsonl")


def test_limits(tmp_path: Path) -> None:
    big = write(tmp_path, "big.jsonl", json.dumps({"text": "x" * 70_000}) + "\n")
    with pytest.raises(
        InvalidInput, match=r"big.jsonl line 1: field 'text' is over the limit of 65536 bytes"
    ):
        read_table(big)
    small = ReadLimits(max_bytes=10)
    with pytest.raises(InvalidInput, match=r"over the limit of 10 bytes"):
        read_table(write(tmp_path, "s.jsonl", '{"text": "hello world"}\n'), limits=small)
    wide = write(
        tmp_path, "w.csv", ",".join(f"c{i}" for i in range(300)) + "\n" + ",".join("1" * 300) + "\n"
    )
    with pytest.raises(InvalidInput, match=r"w.csv line 1: too many columns \(limit 256\)"):
        read_table(wide)
    huge_csv = write(tmp_path, "huge.csv", "text\n" + "y" * 70_000 + "\n")
    with pytest.raises(InvalidInput, match=r"huge.csv line 2: field 'text' is over the limit"):
        read_table(huge_csv)


def test_format_override(tmp_path: Path) -> None:
    p = write(tmp_path, "data.log", '{"text": "x"}\n')
    assert read_table(p, format="jsonl").num_rows == 1
