from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.crypto.merkle import EMPTY_ROOT, leaf_hash
from sealroom.errors import InvalidInput, ProofInvalid
from sealroom.transparency.proof import (
    NodeId,
    consistency_plan,
    consistency_proof,
    inclusion_plan,
    inclusion_proof,
    range_nodes,
    root_from_consistency_proof,
    root_from_inclusion_proof,
    root_from_range,
    verify_consistency,
    verify_inclusion,
)
from tests.transparency.tlog_helpers import RFC6962_LEAVES, RFC6962_ROOTS, RefTree, flip_bit

MERKLE_VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "merkle"
VECTOR_FILES = sorted(MERKLE_VECTORS.rglob("*.json")) if MERKLE_VECTORS.is_dir() else []

# Probes where this verifier deliberately differs from the reference (none at present).
FAIL_CLOSED_DEVIATIONS: dict[str, str] = {}


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value, validate=True) if value else b""


def _run_probe(probe: dict[str, object]) -> None:
    proof = [_b64(p) for p in probe["proof"] or []]  # type: ignore[attr-defined]
    if "leafIdx" in probe:
        verify_inclusion(
            probe["leafIdx"],  # type: ignore[arg-type]
            probe["treeSize"],  # type: ignore[arg-type]
            _b64(probe["leafHash"]),  # type: ignore[arg-type]
            proof,
            _b64(probe["root"]),  # type: ignore[arg-type]
        )
    else:
        verify_consistency(
            probe["size1"],  # type: ignore[arg-type]
            probe["size2"],  # type: ignore[arg-type]
            proof,
            _b64(probe["root1"]),  # type: ignore[arg-type]
            _b64(probe["root2"]),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=p.relative_to(MERKLE_VECTORS).as_posix()) for p in VECTOR_FILES]
    or [pytest.param(None, id="vectors-missing")],
)
def test_merkle_vector(vectors: Path, path: Path) -> None:
    rel = path.relative_to(vectors / "merkle").as_posix()
    probe = json.loads(path.read_text())
    if rel in FAIL_CLOSED_DEVIATIONS:
        assert probe["wantErr"] is False  # the deviation is still needed
        with pytest.raises(ProofInvalid, match=FAIL_CLOSED_DEVIATIONS[rel]):
            _run_probe(probe)
    elif probe["wantErr"]:
        with pytest.raises(ProofInvalid):
            _run_probe(probe)
    else:
        _run_probe(probe)


def test_vector_set_is_complete(vectors: Path) -> None:
    rels = {p.relative_to(vectors / "merkle").as_posix() for p in VECTOR_FILES}
    assert len(rels) == 196
    for folder in ("inclusion/additional/", "inclusion/single-entry/", "consistency/additional/"):
        assert any(r.startswith(folder) for r in rels), folder
    assert set(FAIL_CLOSED_DEVIATIONS) <= rels


def test_equal_sizes_with_32_byte_roots_need_no_proof() -> None:
    """What the deviating probe checks, with well-formed hashes."""
    root = leaf_hash(b"x")
    verify_consistency(1, 1, [], root, root)
    verify_consistency(5, 5, [], root, root)
    with pytest.raises(ProofInvalid, match="different roots for the same tree size"):
        verify_consistency(5, 5, [], root, leaf_hash(b"y"))
    with pytest.raises(ProofInvalid, match="wrong proof length"):
        verify_consistency(5, 5, [root], root, root)


# --- known answers ------------------------------------------------------------------------


def test_rfc6962_tree_proofs_from_generation() -> None:
    ref = RefTree(RFC6962_LEAVES)
    for size in range(1, 9):
        root = bytes.fromhex(RFC6962_ROOTS[size - 1])
        assert ref.root(size) == root
        for index in range(size):
            proof = inclusion_proof(index, size, ref.read_nodes)
            assert proof == ref.inclusion(index, size)
            verify_inclusion(index, size, leaf_hash(RFC6962_LEAVES[index]), proof, root)
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, size, ref.read_nodes)
            assert proof == ref.consistency(size1, size)
            verify_consistency(size1, size, proof, ref.root(size1), root)


def test_range_nodes_known_answers() -> None:
    assert range_nodes(0, 0) == []
    assert range_nodes(0, 7) == [NodeId(2, 0), NodeId(1, 2), NodeId(0, 6)]
    assert range_nodes(5, 8) == [NodeId(0, 5), NodeId(1, 3)]
    assert range_nodes(3, 13) == [NodeId(0, 3), NodeId(2, 1), NodeId(2, 2), NodeId(0, 12)]
    with pytest.raises(InvalidInput):
        range_nodes(3, 2)


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 40))
def test_range_nodes_cover_the_range_with_few_perfect_subtrees(a: int, b: int) -> None:
    begin, end = min(a, b), max(a, b)
    nodes = range_nodes(begin, end)
    pos = begin
    for node in nodes:
        assert node.begin == pos
        pos = node.end
    assert pos == end
    assert len(nodes) <= 2 * max(1, (end - begin).bit_length())


# --- generation against the RFC reference, verification of every proof ---------------------

