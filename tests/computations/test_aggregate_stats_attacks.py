"""aggregate-stats from the attacker's side: each attack of issue 11 against this computation.

The attacker is the requester: it chooses parameters, may stack an input of its own
(``party 2`` here) next to the protected one (``party 1``), and asks as often as it
likes. Each test runs the attack and asserts that it no longer recovers the target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.aggregate_stats import AggregateStatsOutput, dp_mechanism
from sealroom.enclave.history import FootprintScope, SqlReleaseHistory
from sealroom.errors import PolicyDenied
from sealroom.policy import PolicyRules
from sealroom.policy.rules import decide

AGG = default_registry().get("aggregate-stats")
K = 5
TARGET = 4242
TARGET_SALARY = 123_456.0


def people() -> tuple[pa.Table, pa.Table]:
    """The protected party: region north has 11 women and one man (the target); south has
    40 people. The attacker's own party: 6 men and 6 women in each region."""
    rng = np.random.default_rng(11)
    ids = [*range(1, 12), TARGET, *range(100, 140)]
    region = ["north"] * 12 + ["south"] * 40
    sex = ["F"] * 11 + ["M"] + ["F", "M"] * 20
    salary = rng.uniform(30_000, 90_000, len(ids)).round(2).tolist()
    salary[11] = TARGET_SALARY
    protected = pa.table({"id": ids, "region": region, "sex": sex, "salary": salary})
    mine = pa.table(
        {
            "id": list(range(10_000, 10_024)),
            "region": ["north"] * 12 + ["south"] * 12,
            "sex": ["F", "M"] * 12,
            "salary": [50_000.0] * 24,
        }
    )
    return protected, mine


def exact(tables: list[pa.Table], **params: Any) -> tuple[AggregateStatsOutput, Any]:
    privacy = PrivacyContext(k=(K, K), entity_columns=("id", "id"))
    out, footprint = AGG.execute(tables, AGG.parse_params(params), privacy)
    assert isinstance(out, AggregateStatsOutput)
    return out, footprint


def dp_run(tables: list[pa.Table], **params: Any) -> AggregateStatsOutput:
    parsed = AGG.parse_params(params)
    privacy = PrivacyContext(k=(K, K), entity_columns=("id", "id"), cost=AGG.cost(parsed))
    out = AGG.run(tables, parsed, privacy)
    assert isinstance(out, AggregateStatsOutput)
    return out


def group_sum(out: AggregateStatsOutput, key: tuple[str, ...]) -> float | None:
    for g in out.groups:
        if g.key == key and g.stats.sum is not None:
            return float(g.stats.sum)
    return None


@pytest.fixture
def history(tmp_path: Path) -> Iterator[SqlReleaseHistory]:
    h = SqlReleaseHistory.in_directory(tmp_path)
    yield h
    h.close()


def scopes(footprint: Any) -> list[FootprintScope]:
    return [
        FootprintScope(scope=f"party{i}:id", k=K, cells=cells)
        for i, cells in enumerate(footprint.cells)
        if cells
    ]


# --- class 1: differencing with group_by [region] then [region, sex] -------------------


def test_region_then_region_and_sex_exact_is_refused_by_the_difference_check(
    history: SqlReleaseHistory,
) -> None:
    protected, mine = people()
    by_region, first = exact([protected, mine], value="salary", group_by=["region"])
    by_sex, second = exact([protected, mine], value="salary", group_by=["region", "sex"])
    # Each release alone passes its thresholds: the target's (north, M) cell is suppressed...
    assert ("north", "M") not in [g.key for g in by_sex.groups]
    north, north_f = group_sum(by_region, ("north",)), group_sum(by_sex, ("north", "F"))
    assert north is not None
    assert north_f is not None
    # ...and yet the two together give the target's salary to the cent.
    assert north - north_f - 6 * 50_000.0 == pytest.approx(TARGET_SALARY)
    # The enclave keeps the first release's footprint and refuses the second one.
    history.check_and_record(scopes(first), request="first", now=1)
    with pytest.raises(PolicyDenied, match="rule difference-check"):
        history.check_and_record(scopes(second), request="second", now=2)


def test_region_then_region_and_sex_exact_is_refused_by_the_pinned_shape() -> None:
    pinned = {
        "value": "salary",
        "group_by": ["region"],
        "period": None,
        "percentiles": [25, 50, 75],
    }
    rules = PolicyRules.parse(
        {"allow": [{"id": "aggregate-stats", "dp": "off", "pinned": {"params": pinned}}], "k": K}
    )

    def ask(params: Mapping[str, Any]) -> str:
        shape = AGG.request_shape(AGG.parse_params(params), partners=[])
        return decide(rules, computation=AGG, request=shape, requester="sr1x").reason

    assert "pinned shape" in ask({"value": "salary", "group_by": ["region"]})
    refused = ask({"value": "salary", "group_by": ["region", "sex"]})
    assert refused.startswith("rule exact-shape-pinned: parameter 'group_by' is pinned")


