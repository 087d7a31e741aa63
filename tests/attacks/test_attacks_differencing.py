"""Issue 11, class 1, end to end: differencing with the requester's own inputs.

On main (0bebc30) the requester published an id list S and S + {t}, asked intersection-sum
twice, and read t's salary off the difference (4 of 4 targets to the cent); aggregate-stats
``group_by [region]`` then ``[region, sex]`` gave a suppressed person's value by subtraction.

Now, with the README's policy (computation allowed and approved automatically, k = 10 on the
person id, a DP budget) the exact questions are refused at the pre-check (``dp-required``);
the DP answers carry noise whose spread dwarfs t's salary, so the attacker's estimate of
t misses by more than t's whole salary in most pairs (asserted over many pairs); the total
budget binds whatever the number of identities. An owner who pins an exact shape is asked
exactly that; an owner persuaded to pin both S and S + {t} is saved by the enclave's
difference check.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attacks.attack_world import Folder, World, auto, more_than_half_below
from tests.client.analytics_e2e_world import exact_policy

N = 60
TARGET = 45
TARGET_SALARY = 60_000.0
BOUNDS = ["0", "250000"]  # the attacker cannot clip a salary it does not know


def salaries() -> list[dict[str, Any]]:
    return [
        {"id": i, "salary": TARGET_SALARY if i == TARGET else 30_000.0 + 1_000 * i}
        for i in range(N)
    ]


def id_list(ids: range | list[int]) -> list[dict[str, Any]]:
    return [{"id": i} for i in ids]


S = list(range(30))
S_PLUS_T = [*S, TARGET]
ISUM = {"value": "salary", "value_input": "a", "value_bounds": BOUNDS}
MINE = auto("intersection-sum", dp={"epsilon_per_requester": "1000", "epsilon_total": "1000"})


def test_dp_by_default_intersection_sum_s_and_s_plus_t(world: World, files: Folder) -> None:
    budget = {"epsilon_per_requester": "1", "epsilon_total": "8"}
    victim = world.publish(
        "c1-hr",
        files.csv("salaries", salaries()),
        auto("intersection-sum", k=10, entity_column="id", dp=budget),
    )
    # The original attack, exactly as it was run: refused before anyone is asked.
    s = world.publish("c1-mallory", files.csv("s", id_list(S)), MINE)
    st = world.publish("c1-mallory", files.csv("s_t", id_list(S_PLUS_T)), MINE)
    for mine in (s, st):
        answer = world.ask("c1-mallory", "intersection-sum", [victim, mine], ISUM)
        assert answer.refused_by("rule dp-required") == "coordinator"

    # With DP: eight identities (registration is free) ask the pair at epsilon 0.5 each, the
    # per-requester budget of 1; the ninth finds the total budget spent.
    dp = {**ISUM, "dp": {"epsilon": "0.5"}}
    misses = []
    for i in range(8):
        name = f"c1-sybil-{i}"
        first = world.ask(name, "intersection-sum", [victim, s], dp).released
        second = world.ask(name, "intersection-sum", [victim, st], dp).released
        sum_scale = float(first["dp"]["statistics"][1]["scale"])
        assert sum_scale == pytest.approx(3 * 250_000 / 0.5)  # the bounds over epsilon / 3
        assert (first["rows"], first["mean_per_row"]) == (None, None)
        misses.append(abs(float(second["sum"]) - float(first["sum"]) - TARGET_SALARY))
    spent = world.ask("c1-sybil-8", "intersection-sum", [victim, s], dp)
    assert spent.refused_by("rule dp-budget") == "enclave"

    # Each estimate is the difference of two Laplace draws of scale b = 1.5e6: it lands within
    # t's whole salary c = 6e4 of the truth with probability at most c / (2 b) = 0.02 (the
    # density of the difference peaks at 1 / (4 b)). Five of the eight misses are below c
    # with probability below 1e-6: most pairs miss by more than t's whole salary.
    assert more_than_half_below(8, TARGET_SALARY / (2 * sum_scale)) < 1e-6
    misses.sort()
    assert misses[4] > TARGET_SALARY


def test_exact_pins_refuse_s_plus_t_and_the_history_refuses_a_persuaded_owner(
    world: World, files: Folder
) -> None:
    s_path = files.csv("s", id_list(S))
    st_path = files.csv("s_t", id_list(S_PLUS_T))
    rows = files.csv("salaries", salaries())
    # An owner who answers S exactly (pinned by content root): S + {t} is another question.
    pinned = exact_policy("intersection-sum", ISUM, [s_path], k=10, entity_column="id")
    victim = world.publish("c1-shop", rows, pinned)
    # The attacker's own lists carry no policy: it approves its own inputs by hand.
    s = world.publish("c1-eve", s_path, None)
    st = world.publish("c1-eve", st_path, None)
    first = world.ask("c1-eve", "intersection-sum", [victim, s], ISUM).released
    assert first["overlap"] == len(S)
    refused = world.ask("c1-eve", "intersection-sum", [victim, st], ISUM)
    assert refused.refused_by("rule exact-partners-pinned") == "coordinator"

    # An owner persuaded to pin both lists: the enclave refuses the second release.
    both = exact_policy("intersection-sum", ISUM, [s_path, st_path], k=10, entity_column="id")
    victim = world.publish("c1-bank", rows, both)
    assert world.ask("c1-eve", "intersection-sum", [victim, s], ISUM).released["overlap"] == 30
    second = world.ask("c1-eve", "intersection-sum", [victim, st], ISUM)
    assert second.refused_by("difference-check") == "enclave"
    # The same question from another identity, after the owner republishes: still refused
    # (the history's scope is the owner and its entity column, across every requester).
    again = world.publish("c1-bank", files.csv("salaries_v2", salaries()[::-1]), both)
    other = world.publish("c1-eve-2", st_path, None)
    third = world.ask("c1-eve-2", "intersection-sum", [again, other], ISUM)
    assert third.refused_by("difference-check")


def people() -> list[dict[str, Any]]:
    """40 people in two regions; in the north only one woman (the target, id 7)."""
    rows = []
    for i in range(40):
        region = "north" if i < 20 else "south"
        sex = "f" if (i == 7 or (region == "south" and i % 2 == 0)) else "m"
        rows.append(
            {"id": i, "region": region, "sex": sex, "spend": 100.0 + (900.0 if i == 7 else i)}
        )
    return rows


def test_aggregate_stats_finer_group_by_minus_coarser(world: World, files: Folder) -> None:
    budget = {
        "epsilon_per_requester": "2",
        "epsilon_total": "4",
        "delta_per_requester": "0.0001",
        "delta_total": "0.001",
    }
    victim = world.publish(
        "c1-store",
        files.csv("people", people()),
        auto("aggregate-stats", k=10, entity_column="id", dp=budget),
    )
    # aggregate-stats stacks the rows of two or more parties: the attacker brings its own.
    own = [{"id": 1000 + i, "region": "south", "sex": "m", "spend": 50.0} for i in range(12)]
    mine = world.publish(
        "c1-trudy",
        files.csv("own", own),
        auto("aggregate-stats", dp={**budget, "epsilon_total": "100"}),
    )
    coarse = {"value": "spend", "group_by": ["region"]}
    fine = {"value": "spend", "group_by": ["region", "sex"]}
    for shape in (coarse, fine):
        answer = world.ask("c1-trudy", "aggregate-stats", [victim, mine], shape)
        assert answer.refused_by("rule dp-required")
    # In DP the groups themselves are chosen by partition selection: no suppressed count,
    # no exact count, and the north women's group of one person does not appear.
    dp = {"epsilon": "1", "delta": "0.00001", "lower": "0", "upper": "1000"}
    for shape in (coarse, fine):
        body = world.ask(
            "c1-trudy", "aggregate-stats", [victim, mine], {**shape, "dp": dp}
        ).released
        assert body["suppressed_groups"] is None
        assert all(g["stats"]["entities"] is None for g in body["groups"])
        assert ["north", "f"] not in [g["key"] for g in body["groups"]]


def spend(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "region": "north", "spend": 100.0 + 7.0 * i} for i in range(n)]


@pytest.mark.parametrize("entity_column", ["id", None])
def test_asking_the_same_pinned_question_before_and_after_a_republish(
    world: World, files: Folder, entity_column: str | None
) -> None:
    """The attacker times its requests: the owner republishes with one more person. Without
    an entity column this passed on main: the history's scope was the dataset, and row
    numbers shift between versions; rows are now compared by content across the owner's
    datasets."""
    shape = {"value": "spend", "group_by": ["region"]}
    rules = exact_policy("aggregate-stats", shape, k=5, entity_column=entity_column)
    owner = f"c1-republisher-{entity_column}"
    own = [{"id": 1000 + i, "region": "north", "spend": 1.0} for i in range(5)]
    mine = world.publish("c1-timer", files.csv("own", own), None)
    before = world.publish(owner, files.csv("v1", spend(30)), rules)
    first = world.ask("c1-timer", "aggregate-stats", [before, mine], shape).released
    assert first["groups"]
    after = world.publish(owner, files.csv("v2", spend(31)), rules)
    second = world.ask("c1-timer", "aggregate-stats", [after, mine], shape)
    assert second.refused_by("difference-check") == "enclave"
