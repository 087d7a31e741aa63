"""The requester's attacks on intersection-sum and intersection-overlap (issue 11, classes 1, 5).

Class 1: the requester publishes an id list S, then S + {t}, and subtracts the two releases:
on main (1.1.0) that gave t's membership and value exactly (4 of 4 targets, to the cent).
Class 5: it correlates the owner's salaries with its own indicator of one id, and reads the
salary off r with the mean and spread from intersection-sum.

Now: in DP mode the two releases differ by noise that dominates t (any guess about t is
right at most e^eps / (1 + e^eps) of the time, eps = what the two requests cost); in exact
mode the owner's pins refuse S + {t}, and if the owner pinned both lists the enclave's
difference check refuses the second release; an indicator is top-coded away.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import default_registry
from sealroom.enclave.runner import JobFailed
from sealroom.enclave.state import EnclaveState
from sealroom.errors import PolicyDenied
from sealroom.policy.rules import PolicyRules, decide
from tests.computations.join_attack_world import (
    content_root,
    exact_job,
    exact_rules,
    guess_bound,
    hit_rate,
    run,
    slack,
)

RNG = np.random.default_rng(11)
N = 200
SALARY = pa.table({"id": list(range(N)), "salary": np.round(RNG.uniform(2e4, 1.5e5, N), 2)})
BOUNDS = ["0", "200000"]
S = pa.table({"id": list(range(40))})
TARGETS = (150, 151, 152, 153)
TRIALS = 400


def with_id(table: pa.Table, t: int) -> pa.Table:
    return pa.concat_tables([table, pa.table({"id": [t]})])


def without(table: pa.Table, t: int) -> pa.Table:
    return table.filter(pa.compute.not_equal(table.column("id"), t))


# --- class 1 in DP mode -------------------------------------------------------------------


def test_dp_sums_over_s_and_s_plus_t_hide_t() -> None:
    """Two requests at epsilon 0.5 each: about t they cost 1 together, so no guess whether
    the owner holds t (with the top salary) beats e / (1 + e) = 0.73; the difference of the
    two sums has standard deviation 2 x 3 (U - L) / eps = 12 x the whole salary range."""
    t = TARGETS[0]
    params = {"value": "salary", "value_input": "a", "value_bounds": BOUNDS}
    dp = {**params, "dp": {"epsilon": "0.5"}}
    rich = SALARY.set_column(1, "salary", pa.array([2e5] * N))

    def world(holds_t: bool) -> float:
        owner = rich if holds_t else without(rich, t)
        first = run("intersection-sum", [owner, S], dp)
        second = run("intersection-sum", [owner, with_id(S, t)], dp)
        return float(second.sum) - float(first.sum)

    differences = [world(True) for _ in range(200)]
    noise_sd = 2 * 3 * 200_000 / 0.5
    assert 0.75 * noise_sd < float(np.std(differences)) < 1.25 * noise_sd
    rate = hit_rate(world, lambda diff: diff > 100_000, trials=TRIALS)
    assert rate <= guess_bound(1.0) + slack(TRIALS)


def test_dp_overlaps_of_s_and_s_plus_t_hide_membership() -> None:
    t = TARGETS[1]
    dp = {"dp": {"epsilon": "0.5"}}

    def world(holds_t: bool) -> int:
        owner = SALARY if holds_t else without(SALARY, t)
        first = run("intersection-overlap", [owner, S], dp)
        second = run("intersection-overlap", [owner, with_id(S, t)], dp)
        return int(second.overlap - first.overlap)

    rate = hit_rate(world, lambda diff: diff >= 1, trials=TRIALS)
    assert rate <= guess_bound(1.0) + slack(TRIALS)


# --- class 1 in exact mode: the pins, then the difference check ----------------------------

ISUM = {"value": "salary", "value_input": "a", "value_bounds": BOUNDS}


def test_an_exact_release_for_s_plus_t_is_refused_by_the_owners_pins() -> None:
    c = default_registry().get("intersection-sum")
    rules = PolicyRules.parse(exact_rules("intersection-sum", ISUM, [S], k=10, entity_column="id"))
    params = c.parse_params(ISUM)
    for partner, allowed in ((S, True), (with_id(S, TARGETS[0]), False)):
        decision = decide(
            rules,
            computation=c,
            request=c.request_shape(params, partners=[content_root(partner)]),
            requester="mallory",
        )
        assert decision.allowed is allowed, decision.reason
    assert "rule exact-partners-pinned" in decision.reason


CASES: dict[str, tuple[dict[str, Any], pa.Table, pa.Table]] = {
    # computation: (params, owner's table (input a), the attacker's list S as input b)
    "intersection-sum": (ISUM, SALARY, S),
    "intersection-overlap": ({}, SALARY, S),
    "correlation": (
        {"x": "salary", "y": "y", "x_bounds": BOUNDS, "y_bounds": ["0", "100"]},
        SALARY,
        S.append_column("y", pa.array([float(i % 7) for i in range(40)])),
    ),
}


@pytest.mark.parametrize("computation", sorted(CASES))
def test_pinned_lists_s_and_s_plus_t_the_second_release_is_refused_by_the_enclave(
    tmp_path: Path, computation: str
) -> None:
    params, owner, first = CASES[computation]
    extra = {name: [7.0] for name in first.column_names if name != "id"}
    second = pa.concat_tables([first, pa.table({"id": [TARGETS[0]], **extra})]).cast(first.schema)
    # The owner was persuaded to pin both lists: the history is the last line of defence.
    rules = exact_rules(computation, params, [first, second], k=5, entity_column="id")
    state = EnclaveState.in_directory(tmp_path)
    try:
        common = {"owner_table": owner, "owner_rules": rules, "params": params, "owner_index": 0}
        exact_job(state, computation, partner_table=first, tag=1, **common)
        with pytest.raises(JobFailed) as info:
            exact_job(state, computation, partner_table=second, tag=2, **common)
        assert info.value.step == "history"
        assert isinstance(info.value.cause, PolicyDenied)
        assert "rule difference-check" in info.value.reason
        # The same release again tells nothing new and passes.
        exact_job(state, computation, partner_table=first, tag=3, **common)
    finally:
        state.close()


def test_an_exact_release_below_k_reaches_the_requester_as_its_rule_name_only(
    tmp_path: Path,
) -> None:
    few = pa.table({"id": [1, 2, 3]})
    rules = exact_rules("intersection-sum", ISUM, [few], k=5, entity_column="id")
    state = EnclaveState.in_directory(tmp_path)
    try:
        with pytest.raises(JobFailed) as info:
            exact_job(
                state,
                "intersection-sum",
                owner_table=SALARY,
                owner_rules=rules,
                partner_table=few,
                params=ISUM,
                owner_index=0,
                tag=1,
            )
    finally:
        state.close()
    assert info.value.step == "compute"
    assert isinstance(info.value.cause, PolicyDenied)
    assert info.value.cause.rule == "k-threshold"
    assert "under rule k-threshold" in info.value.reason
    assert "threshold of" not in info.value.reason  # the detail stays in the enclave


# --- class 5: an indicator of one id ------------------------------------------------------


def indicator(t: int) -> pa.Table:
    return pa.table({"id": list(range(N)), "y": [float(i == t) for i in range(N)]})


def reconstruct(corr: Any, isum: Any) -> float | None:
    """The attack: x_t = mean + r * sd * sqrt(n - 1), sd read off the interval's width."""
    if corr.pearson.estimate is None or isum.ci_low is None or isum.ci_high is None:
        return None
    n = isum.overlap
    from scipy import stats

    sd = (float(isum.ci_high) - float(isum.ci_low)) / 2 * math.sqrt(n) / stats.t.ppf(0.975, n - 1)
    sigma = sd * math.sqrt((n - 1) / n)
    return float(isum.mean_per_id) + float(corr.pearson.estimate) * sigma * math.sqrt(n - 1)


