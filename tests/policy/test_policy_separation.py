from __future__ import annotations

import random

import pytest

from sealroom.errors import InvalidInput
from sealroom.policy.separation import Separated


def test_admits_equal_sets_and_sets_at_least_k_apart() -> None:
    held = Separated(3)
    assert held.admit({1, 2, 3, 4, 5})
    assert held.admit({1, 2, 3, 4, 5})  # the same entities: the same number
    assert not held.admit({1, 2, 3, 4})  # 1 apart
    assert not held.admit({1, 2, 3, 4, 5, 6, 7})  # 2 apart
    assert held.admit({1, 2, 3, 4, 5, 6, 7, 8})  # 3 apart
    assert held.admit({10, 11, 12})  # disjoint: 3 + 5 apart
    # a refused set is not held: one 2 away from it but 3 away from the rest still passes
    assert held.admit({1, 2})


def test_differences_count_both_sides() -> None:
    held = Separated(3)
    assert held.admit({1, 2, 3, 4})
    assert not held.admit({1, 2, 3, 5})  # same size, 2 apart (4 out, 5 in)
    assert held.admits({1, 2, 5, 6})  # 4 apart
    assert held.admits({1, 2, 5, 6})  # admits() holds nothing
    assert not held.admits({1, 2, 3})


def test_k_one_admits_everything() -> None:
    held = Separated(1)
    assert all(held.admit(set(range(n))) for n in range(5))


@pytest.mark.parametrize("k", [0, -1, True, 1.5])
def test_k_must_be_a_positive_integer(k: object) -> None:
    with pytest.raises(InvalidInput, match="k must be an integer"):
        Separated(k)  # type: ignore[arg-type]


def test_matches_a_brute_force_check_on_random_sets() -> None:
    rng = random.Random(7)
    for k in (2, 3, 5):
        held = Separated(k)
        kept: list[frozenset[int]] = []
        for _ in range(300):
            members = frozenset(rng.sample(range(12), rng.randint(0, 12)))
            expected = all(not 0 < len(members ^ other) < k for other in kept)
            assert held.admit(members) == expected
            if expected:
                kept.append(members)
