from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto import commit
from sealroom.crypto.commit import (
    CHUNK_SIZE,
    CommitmentVerifier,
    DatasetCommitment,
    canonical_bytes,
    commit_bytes_stream,
    commit_table,
    iter_canonical,
    read_canonical,
    read_verified,
)
from sealroom.crypto.merkle import EMPTY_ROOT
from sealroom.errors import CommitmentMismatch, InvalidInput

MIB = 1 << 20
SMALL = 1 << 10  # smallest allowed chunk size, for property tests over many leaves


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 MTH, written recursively as in the RFC."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _node(_reference_root(leaves[:k]), _reference_root(leaves[k:]))


def _reference_commit_root(data: bytes, chunk_size: int) -> bytes:
    return _reference_root([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)])


# --- tables ------------------------------------------------------------------------------------

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("s", pa.string()),
        ("f", pa.float64()),
        ("b", pa.bool_()),
        ("d", pa.dictionary(pa.int32(), pa.string())),
        ("l", pa.list_(pa.int32())),
    ]
)


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 40) -> pa.Table:
    """Small tables over common types, with nulls everywhere."""
    n = draw(st.integers(0, max_rows))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(st.none() | values, min_size=n, max_size=n))

    return pa.Table.from_pydict(
        {
            "i": column(st.integers(-(2**63), 2**63 - 1)),
            "s": column(st.text(max_size=6)),
            "f": column(st.floats(allow_nan=False)),
            "b": column(st.booleans()),
            "d": column(st.sampled_from(["red", "green", "blue", "ultraviolet"])),
            "l": column(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=3)),
        },
        schema=SCHEMA,
    )


def _cuts(draw: st.DrawFn, n: int) -> list[int]:
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=5))) | {0, n})


@st.composite
def rechunked(draw: st.DrawFn) -> tuple[pa.Table, pa.Table]:
    """A table and the same rows laid out differently in memory."""
    table = draw(tables())
    n = table.num_rows
    cuts = _cuts(draw, n)
    pieces = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    how = draw(st.sampled_from(["slices", "rebuilt", "offset"]))
    if how == "slices":  # zero-copy slices of one buffer
        other = pa.concat_tables(pieces) if pieces else table
    elif how == "rebuilt":  # fresh buffers per chunk, a different dictionary in each
        other = pa.concat_tables(
            [pa.Table.from_pylist(p.to_pylist(), schema=SCHEMA) for p in pieces] or [table]
        )
    else:  # a window onto a bigger table: non-zero offsets, live data past the end
        pad = draw(tables(max_rows=9))
        other = pa.concat_tables([pad, table, pad]).combine_chunks().slice(pad.num_rows, n)
    return table, other


@settings(max_examples=120, deadline=None)
@given(rechunked(), st.sampled_from([3, 8, 64, commit.ROWS_PER_BATCH]))
def test_same_logical_table_same_bytes(
    pair: tuple[pa.Table, pa.Table], rows_per_batch: int
) -> None:
    table, other = pair
    a = commit._commit_table(table, chunk_size=SMALL, rows_per_batch=rows_per_batch)
    b = commit._commit_table(other, chunk_size=SMALL, rows_per_batch=rows_per_batch)
    assert a == b
    assert canonical_bytes(table) == canonical_bytes(other)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_canonical_bytes_round_trip(table: pa.Table) -> None:
    data = canonical_bytes(table)
    assert b"".join(iter_canonical(table)) == data
    back = read_canonical(data)
    assert back.to_pylist() == table.to_pylist()
    assert back.schema == table.schema
    assert commit_table(table) == commit_bytes_stream([data], rows=table.num_rows)
    assert read_verified(data, commit_table(table)).num_rows == table.num_rows


def test_multi_batch_determinism_at_the_real_batch_size() -> None:
    n = 2 * commit.ROWS_PER_BATCH + 1234
    table = pa.table(
        {
            "x": pa.array([None if i % 11 == 0 else i for i in range(n)], pa.int64()),
            "y": pa.array([str(i % 97) if i % 5 else None for i in range(n)]),
        }
    )
    other = pa.concat_tables([table.slice(0, 1001), table.slice(1001, 70000), table.slice(71001)])
    assert other.column(0).num_chunks == 3
    assert commit_table(table) == commit_table(other)
    with ipc.open_stream(canonical_bytes(table)) as reader:
        sizes = [batch.num_rows for batch in reader]
    assert sizes == [commit.ROWS_PER_BATCH, commit.ROWS_PER_BATCH, 1234]


def test_one_changed_cell_changes_the_root() -> None:
    rows = [{"id": i, "name": f"p{i}", "score": i * 0.5} for i in range(500)]
    base = commit_table(pa.Table.from_pylist(rows))
    rows[321]["score"] = 160.25
    changed = commit_table(pa.Table.from_pylist(rows))
    assert changed.root != base.root
    assert changed.rows == base.rows
    assert changed.length == base.length


