"""Difference checks: two exact releases may not differ by fewer than k entities.

The attacker asks for the same exact statistic twice on entity sets that differ by one
person (a republished dataset, a partner list with one more id) and subtracts.
"""

from __future__ import annotations

import enum
import hashlib
import random
import sys
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pydantic import BaseModel, ConfigDict

from sealroom.computations import Computation, PrivacyContext, Registry
from sealroom.computations.base import Footprint, Released
from sealroom.crypto.keys import PartyId, b64encode
from sealroom.enclave.history import (
    FootprintScope,
    SqlReleaseHistory,
    StoredRelease,
    entity_hashes,
)
from sealroom.enclave.runner import JobFailed, execute_job
from sealroom.enclave.state import EnclaveState
from sealroom.errors import PolicyDenied
from sealroom.statements import sign_statement
from tests.enclave.enclave_world import NOW, WORLD, attest, seal_input, sign_policy
from tests.helpers import approval, request

SCOPE = "owner:person"


def cells(*groups: set[Hashable]) -> tuple[frozenset[Hashable], ...]:
    return tuple(frozenset(g) for g in groups)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[SqlReleaseHistory]:
    h = SqlReleaseHistory.in_directory(tmp_path)
    yield h
    h.close()


def record(history: SqlReleaseHistory, *groups: set[Hashable], k: int = 3) -> None:
    history.check_and_record(
        [FootprintScope(scope=SCOPE, k=k, cells=cells(*groups))], request="r", now=NOW
    )


def test_the_same_footprint_again_releases_nothing_new(history: SqlReleaseHistory) -> None:
    record(history, set(range(10)))
    record(history, set(range(10)))


def test_one_more_person_is_refused_and_not_recorded(history: SqlReleaseHistory) -> None:
    record(history, set(range(10)))
    with pytest.raises(PolicyDenied, match="rule difference-check") as info:
        record(history, set(range(11)))
    assert info.value.detail is not None
    # The refusal names neither the sizes nor the difference.
    assert "10" not in info.value.detail
    assert "11" not in info.value.detail
    assert " 1 " not in info.value.detail
    # Refused footprints are not recorded: the original still passes.
    record(history, set(range(10)))


def test_k_or_more_differences_pass(history: SqlReleaseHistory) -> None:
    record(history, set(range(10)))
    record(history, set(range(13)))  # 3 more, k = 3
    record(history, set(range(3, 13)))  # 3 fewer than the last: fine


def test_a_swap_of_one_person_is_a_difference_of_two(history: SqlReleaseHistory) -> None:
    record(history, set(range(10)), k=3)
    with pytest.raises(PolicyDenied, match="difference-check"):
        record(history, (set(range(10)) - {0}) | {99}, k=3)


def test_cells_of_one_release_are_compared_with_each_other(history: SqlReleaseHistory) -> None:
    # A group and the same group without one person, released side by side.
    with pytest.raises(PolicyDenied, match="this release"):
        record(history, set(range(10)), set(range(9)))


def test_scopes_do_not_mix(history: SqlReleaseHistory) -> None:
    history.check_and_record(
        [FootprintScope(scope="a:id", k=3, cells=cells(set(range(10))))], request="r", now=NOW
    )
    history.check_and_record(
        [FootprintScope(scope="b:id", k=3, cells=cells(set(range(11))))], request="r", now=NOW
    )


def test_values_are_compared_with_their_type(history: SqlReleaseHistory) -> None:
    record(history, {1, 2, 3, 4, 5})
    record(history, {"1", "2", "3", "4", "5"})  # five differences (and five more)


def test_the_key_survives_a_restart(tmp_path: Path) -> None:
    first = SqlReleaseHistory.in_directory(tmp_path)
    record(first, set(range(10)))
    first.close()
    again = SqlReleaseHistory.in_directory(tmp_path)
    with pytest.raises(PolicyDenied):
        record(again, set(range(9)))
    again.close()
    assert (tmp_path / "history.db").stat().st_mode & 0o077 == 0


