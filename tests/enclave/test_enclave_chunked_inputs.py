"""A chunked sealed input (issue 13) as a hostile coordinator may hand it to the enclave.

The parts are one STREAM ciphertext cut at arbitrary offsets; every way of serving them
other than the owner's order is refused, and so is a leaf index that is not the owner's.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pytest

from sealroom.crypto.commit import iter_canonical, leaf_hashes
from sealroom.crypto.sealing import SealContext, seal, seal_stream
from sealroom.enclave.runner import ChunkedInput, JobOutput
from sealroom.errors import CommitmentMismatch, DecryptionFailed
from tests.enclave.enclave_world import CHUNK, SEAL_CHUNK, WORLD, build_case, text_table
from tests.enclave.test_enclave_runner import open_output, refused, run

CASE = build_case(bob_texts=[f"row {i} about enclaves and attestation" for i in range(200)])
PART = 500  # not a multiple of a sealed chunk (SEAL_CHUNK + 16): parts cut chunks in two


def _context(purpose: str) -> SealContext:
    return SealContext(
        request_digest=bytes.fromhex(CASE.request.digest.removeprefix("sha256:")),
        recipient=WORLD.enclave.public.party_id,
        purpose=purpose,
    )


def _parts(table: pa.Table) -> list[bytes]:
    sealed = b"".join(
        seal_stream(
            iter_canonical(table), WORLD.enclave.public, _context("input"), chunk_size=SEAL_CHUNK
        )
    )
    return [sealed[i : i + PART] for i in range(0, len(sealed), PART)]


def _leaves(table: pa.Table, purpose: str = "input-leaves") -> bytes:
    return seal(leaf_hashes(table, chunk_size=CHUNK), WORLD.enclave.public, _context(purpose))


def _chunked(parts: Sequence[bytes], leaves: bytes | None = None) -> ChunkedInput:
    served = list(parts)
    return ChunkedInput(
        count=len(served),
        fetch=served.__getitem__,
        leaves=_leaves(CASE.tables[1]) if leaves is None else leaves,
    )


def _materials(chunked: ChunkedInput) -> object:
    sealed = dict(CASE.sealed)
    sealed[CASE.attestations[1].digest] = chunked
    return CASE.materials(sealed_inputs=sealed)


PARTS = _parts(CASE.tables[1])


def test_chunked_input_runs_like_a_whole_one() -> None:
    assert len(PARTS) >= 6
    out = run(_materials(_chunked(PARTS)))  # type: ignore[arg-type]
    whole = run(CASE.materials())
    assert isinstance(out, JobOutput)
    assert open_output(out, CASE, WORLD.carol).body == open_output(whole, CASE, WORLD.carol).body


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("reordered", [PARTS[0], PARTS[2], PARTS[1], *PARTS[3:]]),
        ("dropped", [PARTS[0], *PARTS[2:]]),
        ("duplicated", [PARTS[0], PARTS[1], PARTS[1], *PARTS[2:]]),
        ("truncated", PARTS[:-1]),
        ("extended", [*PARTS, PARTS[-1]]),
    ],
)
def test_parts_served_out_of_order_are_refused(name: str, served: list[bytes]) -> None:
    refused(_materials(_chunked(served)), "inputs", DecryptionFailed)  # type: ignore[arg-type]


def test_part_from_another_upload_is_refused() -> None:
    # The same owner's data sealed again for the same job: another payload key.
    other = _parts(CASE.tables[1])
    assert other[3] != PARTS[3]
    spliced = [*PARTS[:3], other[3], *PARTS[4:]]
    refused(_materials(_chunked(spliced)), "inputs", DecryptionFailed)  # type: ignore[arg-type]


def test_other_data_sealed_by_anyone_is_refused_against_the_commitment() -> None:
    # Anyone can seal to the enclave: a stream of other rows authenticates, but the
    # leaf index and the data do not match the owner's signed commitment.
    forged = text_table(["not the owner's rows"] * 50)
    reason = refused(
        _materials(_chunked(_parts(forged), _leaves(forged))),  # type: ignore[arg-type]
        "commitments",
        CommitmentMismatch,
    )
    assert "leaf index" in reason
    # With the owner's leaf index, the first forged chunk is refused before it is parsed.
    reason = refused(_materials(_chunked(_parts(forged))), "commitments", CommitmentMismatch)  # type: ignore[arg-type]
    assert "differs from the committed one" in reason or "ended early" in reason


def test_leaf_index_sealed_for_another_purpose_is_refused() -> None:
    leaves = _leaves(CASE.tables[1], purpose="input")
    refused(_materials(_chunked(PARTS, leaves)), "inputs", DecryptionFailed)  # type: ignore[arg-type]


def test_no_parts_at_all() -> None:
    refused(_materials(_chunked([])), "inputs", DecryptionFailed)  # type: ignore[arg-type]
