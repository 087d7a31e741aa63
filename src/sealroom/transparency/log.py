"""An append-only RFC 9162 transparency log over a pluggable, transactional store.

The tree logic lives here; a store only has to keep four things durable and atomic: the
tree size, leaves (index, leaf hash, entry), the hashes of perfect subtrees written at
append time, and signed checkpoint notes. Perfect subtrees never change once complete, so
proofs and roots for *any* past size are read from O(log n) stored hashes.

A log never signs a checkpoint inconsistent with one it signed before: :meth:`checkpoint`
proves consistency from the last stored checkpoint using the stored tree, and raises
:class:`~sealroom.errors.Conflict` instead of signing a fork or a rollback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from sealroom.crypto.merkle import EMPTY_ROOT, RootAccumulator, leaf_hash, node_hash
from sealroom.errors import Conflict, InvalidInput, ProofInvalid, SealroomError
from sealroom.transparency.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    split_note,
)
from sealroom.transparency.proof import (
    NodeId,
    consistency_proof,
    inclusion_proof,
    range_nodes,
    root_from_range,
    verify_consistency,
)

__all__ = [
    "LogReader",
    "LogStore",
    "LogWriter",
    "MemoryLogStore",
    "TransparencyLog",
]

_VERIFY_CHUNK = 4096


class LogReader(Protocol):
    """A consistent snapshot of the log's storage (one read transaction)."""

    def size(self) -> int: ...

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Hashes of perfect subtrees, in order; level 0 are leaf hashes. Raise if missing."""
        ...

    def read_leaves(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        """(index, leaf hash, entry) for stored leaves with start <= index < end, in order."""
        ...

    def read_level(self, level: int, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, hash) of stored nodes at ``level >= 1`` with start <= index < end, in order."""
        ...

    def level_counts(self) -> dict[int, int]:
        """How many rows each level holds (level 0: leaves); for integrity checks."""
        ...

    def checkpoints(self) -> list[str]:
        """Every stored signed checkpoint note, oldest first."""
        ...

    def latest_checkpoint(self) -> str | None: ...


