from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from sealroom.crypto.merkle import (
    EMPTY_ROOT,
    RootAccumulator,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
)


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written recursively as in the RFC."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])
    ).digest()


def test_known_answers() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # RFC 6962 test tree leaf 0 (empty leaf) from the Go reference implementation.
    assert (
        leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_accumulator_matches_rfc_definition(leaves: list[bytes]) -> None:
    acc = RootAccumulator()
    for leaf in leaves:
        acc.append_data(leaf)
    assert acc.size == len(leaves)
    assert acc.root() == reference_root(leaves)
    assert root_from_leaf_hashes(leaf_hash(x) for x in leaves) == reference_root(leaves)


def test_odd_leaf_is_not_duplicated() -> None:
    leaves = [b"1", b"2", b"3"]
    duplicated = node_hash(
        node_hash(leaf_hash(b"1"), leaf_hash(b"2")),
        node_hash(leaf_hash(b"3"), leaf_hash(b"3")),
    )
    assert root_from_leaf_hashes(leaf_hash(x) for x in leaves) != duplicated
