"""RFC 9162 Merkle tree hashing: the pure core shared by dataset commitments and the log.

Leaves are hashed as ``SHA-256(0x00 || data)``, interior nodes as
``SHA-256(0x01 || left || right)``; an odd node is carried up unchanged (no
duplication, unlike Bitcoin), and the empty tree's root is ``SHA-256("")``.
Proof generation and verification live in :mod:`sealroom.transparency.proof`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "RootAccumulator",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
]

HASH_SIZE = 32
_LEAF = b"\x00"
_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


class RootAccumulator:
    """Streaming root computation in O(log n) memory.

    Keeps the roots of the perfect subtrees that make up the tree so far (a
    "compact range" starting at 0), largest first; appending merges equal-sized
    neighbours like a binary counter.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append_leaf_hash(self, h: bytes) -> None:
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")
        self._stack.append(h)
        self._size += 1
        n = self._size
        while n & 1 == 0:
            right = self._stack.pop()
            left = self._stack.pop()
            self._stack.append(node_hash(left, right))
            n >>= 1

    def append_data(self, data: bytes) -> None:
        self.append_leaf_hash(leaf_hash(data))

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    acc = RootAccumulator()
    for h in hashes:
        acc.append_leaf_hash(h)
    return acc.root()