def test_schema_metadata_is_not_committed_field_metadata_is() -> None:
    table = pa.table({"x": [1, 2, 3]})
    with_schema_meta = table.replace_schema_metadata({"pandas": "2.2.0"})
    assert commit_table(with_schema_meta) == commit_table(table)
    field = pa.field("x", pa.int64(), metadata={"unit": "mg"})
    with_field_meta = pa.Table.from_arrays([table.column(0)], schema=pa.schema([field]))
    assert commit_table(with_field_meta) != commit_table(table)


def test_unordered_dictionaries_are_canonicalised() -> None:
    values = ["b", None, "a", "b"]
    plain = pa.table({"d": pa.array(values).dictionary_encode()})
    # Same values, other dictionary order and an unused entry.
    other = pa.DictionaryArray.from_arrays(
        pa.array([1, None, 2, 1], pa.int32()), pa.array(["zzz", "b", "a"])
    )
    assert commit_table(pa.table({"d": other})) == commit_table(plain)
    # The index type is part of the schema and is kept.
    narrow = pa.table({"d": other.cast(pa.dictionary(pa.int8(), pa.string()))})
    assert read_canonical(canonical_bytes(narrow)).schema == narrow.schema
    assert commit_table(narrow) != commit_table(plain)


def test_ordered_dictionaries_keep_their_order() -> None:
    levels = pa.array(["low", "mid", "high"])
    a = pa.DictionaryArray.from_arrays(pa.array([2, 0], pa.int32()), levels, ordered=True)
    b = pa.DictionaryArray.from_arrays(
        pa.array([0, 1], pa.int32()), pa.array(["high", "low"]), ordered=True
    )
    assert a.to_pylist() == b.to_pylist()
    assert commit_table(pa.table({"d": a})) != commit_table(pa.table({"d": b}))


def test_empty_table_is_schema_and_end_marker() -> None:
    empty = pa.Table.from_batches([], schema=SCHEMA)
    one_empty_chunk = pa.Table.from_pylist([], schema=SCHEMA)
    c = commit_table(empty)
    assert c.rows == 0
    assert c.length > 0
    assert commit_table(one_empty_chunk) == c
    assert read_canonical(canonical_bytes(empty)).num_rows == 0


# --- the Merkle root ---------------------------------------------------------------------------


def test_root_of_a_3mib_payload_by_hand() -> None:
    data = os.urandom(3 * MIB + 12345)
    c0, c1, c2, c3 = (data[i * MIB : (i + 1) * MIB] for i in range(4))
    assert len(c3) == 12345
    by_hand = _node(_node(_leaf(c0), _leaf(c1)), _node(_leaf(c2), _leaf(c3)))
    got = commit_bytes_stream([data], rows=7)
    assert got == DatasetCommitment(root=by_hand, length=len(data), rows=7, chunk_size=MIB)
    assert got.leaves == 4


def test_root_with_an_odd_leaf_carried_up() -> None:
    data = os.urandom(4 * MIB + 1)
    leaves = [_leaf(data[i : i + MIB]) for i in range(0, len(data), MIB)]
    by_hand = _node(_node(_node(leaves[0], leaves[1]), _node(leaves[2], leaves[3])), leaves[4])
    assert commit_bytes_stream([data], rows=0).root == by_hand


def test_exact_multiple_has_no_empty_leaf() -> None:
    data = os.urandom(2 * MIB)
    assert commit_bytes_stream([data], rows=0).root == _node(_leaf(data[:MIB]), _leaf(data[MIB:]))


def test_zero_bytes_is_the_empty_tree() -> None:
    c = commit_bytes_stream([], rows=0)
    assert c == DatasetCommitment(root=EMPTY_ROOT, length=0, rows=0)
    CommitmentVerifier(c).finish()
    v = CommitmentVerifier(c)
    with pytest.raises(CommitmentMismatch, match="more data than committed"):
        v.update(b"\x00")


@settings(max_examples=80, deadline=None)
@given(
    st.binary(max_size=5 * SMALL + 3),
    st.lists(st.integers(0, 3 * SMALL), max_size=10),
)
def test_any_piece_sizes_give_the_rfc_root(data: bytes, sizes: list[int]) -> None:
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(data[pos : pos + size])
        pos += size
    pieces.append(data[pos:])
    got = commit_bytes_stream(pieces, rows=0 if not data else 1, chunk_size=SMALL)
    assert got.root == _reference_commit_root(data, SMALL)
    assert got.length == len(data)
    verifier = CommitmentVerifier(got)
    for piece in pieces:
        verifier.update(memoryview(piece))
    verifier.finish()


# --- the streaming verifier --------------------------------------------------------------------


@pytest.fixture(scope="module")
def payload() -> tuple[bytes, DatasetCommitment]:
    data = os.urandom(4 * SMALL + 100)
    return data, commit_bytes_stream([data], rows=3, chunk_size=SMALL)


def _verify(commitment: DatasetCommitment, data: bytes, step: int = 333) -> None:
    verifier = CommitmentVerifier(commitment)
    for i in range(0, len(data), step):
        verifier.update(data[i : i + step])
    verifier.finish()


