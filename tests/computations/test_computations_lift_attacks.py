"""The requester's attack on lift through its own exposure input (issue 11, class 4).

lift counted its k threshold on the exposure input, whose policy and entity column the
requester writes: an exposure file with one real id repeated 10 times in the test arm (and
no entity column, so each row counted as an entity) passed k = 10, and the test arm's
conversion count was that person's purchase bit (6 of 6 right on main, 1.1.0).

Now: in exact mode every cell needs k identifiers and the conversions owner's k entities,
so the release is refused whether the target bought or not (the refusal tells nothing);
in DP mode the cell counts are noisy and a guess is right at most e^eps / (1 + e^eps).
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from sealroom.errors import PolicyDenied
from tests.computations.join_attack_world import guess_bound, hit_rate, run, slack

TARGETS = (3, 17, 42, 58, 71, 99)
BUYERS = [i for i in range(300) if i % 3 == 0]


KNOWN_BUYER, FAKE = 0, 10_000


def exposure(t: int) -> pa.Table:
    """The requester's file: in the test arm t, a known buyer and an id that buys nothing,
    each ten times (so both test cells pass a row count of 10 in either world); 200 real
    ids in control. The test arm's conversions are 1 + t's purchase bit."""
    test = [t] * 10 + [KNOWN_BUYER] * 10 + [FAKE] * 10
    ids = test + list(range(100, 300))
    return pa.table({"id": ids, "group": ["test"] * len(test) + ["control"] * 200})


def conversions(t: int, bought: bool) -> pa.Table:
    ids = sorted({*BUYERS, t} if bought else set(BUYERS) - {t})
    return pa.table({"id": ids})


# The requester's policy on its exposure file: k = 10 but rows as entities (no entity column).
ENTITY = (None, "id")


@pytest.mark.parametrize("t", TARGETS)
def test_exact_a_repeated_id_is_refused_whether_or_not_it_bought(t: int) -> None:
    for bought in (True, False):
        with pytest.raises(PolicyDenied) as info:
            run("lift", [exposure(t), conversions(t, bought)], {}, entity=ENTITY)
        assert info.value.rule == "k-threshold"


def test_exact_the_same_arms_with_real_people_are_released() -> None:
    """Not refused for its own sake: ten distinct real ids per cell pass."""
    ids = list(range(100, 300))
    ok = pa.table({"id": ids, "group": ["test" if i % 2 else "control" for i in ids]})
    out = run("lift", [ok, conversions(0, False)], {}, entity=ENTITY)
    assert out.test.n == 100


def test_dp_the_test_arm_does_not_give_the_purchase_bit() -> None:
    trials = 402

    def world(bought: bool) -> int:
        world.calls += 1  # type: ignore[attr-defined]
        t = TARGETS[world.calls % len(TARGETS)]  # type: ignore[attr-defined]
        out = run(
            "lift",
            [exposure(t), conversions(t, bought)],
            {"dp": {"epsilon": "1"}},
            entity=ENTITY,
        )
        return int(out.test.conversions)

    world.calls = 0  # type: ignore[attr-defined]
    rate = hit_rate(world, lambda converted: converted >= 2, trials=trials)
    # The two worlds differ by one entity of the conversions input: epsilon 1.
    assert rate <= guess_bound(1.0) + slack(trials)