CORR = {"x": "salary", "y": "y", "x_bounds": BOUNDS, "y_bounds": ["0", "1"]}
SUM = {"value": "salary", "value_input": "a", "value_bounds": BOUNDS}


def test_the_reconstruction_recovers_a_salary_when_nothing_stops_it() -> None:
    """The attack itself works on the plain statistics (the 1.1.0 releases): a guard that
    the tests below would notice it."""
    x = SALARY.column("salary").to_numpy()
    for t in TARGETS:
        y = np.array([float(i == t) for i in range(N)])
        r = float(np.corrcoef(x, y)[0, 1])
        sd = float(np.std(x, ddof=1))
        sigma = sd * math.sqrt((N - 1) / N)
        assert abs(float(np.mean(x)) + r * sigma * math.sqrt(N - 1) - x[t]) < 0.01


def test_exact_an_indicator_is_coded_away() -> None:
    for t in TARGETS:
        corr = run("correlation", [SALARY, indicator(t)], CORR)
        isum = run("intersection-sum", [SALARY, indicator(t)], SUM)
        # Its one 1 is not shared by k = 10 people: coded to 0, the side is constant.
        assert corr.pearson.estimate is None
        assert corr.spearman.estimate is None
        assert reconstruct(corr, isum) is None


def test_dp_an_indicator_gives_a_salary_only_to_within_the_noise() -> None:
    errors = []
    for t in TARGETS:
        truth = float(SALARY.column("salary")[t].as_py())
        for _ in range(25):
            corr = run("correlation", [SALARY, indicator(t)], {**CORR, "dp": {"epsilon": "1"}})
            isum = run("intersection-sum", [SALARY, indicator(t)], {**SUM, "dp": {"epsilon": "1"}})
            guess = reconstruct(corr, isum)
            errors.append(math.inf if guess is None else abs(guess - truth))
    # Not one salary to the cent, or even to within 1000; typically off by more than the
    # whole range of salaries (median about 1e6 at epsilon 1 per request).
    assert min(errors) > 1000
    assert float(np.median(errors)) > 100_000
