"""RFC 9162 inclusion and consistency proofs: which stored nodes make one, and how to check one.

Generation reads only hashes of *perfect* subtrees (2**level leaves, aligned), because those
never change once the log has grown past them; the one "ephemeral" node on the right border
of a non-perfect tree is folded from perfect ones at proof time. So any proof for any past
tree size costs O(log n) stored hashes and no leaf rehashing.

Verification is a port of transparency-dev/merkle ``proof/verify.go`` (Apache-2.0). It fails
closed: every hash must be exactly 32 bytes, the proof must have exactly the expected length,
and every problem raises :class:`~sealroom.errors.ProofInvalid` -- nothing returns a bool.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sealroom.crypto.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from sealroom.errors import InvalidInput, ProofInvalid

__all__ = [
    "MAX_TREE_SIZE",
    "NodeId",
    "NodeReader",
    "ProofPlan",
    "consistency_plan",
    "consistency_proof",
    "inclusion_plan",
    "inclusion_proof",
    "range_nodes",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_from_range",
    "verify_consistency",
    "verify_inclusion",
]

#: Tree sizes are uint64 on the wire (checkpoints, Go clients); larger values are rejected.
MAX_TREE_SIZE = (1 << 64) - 1


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """A perfect subtree: ``2**level`` leaves starting at leaf ``index << level``."""

    level: int
    index: int

    @property
    def begin(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level

    def parent(self) -> NodeId:
        return NodeId(self.level + 1, self.index >> 1)

    def sibling(self) -> NodeId:
        return NodeId(self.level, self.index ^ 1)


#: Returns the stored hashes of the given perfect subtrees, in the same order.
NodeReader = Callable[[Sequence[NodeId]], Sequence[bytes]]


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The minimal perfect subtrees covering leaves ``[begin, end)``, left to right."""
    if not 0 <= begin <= end:
        raise InvalidInput(f"bad leaf range [{begin}, {end})")
    nodes: list[NodeId] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeId(level, begin >> level))
        begin += 1 << level
    return nodes


def root_from_range(hashes: Sequence[bytes]) -> bytes:
    """Fold the hashes of ``range_nodes(0, n)`` into the RFC 9162 root of the first n leaves."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """The perfect subtrees a proof needs; ``nodes[fold_begin:fold_end]`` fold into one hash.

    The folded block is the ephemeral node: the right-border subtree that is not perfect at
    this tree size, listed lowest level first so it folds right to left.
    """

    nodes: tuple[NodeId, ...]
    fold_begin: int = 0
    fold_end: int = 0

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        if len(hashes) != len(self.nodes):
            raise InvalidInput(f"got {len(hashes)} node hashes, the plan needs {len(self.nodes)}")
        out = list(hashes[: self.fold_begin])
        if self.fold_begin < self.fold_end:
            acc = hashes[self.fold_begin]
            for h in hashes[self.fold_begin + 1 : self.fold_end]:
                acc = node_hash(h, acc)
            out.append(acc)
        out.extend(hashes[self.fold_end :])
        return out

    def skip_first(self) -> ProofPlan:
        if self.fold_begin < self.fold_end:
            return ProofPlan(self.nodes[1:], self.fold_begin - 1, self.fold_end - 1)
        return ProofPlan(self.nodes[1:])


def _plan(index: int, level: int, size: int) -> ProofPlan:
    """Nodes proving that node (level, index) is in the tree of ``size`` leaves.

    The first node is the proven node itself. ``fork`` is where the path to it leaves the
    right border; its sibling is the ephemeral node, covered by the right range.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork = NodeId(level + inner, index >> inner)
    node = NodeId(level, index)
    nodes = [node]
    while node.level < fork.level:
        nodes.append(node.sibling())
        node = node.parent()
    fold_begin = len(nodes)
    nodes.extend(reversed(range_nodes(fork.end, size)))
    fold_end = len(nodes)
    nodes.extend(reversed(range_nodes(0, fork.begin)))
    if fold_begin >= fold_end:
        fold_begin = fold_end = 0
    return ProofPlan(tuple(nodes), fold_begin, fold_end)


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise InvalidInput(f"{name} must be an integer in [0, 2**64), got {value!r}")


