"""Dataset commitments: an RFC 9162 Merkle root over fixed-size chunks of canonical Arrow IPC bytes.

Canonical bytes of a table are the Arrow IPC *stream* format written with
fixed options (:data:`IPC_OPTIONS`: metadata V5, no compression, unified
dictionaries, no deltas) after normalising the in-memory layout: schema-level
metadata is dropped, all chunks of each column are combined, and the rows are
cut into record batches of exactly :data:`ROWS_PER_BATCH` rows (the last may
be shorter; a table without rows has no batches). So the same logical table
yields the same bytes however it was chunked or sliced in memory.

What "the same logical table" means, precisely:

* Schema-level metadata is *not* committed. Tools put library versions there
  (pandas writes its own version), which would make one dataset commit
  differently depending on who converted it.
* Field-level metadata *is* committed: it carries column semantics, and
  Arrow extension types live there.
* A dictionary column is committed with the dictionary that
  ``combine_chunks`` produces (chunks' dictionaries unified in order of first
  appearance). A different dictionary (other order, unused entries) is a
  different table.
* Bytes are whatever the Arrow writer emits for the combined arrays. Arrays
  built by pyarrow zero their null slots and padding; an array from a
  foreign producer with garbage under nulls commits (consistently) to that
  garbage. That fails closed: a re-commit gives a different root, never a
  false match.

The commitment is ``root`` = RFC 9162 Merkle tree hash with leaf ``i`` =
``SHA-256(0x00 || bytes[i*C : (i+1)*C])`` for chunk size ``C`` (1 MiB; the
last leaf may be short), plus the total ``length``, the ``rows`` and ``C``.
Zero bytes make zero leaves and the RFC 9162 empty-tree root
``SHA-256("")``; a canonical table stream is never empty (schema and
end-of-stream marker), so this only arises for raw byte streams.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from sealroom.crypto.keys import b64decode_strict, b64encode
from sealroom.crypto.merkle import HASH_SIZE, RootAccumulator
from sealroom.errors import CommitmentMismatch, InvalidInput

__all__ = [
    "CHUNK_SIZE",
    "COMMITMENT_SCHEME",
    "IPC_OPTIONS",
    "ROWS_PER_BATCH",
    "CommitmentVerifier",
    "DatasetCommitment",
    "canonical_bytes",
    "commit_bytes_stream",
    "commit_table",
    "iter_canonical",
    "leaf_hashes",
    "read_canonical",
    "read_verified",
    "read_verified_stream",
]

CHUNK_SIZE = 1 << 20
MIN_CHUNK_SIZE = 1 << 10
MAX_CHUNK_SIZE = 1 << 26
# A multiple of 64 rows, so every batch starts on a word boundary of the
# validity and boolean bitmaps and the writer slices them instead of
# re-packing bits.
ROWS_PER_BATCH = 1 << 16
COMMITMENT_SCHEME = "sealroom-ipc-merkle-v1"
IPC_OPTIONS = ipc.IpcWriteOptions(
    metadata_version=ipc.MetadataVersion.V5,
    allow_64bit=False,
    use_legacy_format=False,
    compression=None,
    use_threads=False,
    emit_dictionary_deltas=False,
    unify_dictionaries=True,
)
_LEAF_PREFIX = b"\x00"
_FIELDS = frozenset({"scheme", "root", "length", "rows", "chunk_size"})

BytesLike = bytes | bytearray | memoryview


def _valid_chunk_size(size: object) -> bool:
    return type(size) is int and MIN_CHUNK_SIZE <= size <= MAX_CHUNK_SIZE and size & (size - 1) == 0


def _natural(value: object) -> bool:
    return type(value) is int and value >= 0


@dataclass(frozen=True, slots=True)
class DatasetCommitment:
    """A binding commitment to a dataset's canonical bytes.

    It is not hiding: there is no salt, so anyone who can guess the exact
    bytes of a tiny or predictable table can confirm the guess against the
    public attestation. ``rows`` is not hashed into ``root``; it is a claim
    that :func:`read_verified` checks against the bytes.
    """

    root: bytes
    length: int
    rows: int
    chunk_size: int = CHUNK_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InvalidInput(f"commitment root must be {HASH_SIZE} bytes")
        if not _natural(self.length) or not _natural(self.rows):
            raise InvalidInput("commitment length and rows must be non-negative integers")
        if not _valid_chunk_size(self.chunk_size):
            raise InvalidInput(
                f"commitment chunk size must be a power of two in "
                f"[{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
            )
        if self.length == 0 and self.rows:
            raise InvalidInput("a commitment to zero bytes cannot have rows")

    def __repr__(self) -> str:
        return (
            f"DatasetCommitment(root={self.root.hex()}, length={self.length}, "
            f"rows={self.rows}, chunk_size={self.chunk_size})"
        )

    @property
    def leaves(self) -> int:
        return -(-self.length // self.chunk_size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": COMMITMENT_SCHEME,
            "root": b64encode(self.root),
            "length": self.length,
            "rows": self.rows,
            "chunk_size": self.chunk_size,
        }

    @classmethod
    def from_dict(cls, data: object) -> DatasetCommitment:
        """Parse strictly: exact fields, exact types, canonical base64."""
        if not isinstance(data, dict):
            raise InvalidInput("commitment must be an object")
        keys = set(data)
        if keys != _FIELDS:
            details = []
            if missing := sorted(_FIELDS - keys):
                details.append(f"missing {', '.join(missing)}")
            if unknown := sorted(str(k) for k in keys - _FIELDS):
                details.append(f"unknown {', '.join(unknown)}")
            raise InvalidInput(f"commitment fields: {'; '.join(details)}")
        if data["scheme"] != COMMITMENT_SCHEME:
            raise InvalidInput(f"unknown commitment scheme (expected {COMMITMENT_SCHEME!r})")
        for name in ("length", "rows", "chunk_size"):
            if type(data[name]) is not int:
                raise InvalidInput(f"commitment {name} must be an integer")
        return cls(
            root=b64decode_strict(data["root"], what="commitment root", size=HASH_SIZE),
            length=data["length"],
            rows=data["rows"],
            chunk_size=data["chunk_size"],
        )


class _ChunkHasher:
    """Streams bytes into RFC 9162 leaves of ``chunk_size`` without buffering a chunk.

    Each leaf's SHA-256 is fed incrementally, so memory is one hash state
    plus the accumulator's O(log n) subtree roots, whatever the piece sizes.
    """

    __slots__ = ("_acc", "_chunk_size", "_fill", "_hash", "leaves", "length")

    def __init__(self, chunk_size: int, *, record: bool = False) -> None:
        self.leaves: bytearray | None = bytearray() if record else None
        self._acc = RootAccumulator()
        self._chunk_size = chunk_size
        self._hash = hashlib.sha256(_LEAF_PREFIX)
        self._fill = 0
        self.length = 0

    def update(self, data: BytesLike | pa.Buffer) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        size = len(view)
        self.length += size
        pos = 0
        while pos < size:
            take = min(self._chunk_size - self._fill, size - pos)
            self._hash.update(view if take == size else view[pos : pos + take])
            self._fill += take
            pos += take
            if self._fill == self._chunk_size:
                self._close_leaf()

    def _close_leaf(self) -> None:
        leaf = self._hash.digest()
        self._acc.append_leaf_hash(leaf)
        if self.leaves is not None:
            self.leaves += leaf
        self._hash = hashlib.sha256(_LEAF_PREFIX)
        self._fill = 0

    # The file protocol pyarrow's writer needs of a Python sink.
    closed = False

    def write(self, data: BytesLike | pa.Buffer) -> int:
        self.update(data)
        return len(memoryview(data))

    def flush(self) -> None:
        pass

    def root(self) -> bytes:
        """The root over everything so far (a trailing short chunk is its own leaf)."""
        if self._fill:
            self._close_leaf()
        return self._acc.root()


class _PieceSink:
    """Collects what the Arrow writer emits, by reference (its buffers are immutable)."""

    __slots__ = ("pieces",)
    closed = False

    def __init__(self) -> None:
        self.pieces: list[memoryview] = []

    def flush(self) -> None:
        pass

    def write(self, data: BytesLike | pa.Buffer) -> int:
        view = memoryview(data)
        if view.format != "B":
            view = view.cast("B")
        self.pieces.append(view)
        return len(view)

    def take(self) -> list[memoryview]:
        pieces, self.pieces = self.pieces, []
        return pieces


def _canonical_layout(table: pa.Table) -> pa.Table:
    """Each column as one freshly concatenated array; no schema metadata.

    ``ChunkedArray.combine_chunks`` always concatenates into new buffers
    (``Table.combine_chunks`` would keep a lone chunk as it is): a lone chunk
    may be a window onto a bigger array, whose offset and the live bits past
    its end would otherwise reach the writer and change the bytes.
    """
    if not isinstance(table, pa.Table):
        raise InvalidInput(f"expected a pyarrow.Table, got {type(table).__name__}")
    table = table.replace_schema_metadata(None)
    if table.num_rows == 0:
        return table  # no batches are written, only the schema
    try:
        columns = [_canonical_column(column) for column in table.columns]
        return pa.Table.from_arrays(columns, schema=table.schema)
    except pa.ArrowException as exc:
        raise InvalidInput(f"cannot bring the table into canonical layout: {exc}") from None


def _canonical_column(column: pa.ChunkedArray) -> pa.Array:
    combined = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind) and not kind.ordered:
        # An unordered dictionary is an encoding, not data: re-encode in order
        # of first appearance, so unused entries (left by slicing or by other
        # chunks) and entry order do not change the bytes. An ordered one is
        # part of the meaning (category order) and is kept.
        combined = combined.dictionary_decode().dictionary_encode()
        if combined.type != kind:
            combined = combined.cast(kind)
    return combined


def _write_canonical(table: pa.Table, sink: Any, rows_per_batch: int) -> None:
    combined = _canonical_layout(table)
    with ipc.new_stream(sink, combined.schema, options=IPC_OPTIONS) as writer:
        for batch in combined.to_batches(max_chunksize=rows_per_batch):
            if batch.num_rows:
                writer.write_batch(batch)


def _iter_canonical(table: pa.Table, rows_per_batch: int) -> Iterator[memoryview]:
    combined = _canonical_layout(table)
    sink = _PieceSink()
    with ipc.new_stream(sink, combined.schema, options=IPC_OPTIONS) as writer:
        yield from sink.take()
        for batch in combined.to_batches(max_chunksize=rows_per_batch):
            if batch.num_rows:
                writer.write_batch(batch)
                yield from sink.take()
    yield from sink.take()


def iter_canonical(table: pa.Table) -> Iterator[memoryview]:
    """The canonical bytes as a stream of pieces, one record batch in memory at a time.

    Pieces are zero-copy views of Arrow buffers and of arbitrary sizes; feed
    them to :func:`~sealroom.crypto.sealing.seal_stream` or a hash.
    """
    return _iter_canonical(table, ROWS_PER_BATCH)


def canonical_bytes(table: pa.Table) -> bytes:
    return b"".join(iter_canonical(table))


def commit_table(table: pa.Table, *, chunk_size: int = CHUNK_SIZE) -> DatasetCommitment:
    """Commit to ``table`` without materialising its canonical bytes."""
    return _commit_table(table, chunk_size=chunk_size, rows_per_batch=ROWS_PER_BATCH)


def _commit_table(table: pa.Table, *, chunk_size: int, rows_per_batch: int) -> DatasetCommitment:
    if not _valid_chunk_size(chunk_size):
        raise InvalidInput(
            f"chunk size must be a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )
    hasher = _ChunkHasher(chunk_size)
    _write_canonical(table, hasher, rows_per_batch)
    return DatasetCommitment(
        root=hasher.root(), length=hasher.length, rows=table.num_rows, chunk_size=chunk_size
    )


def commit_bytes_stream(
    chunks: Iterable[BytesLike], rows: int, *, chunk_size: int = CHUNK_SIZE
) -> DatasetCommitment:
    """Commit to bytes arriving in pieces of any sizes; ``rows`` is the caller's claim."""
    if not _valid_chunk_size(chunk_size):
        raise InvalidInput(
            f"chunk size must be a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )
    if isinstance(chunks, bytes | bytearray | memoryview):
        chunks = (chunks,)
    hasher = _ChunkHasher(chunk_size)
    for piece in chunks:
        hasher.update(piece)
    return DatasetCommitment(
        root=hasher.root(), length=hasher.length, rows=rows, chunk_size=chunk_size
    )


class CommitmentVerifier:
    """Checks bytes against a commitment while they stream past, in one pass.

    Feed pieces of any sizes to :meth:`update`, then call :meth:`finish`.
    Both raise :class:`~sealroom.errors.CommitmentMismatch`: ``update`` as soon
    as more bytes arrive than were committed, ``finish`` if bytes are missing
    or the root differs. After either raises, or after ``finish``, the
    verifier refuses further use, so a caller cannot half-ignore a failure.
    Memory is one hash state and O(log n) subtree roots.
    """

    __slots__ = ("_commitment", "_failed", "_finished", "_hasher")

    def __init__(self, commitment: DatasetCommitment) -> None:
        if not isinstance(commitment, DatasetCommitment):
            raise InvalidInput("CommitmentVerifier needs a DatasetCommitment")
        self._commitment = commitment
        self._hasher = _ChunkHasher(commitment.chunk_size)
        self._finished = False
        self._failed = False

    @property
    def received(self) -> int:
        return self._hasher.length

    def _check_usable(self) -> None:
        if self._failed:
            raise CommitmentMismatch("this verifier already failed; the data does not match")
        if self._finished:
            raise InvalidInput("this verifier is finished")

    def update(self, data: BytesLike | pa.Buffer) -> None:
        self._check_usable()
        size = len(memoryview(data))
        expected = self._commitment.length
        if self._hasher.length + size > expected:
            self._failed = True
            raise CommitmentMismatch(
                f"more data than committed: {self._hasher.length + size} bytes "
                f"received, the commitment covers {expected}"
            )
        self._hasher.update(data)

    def finish(self) -> None:
        self._check_usable()
        self._finished = True
        expected = self._commitment.length
        if self._hasher.length != expected:
            self._failed = True
            raise CommitmentMismatch(
                f"data ended early: {self._hasher.length} of {expected} committed bytes received"
            )
        if not hmac.compare_digest(self._hasher.root(), self._commitment.root):
            self._failed = True
            raise CommitmentMismatch(
                "the data's Merkle root differs from the commitment (same length, other bytes)"
            )


def read_canonical(ipc_bytes: BytesLike | pa.Buffer) -> pa.Table:
    """Parse canonical IPC stream bytes, refusing anything that is not canonical.

    The table is fully validated (malformed offsets would otherwise reach
    compute kernels) and re-serialised; the bytes must come out identical,
    so the rows a computation sees are exactly the rows that were committed.
    """
    buffer = pa.py_buffer(ipc_bytes) if not isinstance(ipc_bytes, pa.Buffer) else ipc_bytes
    try:
        table = ipc.open_stream(buffer).read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"not a valid Arrow IPC stream: {exc}") from None
    again = _ChunkHasher(MAX_CHUNK_SIZE)
    original = _ChunkHasher(MAX_CHUNK_SIZE)
    original.update(buffer)
    _write_canonical(table, again, ROWS_PER_BATCH)
    if again.length != original.length or not hmac.compare_digest(again.root(), original.root()):
        raise InvalidInput(
            "the Arrow IPC stream is not in canonical form (it does not re-serialise to "
            "the same bytes)"
        )
    return table


