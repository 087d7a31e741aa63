"""Issue 11, class 3, end to end: exact order statistics.

On main (0bebc30) nine requester-chosen percentiles plus the sum of a group of exactly k
gave all k values (error 3e-11), and percentiles 1 and 99 released the minimum and maximum.

Now, under the README's policy the exact request is refused (``dp-required``); a DP
percentile is one of 101 public candidates on the bounds, never a person's value; an owner
who pins nine percentiles exactly gets no percentile for a group of exactly k, and an owner
who pins 1 and 99 gets order statistics with k entities of every party on each side, never
an end of the data.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.attacks.attack_world import Folder, World, auto
from tests.client.analytics_e2e_world import exact_policy

K = 5
NINE = [10, 20, 30, 40, 50, 60, 70, 80, 90]
BUDGET = {
    "epsilon_per_requester": "3",
    "epsilon_total": "3",
    "delta_per_requester": "0.0001",
    "delta_total": "0.001",
}


def scores() -> list[dict[str, Any]]:
    """Team red has exactly k = 5 people; blue and green 150 each. Scores are off any grid."""
    rows = []
    for i in range(305):
        team = "red" if i < K else ("blue" if i < 155 else "green")
        rows.append({"id": i, "team": team, "score": round(10.001 + (i * 0.2917) % 80, 3)})
    return rows


def own_rows() -> list[dict[str, Any]]:
    """What the attacker stacks: k of its own people per team, with scores it knows."""
    return [
        {"id": 1000 + 10 * t + j, "team": team, "score": 50.0}
        for t, team in enumerate(("red", "blue", "green"))
        for j in range(K)
    ]


def test_percentiles_are_dp_by_default_and_never_a_persons_value(
    world: World, files: Folder
) -> None:
    victim = world.publish(
        "c3-school",
        files.csv("scores", scores()),
        auto("aggregate-stats", k=K, entity_column="id", dp=BUDGET),
    )
    mine = world.publish(
        "c3-mallory", files.csv("own", own_rows()), auto("aggregate-stats", dp=BUDGET)
    )
    params = {"value": "score", "group_by": ["team"], "percentiles": NINE}
    assert world.ask("c3-mallory", "aggregate-stats", [victim, mine], params).refused_by(
        "rule dp-required"
    )
    # Nine DP percentiles cannot be calibrated at epsilon / 11 each with partition
    # selection (refused, invalid_input); three can.
    dp = {"epsilon": "1", "delta": "0.00001", "lower": "0", "upper": "100"}
    params["percentiles"] = [10, 50, 90]
    grid = {Decimal(c) for c in range(0, 101)}  # 101 candidates evenly over [0, 100]
    values = {Decimal(str(r["score"])) for r in scores()}
    for _ in range(3):
        body = world.ask("c3-mallory", "aggregate-stats", [victim, mine], {**params, "dp": dp})
        released = [
            Decimal(p["value"])
            for g in body.released["groups"]
            for p in g["stats"]["percentiles"]
            if p["value"] is not None
        ]
        assert released
        assert set(released) <= grid
        assert not set(released) & values


def test_pinned_exact_percentiles_release_no_value_of_a_group_of_k_and_no_ends(
    world: World, files: Folder
) -> None:
    nine = {"value": "score", "group_by": ["team"], "percentiles": NINE}
    ends = {"value": "score", "group_by": ["team"], "percentiles": [1, 50, 99]}
    rules = exact_policy("aggregate-stats", nine, k=K, entity_column="id")
    rules["allow"] += exact_policy("aggregate-stats", ends, k=K, entity_column="id")["allow"]
    victim = world.publish("c3-careless", files.csv("scores", scores()), rules)
    mine = world.publish("c3-eve", files.csv("own", own_rows()), None)

    body = world.ask("c3-eve", "aggregate-stats", [victim, mine], nine).released
    red = next(g for g in body["groups"] if g["key"] == ["red"])
    assert [p["value"] for p in red["stats"]["percentiles"]] == [None] * 9
    assert red["stats"]["sum"] is not None  # the sum alone gives no single value

    body = world.ask("c3-eve", "aggregate-stats", [victim, mine], ends).released
    for g in body["groups"]:
        team = [r["score"] for r in scores() if r["team"] == g["key"][0]]
        stacked = team + [50.0] * K
        got = {p["p"]: p["value"] for p in g["stats"]["percentiles"]}
        for p in (1, 99):
            if got[p] is not None:
                v = float(got[p])
                assert sum(x < v for x in team) >= K
                assert sum(x > v for x in team) >= K
                assert min(stacked) < v < max(stacked)
    # Percentiles the owner did not pin are refused before anyone is asked.
    other = {**ends, "percentiles": [1, 2, 98, 99]}
    assert world.ask("c3-eve", "aggregate-stats", [victim, mine], other).refused_by(
        "rule exact-shape-pinned"
    )