class LogWriter(LogReader, Protocol):
    """An exclusive write transaction: appends are serialized and all-or-nothing."""

    def append(
        self,
        old_size: int,
        leaves: Sequence[tuple[bytes, bytes]],
        nodes: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        """Store (leaf hash, entry) pairs at old_size.. and new nodes; raise Conflict if the
        size is no longer ``old_size``."""
        ...

    def add_checkpoint(self, size: int, root_hash: bytes, note: str) -> None: ...


class LogStore(Protocol):
    def reader(self) -> AbstractContextManager[LogReader]: ...

    def writer(self) -> AbstractContextManager[LogWriter]: ...


def _root(r: LogReader, size: int) -> bytes:
    return root_from_range(r.read_nodes(range_nodes(0, size)))


def _check_tree_size(r: LogReader, tree_size: int, *, what: str = "tree size") -> int:
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size < 0:
        raise InvalidInput(f"{what} must be a non-negative integer")
    size = r.size()
    if tree_size > size:
        raise InvalidInput(f"{what} {tree_size} is beyond the log's size {size}")
    return size


def _stored_checkpoint(note: str) -> Checkpoint:
    try:
        return Checkpoint.from_body(split_note(note)[0])
    except SealroomError as exc:
        raise ProofInvalid(f"a stored checkpoint does not parse: {exc}") from exc


class TransparencyLog:
    """The log: append entries, serve proofs for any past size, sign consistent checkpoints."""

    __slots__ = ("_store",)

    def __init__(self, store: LogStore) -> None:
        self._store = store

    # --- writing --------------------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Append one entry in one transaction; return its index."""
        return self.append_many([entry])

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append entries atomically (all or none); return the index of the first."""
        batch = list(entries)
        if not batch:
            raise InvalidInput("append_many needs at least one entry")
        for i, entry in enumerate(batch):
            if not isinstance(entry, bytes):
                raise InvalidInput(f"entry {i} must be bytes, got {type(entry).__name__}")
        with self._store.writer() as w:
            first = size = w.size()
            # The right frontier: roots of the perfect subtrees that make up the tree, left
            # to right. Appending merges equal-sized neighbours like a binary counter and
            # every merge is a new perfect subtree to store.
            stack = w.read_nodes(range_nodes(0, size))
            leaves: list[tuple[bytes, bytes]] = []
            nodes: list[tuple[NodeId, bytes]] = []
            for entry in batch:
                h = leaf_hash(entry)
                leaves.append((h, entry))
                stack.append(h)
                size += 1
                level = 0
                while (size >> level) & 1 == 0:
                    right = stack.pop()
                    h = node_hash(stack.pop(), right)
                    level += 1
                    nodes.append((NodeId(level, (size >> level) - 1), h))
                    stack.append(h)
            w.append(first, leaves, nodes)
        return first

    def checkpoint(self, signer: NoteSigner, extensions: tuple[str, ...] = ()) -> str:
        """Sign and store a checkpoint at the current size; return the signed note.

        Raises :class:`Conflict` rather than sign anything inconsistent with the last
        checkpoint this log stored (a smaller size, another root at the same size, or a
        tree the stored data cannot prove extends the old one).
        """
        with self._store.writer() as w:
            size = w.size()
            root = _root(w, size)
            new = Checkpoint(signer.name, size, root, extensions)
            last_note = w.latest_checkpoint()
            if last_note is not None:
                self._check_extends(w, last_note, new, signer.verifier)
            note = sign_checkpoint(new, signer)
            w.add_checkpoint(size, root, note)
        return note

    @staticmethod
    def _check_extends(r: LogReader, last_note: str, new: Checkpoint, ours: NoteVerifier) -> None:
        try:
            _, sigs = split_note(last_note)
            if any((s.name, s.key_id) == (ours.name, ours.key_id) for s in sigs):
                open_note(last_note, [ours])  # if our key signed it, the signature must hold
            last = _stored_checkpoint(last_note)
        except SealroomError as exc:
            raise Conflict(f"the last stored checkpoint cannot be trusted: {exc}") from exc
        if last.origin != new.origin:
            raise Conflict(f"the log's origin was {last.origin!r}, not {new.origin!r}")
        if new.size < last.size:
            raise Conflict(
                f"refusing to sign size {new.size}: a checkpoint at size {last.size} was signed"
            )
        if new.size == last.size:
            if new.root_hash != last.root_hash:
                raise Conflict(f"refusing to sign a second, different root for size {new.size}")
            return
        if last.size == 0:
            if last.root_hash != EMPTY_ROOT:
                raise Conflict("the last checkpoint claims a non-empty root for size 0")
            return
        try:
            proof = consistency_proof(last.size, new.size, r.read_nodes)
            verify_consistency(last.size, new.size, proof, last.root_hash, new.root_hash)
        except SealroomError as exc:
            raise Conflict(
                f"refusing to sign size {new.size}: the stored tree is not consistent with "
                f"the checkpoint signed at size {last.size} ({exc})"
            ) from exc

    # --- reading --------------------------------------------------------------------

    def size(self) -> int:
        with self._store.reader() as r:
            return r.size()

    def entry(self, index: int) -> bytes:
        with self._store.reader() as r:
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise InvalidInput("entry index must be a non-negative integer")
            rows = r.read_leaves(index, index + 1)
            if not rows:
                raise InvalidInput(f"no entry {index} in a log of size {r.size()}")
            return rows[0][2]

    def root_at(self, size: int) -> bytes:
        with self._store.reader() as r:
            _check_tree_size(r, size)
            return _root(r, size)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        with self._store.reader() as r:
            _check_tree_size(r, tree_size)
            return inclusion_proof(index, tree_size, r.read_nodes)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._store.reader() as r:
            _check_tree_size(r, size2, what="size2")
            return consistency_proof(size1, size2, r.read_nodes)

    def latest_checkpoint(self) -> str | None:
        with self._store.reader() as r:
            return r.latest_checkpoint()

    # --- auditing -------------------------------------------------------------------

    def verify_integrity(self, verifier: NoteVerifier | None = None) -> int:
        """Recompute the whole tree from the entries and compare every stored hash; return
        the size checked. Every stored checkpoint must match the recomputed root at its size
        and, with ``verifier``, carry a valid signature by it. Raises :class:`ProofInvalid`.

        Cost is O(n): for audits and crash recovery, not the request path.
        """
        with self._store.reader() as r:
            size = r.size()
            counts = r.level_counts()
            for level, count in counts.items():
                if count != size >> level:
                    raise ProofInvalid(
                        f"level {level} holds {count} hashes, a tree of size {size} has "
                        f"{size >> level}"
                    )
            for level in range(size.bit_length()):
                if counts.get(level, 0) != size >> level:
                    raise ProofInvalid(f"level {level} is missing hashes")

            checkpoints = self._stored_checkpoints(r, verifier, size)
            pending = sorted({cp.size for cp in checkpoints})
            roots: dict[int, bytes] = {0: EMPTY_ROOT} if pending and pending[0] == 0 else {}
            pending = [s for s in pending if s > 0]

            acc = RootAccumulator()
            for start in range(0, size, _VERIFY_CHUNK):
                end = min(size, start + _VERIFY_CHUNK)
                rows = r.read_leaves(start, end)
                if [row[0] for row in rows] != list(range(start, end)):
                    raise ProofInvalid(f"leaves {start}..{end - 1} are not all stored")
                for index, stored, entry in rows:
                    if leaf_hash(entry) != stored:
                        raise ProofInvalid(f"leaf {index}: stored leaf hash != hash of entry")
                    acc.append_leaf_hash(stored)
                    if pending and acc.size == pending[0]:
                        roots[pending.pop(0)] = acc.root()

            for level in range(1, size.bit_length()):
                self._verify_level(r, level, size >> level)

            for cp in checkpoints:
                if roots[cp.size] != cp.root_hash:
                    raise ProofInvalid(
                        f"the checkpoint at size {cp.size} does not match the entries"
                    )
                if _root(r, cp.size) != cp.root_hash:
                    raise ProofInvalid(
                        f"stored nodes do not give the checkpoint root at size {cp.size}"
                    )
            return size

    @staticmethod
    def _stored_checkpoints(
        r: LogReader, verifier: NoteVerifier | None, size: int
    ) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        for note in r.checkpoints():
            if verifier is None:
                cp = _stored_checkpoint(note)
            else:
                try:
                    cp = open_checkpoint(note, verifier)
                except SealroomError as exc:
                    raise ProofInvalid(f"a stored checkpoint does not verify: {exc}") from exc
            if cp.size > size:
                raise ProofInvalid(f"a checkpoint at size {cp.size} is beyond the log's {size}")
            if out and cp.size < out[-1].size:
                raise ProofInvalid(f"checkpoint sizes go backwards: {out[-1].size} -> {cp.size}")
            out.append(cp)
        return out

    @staticmethod
    def _verify_level(r: LogReader, level: int, count: int) -> None:
        for start in range(0, count, _VERIFY_CHUNK):
            end = min(count, start + _VERIFY_CHUNK)
            rows = r.read_level(level, start, end)
            if [row[0] for row in rows] != list(range(start, end)):
                raise ProofInvalid(f"level {level} nodes {start}..{end - 1} are not all stored")
            if level == 1:
                children = [h for _, h, _ in r.read_leaves(2 * start, 2 * end)]
            else:
                children = [h for _, h in r.read_level(level - 1, 2 * start, 2 * end)]
            if len(children) != 2 * (end - start):
                raise ProofInvalid(f"level {level - 1} under nodes {start}..{end - 1} is short")
            for (index, stored), left, right in zip(
                rows, children[0::2], children[1::2], strict=True
            ):
                if node_hash(left, right) != stored:
                    raise ProofInvalid(f"node ({level}, {index}) != hash of its children")


class MemoryLogStore:
    """An in-process store for tests and short-lived tools; not durable.

    One lock serializes readers and writers; a failed write transaction is undone.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._leaves: list[tuple[bytes, bytes]] = []
        self._nodes: dict[NodeId, bytes] = {}
        self._checkpoints: list[str] = []

    @contextmanager
    def reader(self) -> Iterator[LogReader]:
        with self._lock:
            yield _MemoryTxn(self)

    @contextmanager
    def writer(self) -> Iterator[LogWriter]:
        with self._lock:
            txn = _MemoryTxn(self)
            try:
                yield txn
            except BaseException:
                txn.rollback()
                raise


class _MemoryTxn:
    __slots__ = ("_added_nodes", "_n_checkpoints", "_n_leaves", "_s")

    def __init__(self, store: MemoryLogStore) -> None:
        self._s = store
        self._n_leaves = len(store._leaves)
        self._n_checkpoints = len(store._checkpoints)
        self._added_nodes: list[NodeId] = []

    def rollback(self) -> None:
        del self._s._leaves[self._n_leaves :]
        del self._s._checkpoints[self._n_checkpoints :]
        for node in self._added_nodes:
            self._s._nodes.pop(node, None)

    def size(self) -> int:
        return len(self._s._leaves)

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        out: list[bytes] = []
        for node in ids:
            if node.level == 0:
                if not 0 <= node.index < len(self._s._leaves):
                    raise ProofInvalid(f"log storage has no leaf {node.index}")
                out.append(self._s._leaves[node.index][0])
            else:
                h = self._s._nodes.get(node)
                if h is None:
                    raise ProofInvalid(f"log storage has no node {node}")
                out.append(h)
        return out

    def read_leaves(self, start: int, end: int) -> list[tuple[int, bytes, bytes]]:
        start = max(start, 0)
        end = min(end, len(self._s._leaves))
        return [(i, *self._s._leaves[i]) for i in range(start, end)]

    def read_level(self, level: int, start: int, end: int) -> list[tuple[int, bytes]]:
        found = ((n.index, h) for n, h in self._s._nodes.items() if n.level == level)
        return sorted((i, h) for i, h in found if start <= i < end)

    def level_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {0: len(self._s._leaves)} if self._s._leaves else {}
        for node in self._s._nodes:
            counts[node.level] = counts.get(node.level, 0) + 1
        return counts

    def checkpoints(self) -> list[str]:
        return list(self._s._checkpoints)

    def latest_checkpoint(self) -> str | None:
        return self._s._checkpoints[-1] if self._s._checkpoints else None

    def append(
        self,
        old_size: int,
        leaves: Sequence[tuple[bytes, bytes]],
        nodes: Sequence[tuple[NodeId, bytes]],
    ) -> None:
        if len(self._s._leaves) != old_size:
            raise Conflict(f"the log grew to {len(self._s._leaves)} while appending at {old_size}")
        self._s._leaves.extend(leaves)
        for node, h in nodes:
            if node in self._s._nodes:
                raise Conflict(f"node {node} is already stored")
            self._s._nodes[node] = h
            self._added_nodes.append(node)

    def add_checkpoint(self, size: int, root_hash: bytes, note: str) -> None:
        self._s._checkpoints.append(note)
