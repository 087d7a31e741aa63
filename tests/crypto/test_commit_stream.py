"""Streaming a committed input into Arrow: each chunk checked against the leaf index first."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto.commit import (
    MIN_CHUNK_SIZE,
    canonical_bytes,
    commit_bytes_stream,
    commit_table,
    leaf_hashes,
    read_verified,
    read_verified_stream,
)
from sealroom.errors import CommitmentMismatch, InvalidInput

CHUNK = MIN_CHUNK_SIZE
TABLE = pa.table(
    {
        "id": pa.array(range(5000), pa.int64()),
        "text": pa.array([f"row {i}" if i % 7 else None for i in range(5000)]),
    }
)
DATA = canonical_bytes(TABLE)
COMMITMENT = commit_table(TABLE, chunk_size=CHUNK)
LEAVES = leaf_hashes(TABLE, chunk_size=CHUNK)


def _cut(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=3 * CHUNK))
def test_any_piece_sizes_give_the_committed_table(size: int) -> None:
    assert read_verified_stream(_cut(DATA, size), COMMITMENT, LEAVES).equals(TABLE)


def test_leaf_index_is_the_commitment_tree() -> None:
    assert len(LEAVES) == 32 * -(-COMMITMENT.length // CHUNK)
    assert read_verified(DATA, COMMITMENT).equals(TABLE)


@pytest.mark.parametrize("where", [0, len(DATA) // 2, len(DATA) - 1])
def test_a_flipped_byte_is_refused_in_its_chunk(where: int) -> None:
    bad = bytearray(DATA)
    bad[where] ^= 0x01
    with pytest.raises(CommitmentMismatch, match=f"chunk {where // CHUNK} "):
        read_verified_stream(_cut(bytes(bad), 999), COMMITMENT, LEAVES)


def test_missing_and_extra_bytes_are_refused() -> None:
    with pytest.raises(CommitmentMismatch, match="ended early"):
        read_verified_stream(_cut(DATA[:-1], 999), COMMITMENT, LEAVES)
    with pytest.raises(CommitmentMismatch, match="more data than committed"):
        read_verified_stream(_cut(DATA + b"\x00", 999), COMMITMENT, LEAVES)


def test_a_leaf_index_that_is_not_the_commitment_is_refused() -> None:
    with pytest.raises(CommitmentMismatch, match="holds"):
        read_verified_stream(_cut(DATA, 999), COMMITMENT, LEAVES[:-32])
    swapped = LEAVES[32:64] + LEAVES[:32] + LEAVES[64:]
    with pytest.raises(CommitmentMismatch, match="Merkle root differs"):
        read_verified_stream(_cut(DATA, 999), COMMITMENT, swapped)


def test_committed_but_not_canonical_bytes_are_refused() -> None:
    # The owner committed to an IPC stream in another layout (batches of 1000 rows):
    # the bytes match their commitment, but the enclave refuses what is not canonical.
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, TABLE.schema) as writer:
        writer.write_table(TABLE, max_chunksize=1000)
    other = sink.getvalue().to_pybytes()
    assert other != DATA
    commitment = commit_bytes_stream([other], TABLE.num_rows, chunk_size=CHUNK)
    from sealroom.crypto.commit import _ChunkHasher  # the leaves of raw bytes

    hasher = _ChunkHasher(CHUNK, record=True)
    hasher.update(other)
    hasher.root()
    assert hasher.leaves is not None
    with pytest.raises(InvalidInput, match="canonical"):
        read_verified_stream(_cut(other, 4096), commitment, bytes(hasher.leaves))
    # A row count that the bytes do not have is refused too.
    wrong_rows = commit_bytes_stream([DATA], TABLE.num_rows + 1, chunk_size=CHUNK)
    with pytest.raises(CommitmentMismatch, match="rows"):
        read_verified_stream(_cut(DATA, 4096), wrong_rows, LEAVES)