def test_region_then_region_and_sex_with_dp_does_not_recover_the_target() -> None:
    protected, mine = people()
    dp = {"epsilon": "1", "delta": "0.000001", "lower": "0", "upper": "200000"}
    errors = []
    for _ in range(20):
        by_region = dp_run([protected, mine], value="salary", group_by=["region"], dp=dp)
        by_sex = dp_run([protected, mine], value="salary", group_by=["region", "sex"], dp=dp)
        north, north_f = group_sum(by_region, ("north",)), group_sum(by_sex, ("north", "F"))
        if north is None or north_f is None:
            errors.append(np.inf)  # a group the attack needs did not even appear
            continue
        errors.append(abs(north - north_f - 6 * 50_000.0 - TARGET_SALARY))
    # Within 10% of the salary in at most a few of 20 tries (noise scale 400,000 per sum).
    assert sum(e < 0.1 * TARGET_SALARY for e in errors) <= 4, errors


# --- class 3: exact order statistics ---------------------------------------------------


def test_nine_percentiles_and_a_sum_of_a_group_of_exactly_k_release_no_value() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(10, 1000, K).round(2).tolist()
    protected = pa.table({"id": list(range(K)), "g": ["x"] * K, "v": values})
    # The attacker stacks rows below and above the group to move the percentiles around.
    mine = pa.table(
        {
            "id": list(range(100, 120)),
            "g": ["x"] * 20,
            "v": [0.0] * 10 + [10_000.0] * 10,
        }
    )
    out, _ = exact([protected, mine], value="v", percentiles=list(range(10, 100, 10)))
    percentiles = out.overall.percentiles
    assert len(percentiles) == 9
    assert all(p.value is None for p in percentiles)
    released = {p.value for p in percentiles} | {out.overall.sum, out.overall.mean}
    assert not {f"{v:.2f}".rstrip("0").rstrip(".") for v in values} & released


def test_percentiles_1_and_99_never_release_the_minimum_or_maximum() -> None:
    rng = np.random.default_rng(4)
    n = 200
    values = rng.uniform(0, 1000, n).round(3)
    protected = pa.table({"id": list(range(n)), "g": ["x"] * n, "v": values.tolist()})
    theirs = rng.uniform(0, 1000, n).round(3).tolist()
    mine = pa.table({"id": list(range(1000, 1000 + n)), "g": ["x"] * n, "v": theirs})
    out, _ = exact([protected, mine], value="v", percentiles=[1, 50, 99])
    by_p = {p.p: p.value for p in out.overall.percentiles}
    assert by_p[1] is None
    assert by_p[99] is None
    assert by_p[50] is not None  # the middle is released (at least k on each side)
    extremes = {values.min(), values.max()}
    assert not any(v is not None and float(v) in extremes for v in by_p.values())


# --- class 7: group presence and suppressed_groups as a membership oracle ---------------


def test_exact_group_presence_is_the_same_with_or_without_a_lone_member() -> None:
    protected, mine = people()
    without = protected.filter(pa.compute.not_equal(protected.column("id"), TARGET))
    # The attacker puts k rows of its own in the target's cell, hoping it appears only
    # when the protected party has nobody there.
    args = {"value": "salary", "group_by": ["region", "sex"]}
    with_target, _ = exact([protected, mine], **args)
    without_target, _ = exact([without, mine], **args)
    assert with_target == without_target


def test_dp_group_presence_does_not_reveal_a_lone_member() -> None:
    protected, mine = people()
    alone = pa.table(
        {
            "id": [TARGET],
            "region": ["east"],
            "sex": ["M"],
            "salary": [TARGET_SALARY],
        }
    ).cast(protected.schema)
    dp = {"epsilon": "1", "delta": "0.000001", "lower": "0", "upper": "200000"}
    params = AGG.parse_params(
        {"value": "salary", "group_by": ["region"], "percentiles": [], "dp": dp}
    )
    privacy = PrivacyContext(k=(K, K), entity_columns=("id", "id"), cost=AGG.cost(params))
    release = dp_mechanism([pa.concat_tables([protected, alone]), mine], params, privacy).release
    seen = 0
    for _ in range(300):
        out = release()
        assert out.suppressed_groups is None
        assert out.k is None
        seen += ("east",) in [g.key for g in out.groups]
    assert seen == 0  # at most delta = 1e-6 per run


def test_an_owner_that_requires_dp_never_answers_exactly() -> None:
    rules = PolicyRules.parse(
        {
            "allow": [{"id": "aggregate-stats"}],
            "k": K,
            "dp": {
                "epsilon_per_requester": "1",
                "epsilon_total": "1",
                "delta_per_requester": "0.000001",
                "delta_total": "0.000001",
            },
        }
    )
    shape = AGG.request_shape(AGG.parse_params({"value": "salary"}), partners=[])
    refused = decide(rules, computation=AGG, request=shape, requester="sr1x")
    assert not refused.allowed
    assert refused.reason.startswith("rule dp-required")
    dp_params = AGG.parse_params(
        {"value": "salary", "dp": {"epsilon": "1", "lower": "0", "upper": "1"}}
    )
    allowed = decide(
        rules,
        computation=AGG,
        request=AGG.request_shape(dp_params, partners=[]),
        requester="sr1x",
        cost=AGG.cost(dp_params),
    )
    assert allowed.allowed
    assert AGG.cost(dp_params).epsilon == Decimal(1)