def inclusion_plan(index: int, size: int) -> ProofPlan:
    _check_size("leaf index", index)
    _check_size("tree size", size)
    if index >= size:
        raise InvalidInput(f"leaf index {index} is not in a tree of size {size}")
    return _plan(index, 0, size).skip_first()


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise InvalidInput(f"size1 {size1} > size2 {size2}: no consistency proof goes backwards")
    if size1 == 0:
        raise InvalidInput("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        return ProofPlan(())
    # The largest perfect subtree ending at size1; the proof is its inclusion in size2, plus
    # the subtree itself unless it is the whole old tree (the verifier already has that root).
    level = (size1 & -size1).bit_length() - 1
    plan = _plan((size1 - 1) >> level, level, size2)
    return plan.skip_first() if size1 & (size1 - 1) == 0 else plan


def _fetch(plan: ProofPlan, read_nodes: NodeReader) -> list[bytes]:
    hashes = list(read_nodes(plan.nodes))
    if len(hashes) != len(plan.nodes):
        raise ProofInvalid(f"node reader returned {len(hashes)} hashes for {len(plan.nodes)} nodes")
    for node, h in zip(plan.nodes, hashes, strict=True):
        if len(h) != HASH_SIZE:
            raise ProofInvalid(f"stored hash of {node} is {len(h)} bytes, want {HASH_SIZE}")
    return plan.assemble(hashes)


def inclusion_proof(index: int, size: int, read_nodes: NodeReader) -> list[bytes]:
    return _fetch(inclusion_plan(index, size), read_nodes)


def consistency_proof(size1: int, size2: int, read_nodes: NodeReader) -> list[bytes]:
    return _fetch(consistency_plan(size1, size2), read_nodes)


# --- verification -----------------------------------------------------------------------


def _need_hash(what: str, h: bytes) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        got = f"{len(h)} bytes" if isinstance(h, bytes) else type(h).__name__
        raise ProofInvalid(f"{what} must be {HASH_SIZE} bytes, got {got}")


def _need_proof(proof: Sequence[bytes], want: int) -> None:
    if len(proof) != want:
        raise ProofInvalid(f"wrong proof length {len(proof)}, want {want}")
    for i, h in enumerate(proof):
        _need_hash(f"proof[{i}]", h)


def _need_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofInvalid(f"{name} must be an integer in [0, 2**64), got {value!r}")


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion path where the paths to ``index`` and ``size - 1`` part.

    Returns (inner, border): proof hashes below the split, and left siblings above it.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like _chain_inner but only left siblings: the earlier version of the same subtree."""
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def root_from_inclusion_proof(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root a tree of ``tree_size`` must have if ``proof`` is honest; raise if malformed."""
    _need_size("leaf index", leaf_index)
    _need_size("tree size", tree_size)
    if leaf_index >= tree_size:
        raise ProofInvalid(f"leaf index {leaf_index} is beyond tree size {tree_size}")
    _need_hash("leaf hash", leaf_hash)
    inner, border = _decompose(leaf_index, tree_size)
    _need_proof(proof, inner + border)
    res = _chain_inner(leaf_hash, proof[:inner], leaf_index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofInvalid` unless ``leaf_hash`` is leaf ``leaf_index`` of ``root``."""
    _need_hash("root", root)
    calculated = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)
    if calculated != root:
        raise ProofInvalid(
            f"inclusion proof for leaf {leaf_index} in tree size {tree_size} "
            "does not lead to the expected root"
        )


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The root of the size2 tree implied by ``proof``, after checking it against ``root1``."""
    _need_size("size1", size1)
    _need_size("size2", size2)
    _need_hash("root1", root1)
    if size2 < size1:
        raise ProofInvalid(f"size2 {size2} < size1 {size1}: a log never shrinks")
    if size1 == 0:
        raise ProofInvalid("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        _need_proof(proof, 0)
        return root1
    if not proof:
        raise ProofInvalid(f"empty consistency proof from size {size1} to {size2}")

    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift  # shift < inner because size1 < size2
    # The proof starts with the root of the largest perfect subtree ending at size1, unless
    # that subtree is the whole size1 tree, whose root the verifier already has.
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        _need_hash("proof[0]", proof[0])
        seed, start = proof[0], 1
    _need_proof(proof, start + inner + border)
    rest = proof[start:]
    mask = (size1 - 1) >> shift

    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    hash1 = _chain_border_right(hash1, rest[inner:])
    if hash1 != root1:
        raise ProofInvalid(
            f"consistency proof from size {size1} to {size2} does not reproduce root1"
        )
    hash2 = _chain_inner(seed, rest[:inner], mask)
    return _chain_border_right(hash2, rest[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise :class:`ProofInvalid` unless the size2 tree ``root2`` extends the size1 tree ``root1``.

    Two trees of the same non-zero size are consistent exactly when their roots are the
    same bytes and the proof is empty; as in the reference verifier (and its test probes),
    that case compares the roots without judging them, since nothing is computed from them.
    """
    if isinstance(size1, int) and size1 == size2 and size1 > 0 and not proof:
        _need_size("size1", size1)
        if not (isinstance(root1, bytes) and isinstance(root2, bytes)) or not hmac.compare_digest(
            root1, root2
        ):
            raise ProofInvalid(f"different roots for the same tree size {size1}")
        return
    _need_hash("root2", root2)
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    if calculated != root2:
        if size1 == size2:
            raise ProofInvalid(f"different roots for the same tree size {size1}")
        raise ProofInvalid(f"consistency proof from size {size1} to {size2} does not lead to root2")