sizes = st.integers(1, 300)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_inclusion_proofs_match_rfc_and_verify(size: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size)])
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, ref.read_nodes)
    assert proof == ref.inclusion(index, size)
    assert len(proof) <= math.ceil(math.log2(size))
    root = ref.root(size)
    lh = ref.leaf_hashes[index]
    verify_inclusion(index, size, lh, proof, root)
    assert root_from_inclusion_proof(index, size, lh, proof) == root


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_consistency_proofs_match_rfc_and_verify(size2: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size2)])
    size1 = data.draw(st.integers(1, size2))
    proof = consistency_proof(size1, size2, ref.read_nodes)
    assert proof == ref.consistency(size1, size2)
    assert len(proof) <= 2 * math.ceil(math.log2(size2)) + 1
    verify_consistency(size1, size2, proof, ref.root(size1), ref.root(size2))
    assert root_from_consistency_proof(size1, size2, proof, ref.root(size1)) == ref.root(size2)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.data())
def test_any_flipped_bit_breaks_an_inclusion_proof(size: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size)])
    index = data.draw(st.integers(0, size - 1))
    proof = ref.inclusion(index, size)
    root, lh = ref.root(size), ref.leaf_hashes[index]
    target = data.draw(st.integers(0, len(proof) + 1))
    bit = data.draw(st.integers(0, 255))
    if target < len(proof):
        proof[target] = flip_bit(proof[target], bit)
    elif target == len(proof):
        lh = flip_bit(lh, bit)
    else:
        root = flip_bit(root, bit)
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, size, lh, proof, root)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.data())
def test_any_flipped_bit_breaks_a_consistency_proof(size2: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size2)])
    size1 = data.draw(st.integers(1, size2 - 1))
    proof = ref.consistency(size1, size2)
    root1, root2 = ref.root(size1), ref.root(size2)
    target = data.draw(st.integers(0, len(proof) + 1))
    bit = data.draw(st.integers(0, 255))
    if target < len(proof):
        proof[target] = flip_bit(proof[target], bit)
    elif target == len(proof):
        root1 = flip_bit(root1, bit)
    else:
        root2 = flip_bit(root2, bit)
    with pytest.raises(ProofInvalid):
        verify_consistency(size1, size2, proof, root1, root2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200), st.data())
def test_inclusion_proof_is_bound_to_index_size_and_length(size: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size)])
    index = data.draw(st.integers(0, size - 1))
    proof = ref.inclusion(index, size)
    root, lh = ref.root(size), ref.leaf_hashes[index]
    other_index = data.draw(st.integers(0, size + 2))
    if other_index != index:
        with pytest.raises(ProofInvalid):
            verify_inclusion(other_index, size, lh, proof, root)
    # A proof binds the index but not the size: the same path can fit a bigger tree whose
    # extra leaves hash like the old right edge. The signed checkpoint binds the size.
    # Sizes that change the proof's shape must fail.
    other_size = data.draw(st.integers(index + 1, 2 * size + 2))
    if len(RefTree(ref.entries + [b"?"] * (size + 2)).inclusion(index, other_size)) != len(proof):
        with pytest.raises(ProofInvalid, match="wrong proof length"):
            verify_inclusion(index, other_size, lh, proof, root)
    with pytest.raises(ProofInvalid, match="wrong proof length"):
        verify_inclusion(index, size, lh, [*proof, proof[0] if proof else root], root)
    if proof:
        with pytest.raises(ProofInvalid, match="wrong proof length"):
            verify_inclusion(index, size, lh, proof[:-1], root)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.data())
def test_consistency_proof_is_bound_to_sizes_and_length(size2: int, data: st.DataObject) -> None:
    ref = RefTree([i.to_bytes(4, "big") for i in range(size2)])
    size1 = data.draw(st.integers(1, size2 - 1))
    proof = ref.consistency(size1, size2)
    root1, root2 = ref.root(size1), ref.root(size2)
    other1 = data.draw(st.integers(0, size2 + 1))
    if other1 != size1:
        with pytest.raises(ProofInvalid):
            verify_consistency(other1, size2, proof, root1, root2)
    # As with inclusion, size2 is bound by the signed checkpoint, not by the proof; sizes
    # that change the proof's shape must fail, and so must any size below size1.
    other2 = data.draw(st.integers(size1 + 1, 2 * size2 + 2))
    bigger = RefTree(ref.entries + [b"?"] * (size2 + 2))
    if len(bigger.consistency(size1, other2)) != len(proof):
        with pytest.raises(ProofInvalid):
            verify_consistency(size1, other2, proof, root1, root2)
    with pytest.raises(ProofInvalid, match="never shrinks"):
        verify_consistency(size1, size1 - 1, proof, root1, root2)
    with pytest.raises(ProofInvalid):
        verify_consistency(size1, size2, proof, root2, root1)  # swapped roots
    with pytest.raises(ProofInvalid, match="wrong proof length|empty consistency proof"):
        verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(ProofInvalid, match="wrong proof length"):
        verify_consistency(size1, size2, [*proof, root1], root1, root2)
    with pytest.raises(ProofInvalid, match="wrong proof length"):
        verify_consistency(size1, size2, [root1, *proof], root1, root2)