def test_verifier_accepts_the_committed_bytes(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    _verify(c, data)
    _verify(c, data, step=1)
    _verify(c, data, step=len(data))


def test_verifier_extra_byte_fails_immediately(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    verifier = CommitmentVerifier(c)
    verifier.update(data[:100])
    with pytest.raises(CommitmentMismatch, match="more data than committed"):
        verifier.update(data[100:] + b"\x00")
    assert verifier.received == 100  # the offending piece was not consumed
    with pytest.raises(CommitmentMismatch, match="already failed"):
        verifier.finish()


def test_verifier_missing_byte(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    with pytest.raises(CommitmentMismatch, match="ended early"):
        _verify(c, data[:-1])


def test_verifier_swapped_chunks(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    swapped = data[SMALL : 2 * SMALL] + data[:SMALL] + data[2 * SMALL :]
    with pytest.raises(CommitmentMismatch, match="root differs"):
        _verify(c, swapped)


def test_verifier_flipped_bit(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    flipped = bytearray(data)
    flipped[-1] ^= 1
    with pytest.raises(CommitmentMismatch, match="root differs"):
        _verify(c, bytes(flipped))


def test_verifier_cannot_be_reused(payload: tuple[bytes, DatasetCommitment]) -> None:
    data, c = payload
    verifier = CommitmentVerifier(c)
    verifier.update(data)
    verifier.finish()
    with pytest.raises(InvalidInput, match="finished"):
        verifier.update(b"")


def test_read_verified_wrong_rows() -> None:
    table = pa.table({"x": list(range(10))})
    data = canonical_bytes(table)
    right = commit_table(table)
    wrong = DatasetCommitment(root=right.root, length=right.length, rows=11)
    with pytest.raises(CommitmentMismatch, match="10 rows, the commitment says 11"):
        read_verified(data, wrong)


def test_read_verified_other_bytes() -> None:
    table = pa.table({"x": list(range(10))})
    other = canonical_bytes(pa.table({"x": list(range(1, 11))}))
    with pytest.raises(CommitmentMismatch):
        read_verified(other, commit_table(table))


# --- canonical form on read --------------------------------------------------------------------


def _ipc(table: pa.Table, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=ipc.IpcWriteOptions(**options)) as writer:
        for batch in table.to_batches(max_chunksize=options.pop("_batch", 2)):
            writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def test_read_canonical_refuses_non_canonical_streams() -> None:
    table = pa.table({"x": list(range(10))})
    with pytest.raises(InvalidInput, match="not in canonical form"):
        read_canonical(_ipc(table))  # five batches of two rows
    with pytest.raises(InvalidInput, match="not in canonical form"):
        read_canonical(canonical_bytes(table) + b"\x00" * 8)  # trailing bytes
    meta = table.replace_schema_metadata({"k": "v"})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, meta.schema, options=commit.IPC_OPTIONS) as writer:
        writer.write_table(meta)
    with pytest.raises(InvalidInput, match="not in canonical form"):
        read_canonical(sink.getvalue())


def test_read_canonical_refuses_garbage() -> None:
    with pytest.raises(InvalidInput, match="not a valid Arrow IPC stream"):
        read_canonical(b"definitely not arrow")
    with pytest.raises(InvalidInput, match="not a valid Arrow IPC stream"):
        read_canonical(canonical_bytes(pa.table({"x": [1, 2, 3]}))[:-20])


# --- serialisation -----------------------------------------------------------------------------


def test_to_dict_round_trip() -> None:
    c = commit_table(pa.table({"x": [1]}))
    d = c.to_dict()
    assert set(d) == {"scheme", "root", "length", "rows", "chunk_size"}
    assert d["scheme"] == "sealroom-ipc-merkle-v1"
    assert d["chunk_size"] == CHUNK_SIZE
    assert DatasetCommitment.from_dict(d) == c


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"extra": 1}, "unknown extra"),
        ({"root": None}, "root"),
        ({"root": "AAAA"}, "expected 32 bytes"),
        ({"scheme": "other"}, "unknown commitment scheme"),
        ({"length": True}, "length must be an integer"),
        ({"length": 1.0}, "length must be an integer"),
        ({"rows": -1}, "non-negative"),
        ({"chunk_size": 1000}, "power of two"),
        ({"chunk_size": 1 << 30}, "power of two"),
    ],
)
def test_from_dict_is_strict(change: dict[str, Any], match: str) -> None:
    d = commit_table(pa.table({"x": [1]})).to_dict()
    d.update(change)
    with pytest.raises(InvalidInput, match=match):
        DatasetCommitment.from_dict(d)


def test_from_dict_missing_field() -> None:
    d = commit_table(pa.table({"x": [1]})).to_dict()
    del d["rows"]
    with pytest.raises(InvalidInput, match="missing rows"):
        DatasetCommitment.from_dict(d)


def test_zero_bytes_cannot_have_rows() -> None:
    with pytest.raises(InvalidInput, match="zero bytes"):
        DatasetCommitment(root=EMPTY_ROOT, length=0, rows=1)


def test_commit_table_rejects_non_tables() -> None:
    with pytest.raises(InvalidInput, match="pyarrow.Table"):
        commit_table(pa.record_batch({"x": [1]}))  # type: ignore[arg-type]