def test_the_first_kept_release_of_a_request_wins_and_survives_a_restart(tmp_path: Path) -> None:
    first = SqlReleaseHistory.in_directory(tmp_path)
    assert first.released("r1") is None
    one = StoredRelease(receipt=b"receipt-1", outputs={PartyId("p1"): b"sealed-1"})
    two = StoredRelease(receipt=b"receipt-2", outputs={PartyId("p1"): b"sealed-2"})
    assert first.keep_release("r1", one, now=NOW) == one
    assert first.keep_release("r1", two, now=NOW) == one  # a racing run gets the stored one
    assert first.released("r2") is None
    first.close()
    again = SqlReleaseHistory.in_directory(tmp_path)
    assert again.released("r1") == one
    again.close()


def test_hashes_are_keyed() -> None:
    values = ["alice", "bob"]
    assert not (entity_hashes(b"k" * 32, values) == entity_hashes(b"j" * 32, values)).all()
    assert list(entity_hashes(b"k" * 32, values)) == sorted(entity_hashes(b"k" * 32, values))


def _entity_hashes_before(key: bytes, values: list[Hashable]) -> list[int]:
    """The first implementation, kept here as the reference for the faster one."""
    out = set()
    for v in values:
        tag = type(v).__name__.encode()
        data = repr(v).encode("utf-8", "surrogatepass")
        h = hashlib.blake2b(
            len(tag).to_bytes(2, "big") + tag + data, digest_size=8, key=key
        ).digest()
        out.add(int.from_bytes(h, "big"))
    return sorted(out)


class _Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@pytest.mark.parametrize("seed", range(12))
def test_entity_hashes_are_unchanged_by_the_faster_implementation(seed: int) -> None:
    """Random entity columns (repeats, and values equal across types or with two reprs:
    1 == True == 1.0 == _Level.LOW, 0.0 == -0.0, NaN, surrogates) hash exactly as before."""
    rng = random.Random(seed)
    pool: list[Hashable] = [
        0, 1, -1, 17, 2**70, True, False, 1.0, 0.0, -0.0, float("nan"), float("inf"),
        "17", "", "alice", "\udcff", b"17", b"", None, (1, "a"), (1.0, "a"),
        _Level.LOW, _Level.HIGH, frozenset({1, 2}),
    ]  # fmt: skip
    values: list[Hashable] = []
    for _ in range(rng.randrange(0, 3000)):
        pick = rng.random()
        if pick < 0.4:
            values.append(rng.choice(pool))
        elif pick < 0.6:
            values.append(rng.randrange(-(10**6), 10**6))
        elif pick < 0.8:
            values.append(
                "".join(rng.choice("abcxyz\u00e9\U0001f600") for _ in range(rng.randrange(6)))
            )
        else:
            values.append(rng.uniform(-1e6, 1e6))
    rng.shuffle(values)
    key = rng.randbytes(32)
    new = entity_hashes(key, iter(values))
    assert new.dtype == np.uint64
    assert [int(x) for x in new] == _entity_hashes_before(key, values)


# --- in the enclave -------------------------------------------------------------------------


class DropParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    drop: tuple[str, ...] = ()


class CountOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    people: int


def _count(inputs: Any, params: DropParams, privacy: PrivacyContext) -> Released:
    people = {p for p in inputs[0].column("person").to_pylist() if p not in params.drop}
    return Released(
        output=CountOutput(people=len(people)),
        footprint=Footprint(cells=((frozenset(people),),)),
    )


