"""The requester's planted outlier in association-test (issue 11, class 5).

The requester's signal file gives its target one extreme value and everyone else a small
one; the owner's outcome is a diagnosis. The class whose mean signal jumps is the target's
diagnosis (4 of 4 on main, 1.1.0).

Now: in exact mode the signal is clipped to the pinned bounds and top-coded to a level
shared by k of the owner's people, so the release is the same whatever the target's
diagnosis (the attacker's guess cannot depend on it); in DP mode the class sums are noisy
at the scale of the bounds, and a guess is right at most e^eps / (1 + e^eps) (here eps is
twice the charge: the two worlds differ by the target's outcome, a change of one record).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.computations.join_attack_world import guess_bound, hit_rate, run, slack

RNG = np.random.default_rng(3)
N = 200
DIAGNOSIS = (RNG.random(N) < 0.3).astype(np.int64)
TARGETS = (10, 20, 30, 40)
BOUNDS = ["0", "1000000"]


def outcome(t: int, sick: bool) -> pa.Table:
    dx = DIAGNOSIS.copy()
    dx[t] = int(sick)
    return pa.table({"id": list(range(N)), "dx": dx})


def signal(t: int, others: np.ndarray) -> pa.Table:
    s = others.copy()
    s[t] = 1e6
    return pa.table({"id": list(range(N)), "s": s})


PARAMS = {"signal": "s", "signal_bounds": BOUNDS, "outcome": "dx"}


def guess(out: object) -> bool:
    """The attack: the target is sick when sick people have the higher mean signal."""
    estimate = out.effect.estimate  # type: ignore[attr-defined]
    return estimate is not None and float(estimate) > 0


@pytest.mark.parametrize("t", TARGETS)
def test_exact_a_planted_extreme_value_on_a_constant_background_tells_nothing(t: int) -> None:
    others = np.zeros(N)
    sick = run("association-test", [signal(t, others), outcome(t, True)], PARAMS)
    well = run("association-test", [signal(t, others), outcome(t, False)], PARAMS)
    # The one extreme value is coded to the level k people share (0): the signal is
    # constant and the test undefined, whatever the target's diagnosis.
    assert sick.effect.estimate is None
    assert sick == well


@pytest.mark.parametrize("t", TARGETS)
def test_exact_a_planted_extreme_value_hides_the_target_among_k_people(t: int) -> None:
    """On an ordinary background the target is coded to the top level, which k people share:
    swapping its diagnosis with an ordinary top person's gives the very same release, so no
    rule can tell which of them is sick."""
    others = np.round(RNG.uniform(0, 10, N), 3)
    j = int(np.argmax(np.where(np.arange(N) == t, -1.0, others)))
    dx = DIAGNOSIS.copy()
    dx[t], dx[j] = 1, 0
    first = pa.table({"id": list(range(N)), "dx": dx})
    dx[t], dx[j] = 0, 1
    swapped = pa.table({"id": list(range(N)), "dx": dx})
    a = run("association-test", [signal(t, others), first], PARAMS)
    b = run("association-test", [signal(t, others), swapped], PARAMS)
    assert a.effect.estimate is not None
    assert a == b


def test_dp_a_planted_extreme_value_is_within_the_noise() -> None:
    trials = 400
    dp = {**PARAMS, "dp": {"epsilon": "0.5"}}

    def world(sick: bool) -> object:
        world.calls += 1  # type: ignore[attr-defined]
        t = TARGETS[world.calls % len(TARGETS)]  # type: ignore[attr-defined]
        return run("association-test", [signal(t, np.zeros(N)), outcome(t, sick)], dp)

    world.calls = 0  # type: ignore[attr-defined]
    rate = hit_rate(world, guess, trials=trials)
    assert rate <= guess_bound(1.0) + slack(trials)


def test_the_insight_says_a_dp_release_is_dp_and_at_what_epsilon() -> None:
    dp = run(
        "association-test",
        [signal(10, np.zeros(N)), outcome(10, True)],
        {**PARAMS, "dp": {"epsilon": "0.5"}},
    )
    assert dp.insight.startswith(  # type: ignore[attr-defined]
        "differentially private release (epsilon 0.5 per entity of each input, at most 1 key(s) "
        "per entity): the signal "
    )
    assert "n ~ " in dp.insight
    assert "noisy statistics" in dp.insight
    exact = run("association-test", [signal(10, np.zeros(N)), outcome(10, True)], PARAMS)
    assert exact.insight.startswith("the signal ")  # type: ignore[attr-defined]
    assert "differentially private" not in exact.insight  # type: ignore[attr-defined]
    assert "n = " in exact.insight  # type: ignore[attr-defined]
