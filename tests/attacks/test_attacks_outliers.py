"""Issue 11, class 5, end to end: planted outliers and per-person selectors.

On main (0bebc30) a requester-supplied column with one extreme value on a target revealed
the target's diagnosis through association-test (4 of 4), and an indicator of one id,
correlated with the owner's salaries next to intersection-sum's mean and interval, gave the
target's exact salary (x_t = mean + r sd sqrt(n - 1)).

Now, under the README's policy both exact questions are refused at the pre-check
(``dp-required``), and in DP the target's whole influence on each noisy moment is a fraction
of its noise scale (bounds clip the plant; the guessing games over many runs are in
tests/computations/test_computations_*_attacks.py). An owner persuaded to pin the
attacker's file for an exact release gets the plant top-coded to a level k of its people
share: the indicator becomes a constant, and the releases for a diagnosed and an
undiagnosed target are the same bytes.
"""

from __future__ import annotations

from typing import Any

from tests.attacks.attack_world import Folder, World, auto
from tests.client.analytics_e2e_world import exact_policy

N = 100
DIAGNOSED, HEALTHY = 7, 8
BUDGET = {"epsilon_per_requester": "2", "epsilon_total": "4"}
MINE_BUDGET = {"epsilon_per_requester": "50", "epsilon_total": "50"}


def patients() -> list[dict[str, Any]]:
    return [
        {"id": i, "diagnosis": int(i == DIAGNOSED or i % 4 == 0), "salary": 30_000.0 + 811.0 * i}
        for i in range(N)
    ]


def planted(target: int) -> list[dict[str, Any]]:
    """The attacker's signal: 0 for everyone, 1000 for the target."""
    return [{"id": i, "s": 1000.0 if i == target else 0.0} for i in range(N)]


ASSOC = {
    "signal": "s",
    "signal_bounds": ["0", "1000"],
    "outcome": "diagnosis",
    "outcome_type": "binary",
}
CORR = {"x": "salary", "y": "s", "x_bounds": ["0", "150000"], "y_bounds": ["0", "1000"]}


def test_the_plant_and_the_indicator_are_dp_by_default(world: World, files: Folder) -> None:
    rules = auto("association-test", k=10, entity_column="id", dp=BUDGET)
    rules["allow"].append({"id": "correlation"})
    rules["auto_approve"].append({"id": "correlation"})
    clinic = world.publish("c5-clinic", files.csv("patients", patients()), rules)
    mine_rules = auto("association-test", dp=MINE_BUDGET)
    mine_rules["allow"].append({"id": "correlation"})
    mine_rules["auto_approve"].append({"id": "correlation"})
    mine = world.publish("c5-mallory", files.csv("plant", planted(DIAGNOSED)), mine_rules)
    assert world.ask("c5-mallory", "association-test", [mine, clinic], ASSOC).refused_by(
        "rule dp-required"
    )
    assert world.ask("c5-mallory", "correlation", [clinic, mine], CORR).refused_by(
        "rule dp-required"
    )
    body = world.ask(
        "c5-mallory", "association-test", [mine, clinic], {**ASSOC, "dp": {"epsilon": "1"}}
    ).released
    assert body["statistic"] is None
    # The plant is clipped to the bounds: the target moves a class's sum of the centred
    # signal by at most 500 (and its square by 250,000); each noise scale is larger.
    scales = {s["name"]: float(s["scale"]) for s in body["dp"]["statistics"]}
    assert scales.keys() == {"classes", "s1", "s0", "q1", "q0"}
    assert min(scales["s1"], scales["s0"]) >= 5 * 500
    assert min(scales["q1"], scales["q0"]) >= 5 * 500**2
    corr = world.ask(
        "c5-mallory", "correlation", [clinic, mine], {**CORR, "dp": {"epsilon": "1"}}
    ).released
    assert corr["spearman"] is None  # ranks have no sensitivity bound: never in DP
    xy = next(s for s in corr["dp"]["statistics"] if s["name"] == "sxy")
    # The target's whole term in the centred sum of x y is at most 75,000 x 500.
    assert float(xy["scale"]) >= 5 * 75_000 * 500


def test_a_persuaded_owner_codes_the_plant_to_a_level_k_people_share(
    world: World, files: Folder
) -> None:
    answers = []
    for target in (DIAGNOSED, HEALTHY):
        path = files.csv(f"plant_{target}", planted(target))
        rules = exact_policy("association-test", ASSOC, [path], k=10, entity_column="id")
        clinic = world.publish(
            f"c5-persuaded-{target}", files.csv(f"patients_{target}", patients()), rules
        )
        # One identity per target: two near-identical files of one publisher without an
        # entity column would meet in the history (its own rows are protected too).
        name = f"c5-eve-{target}"
        mine = world.publish(name, path, None)
        answers.append(world.ask(name, "association-test", [mine, clinic], ASSOC))
    # The target's diagnosis changes nothing the attacker sees: the plant is coded to the
    # level the tenth-largest signal holds (0), so the signal is constant and no effect leaves.
    assert answers[0] == answers[1]
    assert answers[0].released["effect"]["estimate"] is None
    assert answers[0].released["statistic"] is None

    path = files.csv("indicator", planted(DIAGNOSED))
    rules = exact_policy("correlation", CORR, [path], k=10, entity_column="id")
    hr = world.publish("c5-hr", files.csv("salaries", patients()), rules)
    mine = world.publish("c5-eve", path, None)
    corr = world.ask("c5-eve", "correlation", [hr, mine], CORR).released
    assert corr["pearson"]["estimate"] is None  # the indicator, coded, is a constant
    assert corr["spearman"]["estimate"] is None