COUNT = Computation(
    id="count-people",
    version="1.0.0",
    summary="Counts the people left after dropping some (a differencing probe).",
    privacy_class="aggregate",
    release="requester",
    input_names=("people",),
    params=DropParams,
    output=CountOutput,
    run_fn=_count,
    modules=(sys.modules[__name__],),
)
REGISTRY = Registry([COUNT])
TABLE = pa.table({"person": [f"p{i}" for i in range(12)]})
RULES = {
    "allow": [{"id": "count-people"}],
    "auto_approve": [{"id": "count-people"}],
    "k": 3,
    "entity_column": "person",
}


def job(state: EnclaveState, *, drop: tuple[str, ...], tag: int) -> Any:
    w = WORLD
    policy = sign_policy(w.alice, RULES)
    att = attest(w.alice, TABLE, policy.digest)
    req = sign_statement(
        request(
            w.carol,
            (att.digest,),
            computation=COUNT.ref(),
            parameters={"drop": list(drop)},
            recipients=(w.carol.party_id,),
            nonce=b64encode(tag.to_bytes(16, "big")),
        ),
        w.carol,
    )
    appr = sign_statement(
        approval(w.alice, req.digest, att.digest, mode="policy", policy=policy.digest), w.alice
    )
    from sealroom.enclave.runner import JobMaterials

    materials = JobMaterials(
        request=req.envelope,
        approvals=(appr.envelope,),
        attestations=(att.envelope,),
        policies=(policy.envelope,),
        sealed_inputs={att.digest: seal_input(TABLE, req.digest)},
        room_policy=None,
    )
    return execute_job(
        materials,
        keys=w.enclave,
        registry=REGISTRY,
        ledger=state.ledger,
        history=state.history,
        now=NOW,
    )


def test_the_enclave_refuses_the_second_of_a_differencing_pair(tmp_path: Path) -> None:
    state = EnclaveState.in_directory(tmp_path)
    try:
        job(state, drop=(), tag=1)
        with pytest.raises(JobFailed) as info:
            job(state, drop=("p7",), tag=2)
        assert info.value.step == "history"
        assert isinstance(info.value.cause, PolicyDenied)
        assert "rule difference-check" in info.value.reason
        # Dropping k people is a different, allowed question.
        job(state, drop=("p1", "p2", "p3"), tag=3)
    finally:
        state.close()


def test_a_replayed_job_releases_the_bytes_of_its_first_run(tmp_path: Path) -> None:
    """The coordinator can hand the enclave a job again: the same receipt and ciphertexts
    come back, and a DP computation would not draw fresh noise (the ledger reuses the
    first charge, so a fresh draw would be free)."""
    state = EnclaveState.in_directory(tmp_path)
    try:
        first = job(state, drop=(), tag=7)
        replay = job(state, drop=(), tag=7)
        assert replay.receipt.digest == first.receipt.digest
        assert dict(replay.sealed_outputs) == dict(first.sealed_outputs)
        assert job(state, drop=(), tag=8).receipt.digest != first.receipt.digest
    finally:
        state.close()


def test_rows_without_an_entity_column_are_compared_by_content() -> None:
    """Row numbers shift when a row is added; the content identities the history compares
    do not (and two equal rows stay two)."""
    from sealroom.enclave.runner import _rows_as_content

    ctx = PrivacyContext(k=(3,), entity_columns=(None,))
    v1 = pa.table({"x": [1, 2, 2, 3]})
    v2 = pa.table({"x": [0, 1, 2, 2, 3]})  # one row inserted at the top
    first = _rows_as_content(Footprint(cells=((frozenset(range(4)),),)), [v1], ctx)
    again = _rows_as_content(Footprint(cells=((frozenset(range(1, 5)),),)), [v2], ctx)
    assert first == again
    (cell,) = first.cells[0]
    assert len(cell) == 4
    grown = _rows_as_content(Footprint(cells=((frozenset(range(5)),),)), [v2], ctx)
    assert len(grown.cells[0][0] ^ cell) == 1
    with pytest.raises(TypeError):  # anything but row numbers fails the run, closed
        _rows_as_content(Footprint(cells=((frozenset({"p1"}),),)), [v1], ctx)
