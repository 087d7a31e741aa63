"""Test-only reference: RFC 9162 section 2.1 written recursively, independent of the package."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

from sealroom.transparency.proof import NodeId


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_leaf_hash(data: bytes) -> bytes:
    return _h(b"\x00" + data)


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 9162 2.1.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class RefTree:
    """MTH, PATH and PROOF from RFC 9162 over a list of entries."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self.leaf_hashes = [ref_leaf_hash(e) for e in self.entries]
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return _h(b"")
        if n == 1:
            return self.leaf_hashes[start]
        k = _split(n)
        return _h(b"\x01" + self.mth(start, start + k) + self.mth(start + k, end))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def inclusion(self, m: int, size: int) -> list[bytes]:
        return self.path(m, 0, size)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self.mth(start, end)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self.mth(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.mth(start, start + k)]

    def consistency(self, m: int, size: int) -> list[bytes]:
        return self._subproof(m, 0, size, True)

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """A NodeReader that only answers for perfect subtrees inside the tree."""
        out = []
        for node in ids:
            assert node.level >= 0
            assert node.index >= 0
            assert node.end <= len(self.entries), f"{node} is beyond the tree"
            out.append(self.mth(node.begin, node.end))
        return out


def flip_bit(data: bytes, bit: int) -> bytes:
    buf = bytearray(data)
    buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


# The RFC 6962 test tree used by the Go reference implementations, with its known roots.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