# --- input validation -------------------------------------------------------------------


def test_verification_rejects_malformed_inputs() -> None:
    lh = leaf_hash(b"a")
    with pytest.raises(ProofInvalid, match="leaf hash must be 32 bytes"):
        verify_inclusion(0, 1, lh[:31], [], lh)
    with pytest.raises(ProofInvalid, match="root must be 32 bytes"):
        verify_inclusion(0, 1, lh, [], lh + b"\x00")
    with pytest.raises(ProofInvalid, match="beyond tree size"):
        verify_inclusion(1, 1, lh, [], lh)
    with pytest.raises(ProofInvalid, match="beyond tree size"):
        verify_inclusion(0, 0, lh, [], EMPTY_ROOT)
    with pytest.raises(ProofInvalid, match="must be an integer"):
        verify_inclusion(-1, 1, lh, [], lh)
    with pytest.raises(ProofInvalid, match="must be an integer"):
        verify_inclusion(True, 2, lh, [lh], lh)  # type: ignore[arg-type]
    with pytest.raises(ProofInvalid, match="must be an integer"):
        verify_inclusion(0, 1 << 64, lh, [lh], lh)
    with pytest.raises(ProofInvalid, match=r"proof\[0\] must be 32 bytes"):
        verify_inclusion(0, 2, lh, [b""], lh)
    with pytest.raises(ProofInvalid, match=r"proof\[0\] must be 32 bytes, got str"):
        verify_inclusion(0, 2, lh, ["x" * 32], lh)  # type: ignore[list-item]
    with pytest.raises(ProofInvalid, match="empty tree is meaningless"):
        verify_consistency(0, 1, [], EMPTY_ROOT, lh)
    with pytest.raises(ProofInvalid, match="empty tree is meaningless"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofInvalid, match="a log never shrinks"):
        verify_consistency(2, 1, [], lh, lh)
    with pytest.raises(ProofInvalid, match="empty consistency proof"):
        verify_consistency(1, 2, [], lh, lh)


def test_generation_rejects_impossible_requests() -> None:
    ref = RefTree([b"a", b"b", b"c"])
    with pytest.raises(InvalidInput, match="not in a tree of size"):
        inclusion_proof(3, 3, ref.read_nodes)
    with pytest.raises(InvalidInput, match="meaningless"):
        consistency_proof(0, 3, ref.read_nodes)
    with pytest.raises(InvalidInput, match="backwards"):
        consistency_proof(3, 2, ref.read_nodes)
    with pytest.raises(InvalidInput):
        inclusion_plan(-1, 3)
    assert consistency_plan(3, 3).nodes == ()


def test_generation_fails_closed_on_a_bad_node_reader() -> None:
    ref = RefTree([bytes([i]) for i in range(7)])
    with pytest.raises(ProofInvalid, match="returned 1 hashes"):
        inclusion_proof(2, 7, lambda ids: ref.read_nodes(ids)[:1])
    with pytest.raises(ProofInvalid, match="is 31 bytes"):
        inclusion_proof(2, 7, lambda ids: [h[:31] for h in ref.read_nodes(ids)])


@given(st.integers(0, 300))
def test_root_from_range_matches_reference(size: int) -> None:
    ref = RefTree([i.to_bytes(2, "big") for i in range(size)])
    assert root_from_range(ref.read_nodes(range_nodes(0, size))) == ref.root(size)


@pytest.mark.parametrize("size", [10**3, 10**6, 2**40 + 12345, 2**63 + 1])
def test_plans_stay_logarithmic_for_huge_trees(size: int) -> None:
    bound = (size - 1).bit_length()  # ceil(log2(size)), exact for huge sizes
    plan = inclusion_plan(size // 3, size)
    assert len(plan.nodes) <= 2 * bound
    assert len(plan.assemble([b"\x00" * 32] * len(plan.nodes))) <= bound
    cplan = consistency_plan(size // 3 + 1, size)
    assert len(cplan.assemble([b"\x00" * 32] * len(cplan.nodes))) <= 2 * bound + 1


def test_proofs_never_read_beyond_the_requested_size() -> None:
    """Old proofs must come only from subtrees complete at the old size (they never change)."""
    for size in range(1, 70):
        for index in range(size):
            assert all(n.end <= size for n in inclusion_plan(index, size).nodes)
        for size1 in range(1, size + 1):
            assert all(n.end <= size for n in consistency_plan(size1, size).nodes)


def test_proof_with_wrong_leaf_data_fails() -> None:
    ref = RefTree([b"a", b"b", b"c", b"d", b"e"])
    proof = ref.inclusion(2, 5)
    verify_inclusion(2, 5, leaf_hash(b"c"), proof, ref.root(5))
    with pytest.raises(ProofInvalid, match="does not lead to the expected root"):
        verify_inclusion(2, 5, leaf_hash(b"C"), proof, ref.root(5))
    with pytest.raises(ProofInvalid):
        # The leaf's data instead of its hash (a classic second-preimage confusion).
        verify_inclusion(2, 5, b"c".ljust(32, b"\x00"), proof, ref.root(5))
