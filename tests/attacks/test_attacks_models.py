"""Issue 11, class 6, end to end: models that memorise.

On main (0bebc30) train-model with 50 indicator features (each the indicator of one
employee, in the requester's own table) and ``test_fraction 0`` released 50 of 50 salaries
to the cent (intercept + coefficient); its DP mode protected rows, not entities, and
released exact row counts.

Now, under the README's policy the exact fit is refused at the pre-check (``dp-required``);
the DP fit (entity-level, truncated to ``max_rows_per_entity``) releases coefficients whose
reconstructions miss every salary by more than the largest salary, and no exact count; an
owner persuaded to pin the attacker's indicators gets a refusal naming the rule, in the
enclave.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from tests.attacks.attack_world import Folder, World, auto
from tests.client.analytics_e2e_world import exact_policy

N = 400
TARGETS = 50
FEATURES = [f"is_{t}" for t in range(TARGETS)]


def salaries() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    pay = np.round(rng.lognormal(np.log(60_000), 0.35, N), 2)
    return [{"id": i, "salary": float(pay[i])} for i in range(N)]


def indicators() -> list[dict[str, Any]]:
    return [{"id": i, **{f: float(i == t) for t, f in enumerate(FEATURES)}} for i in range(N)]


EXACT = {
    "family": "gaussian",
    "layout": "join",
    "id_column": "id",
    "target": "salary",
    "features": FEATURES,
    "test_fraction": "0",
}
BOUNDS = {f: ["0", "1"] for f in FEATURES} | {"salary": ["0", "300000"]}


def test_fifty_indicators_recover_no_salary(world: World, files: Folder) -> None:
    budget = {"epsilon_per_requester": "3", "epsilon_total": "3"}
    hr = world.publish(
        "c6-hr",
        files.csv("salaries", salaries()),
        auto("train-model", k=10, entity_column="id", dp=budget),
    )
    mine = world.publish(
        "c6-mallory",
        files.csv("indicators", indicators()),
        auto("train-model", dp={"epsilon_per_requester": "50", "epsilon_total": "50"}),
    )
    assert world.ask("c6-mallory", "train-model", [hr, mine], EXACT).refused_by("rule dp-required")
    truth = np.array([r["salary"] for r in salaries()[:TARGETS]])
    misses = []
    for _ in range(3):
        body = world.ask(
            "c6-mallory",
            "train-model",
            [hr, mine],
            {**EXACT, "dp": {"epsilon": "1", "bounds": BOUNDS}},
        ).released
        assert body["rows_train"] is None  # no exact count next to DP coefficients
        assert all(i["rows_used"] is None for i in body["inputs"])
        est = np.array([float(c["estimate"]) for c in body["coefficients"]])
        guesses = est[0] + est[1:]
        assert np.sum(np.abs(guesses - truth) < 0.1 * truth) <= 5
        misses.append(float(np.median(np.abs(guesses - truth))))
    # The typical reconstruction misses by more than the largest salary (in 40 direct runs
    # on this data the smallest median miss was 11 times it, the typical one 150 times).
    assert statistics.median(misses) > truth.max()


def test_a_persuaded_owner_pinning_the_indicators_is_refused_in_the_enclave(
    world: World, files: Folder
) -> None:
    path = files.csv("indicators", indicators())
    rules = exact_policy("train-model", EXACT, [path], k=10, entity_column="id")
    hr = world.publish("c6-persuaded", files.csv("salaries", salaries()), rules)
    mine = world.publish("c6-eve", path, None)
    answer = world.ask("c6-eve", "train-model", [hr, mine], EXACT)
    assert answer.where == "enclave"
    assert any(
        answer.refused is not None and f"under rule {rule}" in answer.refused
        for rule in ("parameter-bound", "influence-bound")
    ), answer.refused