def read_verified(ipc_bytes: BytesLike | pa.Buffer, commitment: DatasetCommitment) -> pa.Table:
    """The table in ``ipc_bytes``, after checking bytes, canonical form and row count."""
    verifier = CommitmentVerifier(commitment)
    verifier.update(ipc_bytes)
    verifier.finish()
    table = read_canonical(ipc_bytes)
    if table.num_rows != commitment.rows:
        raise CommitmentMismatch(
            f"the data has {table.num_rows} rows, the commitment says {commitment.rows}"
        )
    return table


def leaf_hashes(table: pa.Table, *, chunk_size: int = CHUNK_SIZE) -> bytes:
    """The commitment's leaf hashes (32 bytes each, in order), the index
    :func:`read_verified_stream` checks each chunk against before parsing it."""
    if not _valid_chunk_size(chunk_size):
        raise InvalidInput(
            f"chunk size must be a power of two in [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
        )
    hasher = _ChunkHasher(chunk_size, record=True)
    _write_canonical(table, hasher, ROWS_PER_BATCH)
    hasher.root()
    assert hasher.leaves is not None
    return bytes(hasher.leaves)


def _check_leaf_index(leaves: BytesLike, commitment: DatasetCommitment) -> memoryview:
    """The leaf index, once its Merkle root is the committed root (so each leaf is bound)."""
    view = memoryview(leaves).cast("B")
    expected = -(-commitment.length // commitment.chunk_size)
    if len(view) != expected * HASH_SIZE:
        raise CommitmentMismatch(
            f"the leaf index holds {len(view) / HASH_SIZE:g} hashes, the commitment has "
            f"{expected} chunks"
        )
    acc = RootAccumulator()
    for pos in range(0, len(view), HASH_SIZE):
        acc.append_leaf_hash(bytes(view[pos : pos + HASH_SIZE]))
    if not hmac.compare_digest(acc.root(), commitment.root):
        raise CommitmentMismatch("the leaf index's Merkle root differs from the commitment")
    return view


def _checked_chunks(
    pieces: Iterable[BytesLike], commitment: DatasetCommitment, leaves: memoryview
) -> Iterator[bytes]:
    """Re-cut ``pieces`` into commitment chunks and release each only once its hash is the
    indexed leaf: nothing reaches a parser that the owner did not commit to."""
    size = commitment.chunk_size
    buffer = bytearray()
    index = 0
    received = 0

    def release(chunk: bytes) -> bytes:
        nonlocal index
        digest = hashlib.sha256(_LEAF_PREFIX + chunk).digest()
        start = index * HASH_SIZE
        if start >= len(leaves) or not hmac.compare_digest(
            digest, bytes(leaves[start : start + HASH_SIZE])
        ):
            raise CommitmentMismatch(
                f"chunk {index} (bytes {index * size}..{index * size + len(chunk)}) differs "
                "from the committed one"
            )
        index += 1
        return chunk

    for piece in pieces:
        view = memoryview(piece).cast("B")
        received += len(view)
        if received > commitment.length:
            raise CommitmentMismatch(
                f"more data than committed: over {commitment.length} bytes received"
            )
        pos = 0
        while pos < len(view):
            take = min(size - len(buffer), len(view) - pos)
            buffer += view[pos : pos + take]
            pos += take
            if len(buffer) == size:
                yield release(bytes(buffer))
                buffer.clear()
    if received != commitment.length:
        raise CommitmentMismatch(
            f"data ended early: {received} of {commitment.length} committed bytes received"
        )
    if buffer:
        yield release(bytes(buffer))


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (what pyarrow's stream reader reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        dest = memoryview(buffer).cast("B")
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._current = memoryview(chunk)
        take = min(len(dest), len(self._current))
        dest[:take] = self._current[:take]
        self._current = self._current[take:]
        return take

    def drain(self) -> int:
        """Consume what is left (the checks run to the end); returns how many bytes that was."""
        rest = len(self._current)
        self._current = memoryview(b"")
        for chunk in self._chunks:
            rest += len(chunk)
        return rest


def read_verified_stream(
    pieces: Iterable[BytesLike], commitment: DatasetCommitment, leaves: BytesLike
) -> pa.Table:
    """:func:`read_verified` for data arriving in pieces, holding the table once.

    ``leaves`` is the commitment's leaf index (:func:`leaf_hashes`), untrusted: it is
    accepted only if its Merkle root is the committed root. Each chunk of the stream is
    then checked against its leaf before pyarrow parses it, so the parser only ever sees
    committed bytes, as with :func:`read_verified`, without a second copy of the data.
    Canonical form and row count are checked after parsing, as there.
    """
    index = _check_leaf_index(leaves, commitment)
    reader = _ChunkReader(_checked_chunks(pieces, commitment, index))
    try:
        with ipc.open_stream(io.BufferedReader(reader, buffer_size=1 << 20)) as stream:
            table = stream.read_all()
        trailing = reader.drain()
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(f"not a valid Arrow IPC stream: {exc}") from None
    if trailing:
        raise InvalidInput(
            f"the Arrow IPC stream is not in canonical form ({trailing} bytes after its end)"
        )
    again = _ChunkHasher(commitment.chunk_size)
    _write_canonical(table, again, ROWS_PER_BATCH)
    if again.length != commitment.length or not hmac.compare_digest(again.root(), commitment.root):
        raise InvalidInput(
            "the Arrow IPC stream is not in canonical form (it does not re-serialise to "
            "the same bytes)"
        )
    if table.num_rows != commitment.rows:
        raise CommitmentMismatch(
            f"the data has {table.num_rows} rows, the commitment says {commitment.rows}"
        )
    return table
