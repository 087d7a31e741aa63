"""DP SQL: exact privacy maps at the contribution bound, and audits of every statistic.

Neighbouring datasets differ by ONE ENTITY with five rows (the contribution bound); the
mutant is calibrated for one row per entity while five go in.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations import sql_aggregate as sqa
from sealroom.policy import dp_groups
from tests.dp_audit import audit_columns

SQL = default_registry().get("sql-aggregate")
RUNS = 700
ROWS = 5
RULES = {
    "aggregations": ["count", "sum", "avg"],
    "aggregate_columns": ["v"],
    "dimension_columns": ["g"],
    "identity_columns": ["id"],
    "join_columns": ["id"],
}
QUERY = "SELECT g, count(*) AS n, sum(v) AS total, avg(v) AS mean FROM a GROUP BY g"


def params(**dp: object) -> sqa.SqlAggregateParams:
    return SQL.parse_params(
        {
            "sql": QUERY,
            "dp": {
                "epsilon": "1",
                "delta": "0.000001",
                "bounds": {"a.v": ["0", "10"]},
                "max_rows_per_entity": ROWS,
                **dp,
            },
        }
    )


def privacy(p: sqa.SqlAggregateParams) -> PrivacyContext:
    return PrivacyContext(k=(5,), entity_columns=("id",), analysis=(RULES,), cost=SQL.cost(p))


def neighbours() -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(8)
    n = 400
    base = pa.table({"id": list(range(n)), "g": ["x"] * n, "v": rng.uniform(0, 10, n).tolist()})
    target = pa.table({"id": [7777] * ROWS, "g": ["x"] * ROWS, "v": [10.0] * ROWS})
    return pa.concat_tables([base, target]), base


def test_each_statistic_spends_its_share_at_the_declared_bound() -> None:
    p = params(epsilon="1.5", max_groups_per_entity=3)
    mech = sqa.dp_mechanism([neighbours()[0]], p, privacy(p))
    plan = mech.plan
    assert plan.bounds == dp_groups.Bounds(ROWS, 3)
    # COUNT(*), the sum of v, the count of v behind AVG: three statistics of 0.5 each.
    assert plan.epsilon_each == Decimal("0.5")
    assert len(plan.statistics) == 3
    for stat in plan.statistics:
        spent = plan.loss_of(stat.name)
        assert 0.5 * (1 - 1e-9) <= spent <= 0.5
    epsilon, delta = plan.loss()
    assert 1.5 * (1 - 1e-9) <= epsilon <= 1.5
    assert 0 < delta <= 1e-6
    out = mech.release()
    assert out.dp is not None
    assert out.dp.statistics == ("count", "sum a.v", "count a.v")
    assert [float(s) for s in out.dp.noise_scales] == pytest.approx(
        [ROWS * 3 / 0.5, ROWS * 3 * 10 / 0.5, ROWS * 3 / 0.5], rel=1e-9
    )
    assert out.columns == ("g", "n", "total", "mean")


def sample(table: pa.Table, p: sqa.SqlAggregateParams) -> np.ndarray:
    release = sqa.dp_mechanism([table], p, privacy(p)).release
    rows = []
    for _ in range(RUNS):
        (row,) = release().rows
        rows.append([float(str(v)) for v in row[1:]])
    return np.array(rows)


@pytest.mark.slow
def test_audit_passes_count_sum_and_avg_at_one_entity_with_five_rows() -> None:
    p = params()
    d, n = neighbours()
    found = [a.epsilon_lower for a in audit_columns(sample(d, p), sample(n, p))]
    # COUNT and SUM each spend a third; AVG reads two of them (two thirds).
    assert found[0] <= 1 / 3, found
    assert found[1] <= 1 / 3, found
    assert found[2] <= 2 / 3, found


@pytest.mark.slow
def test_audit_catches_a_mutant_calibrated_for_one_row_per_entity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = dp_groups.plan

    def one_row(**kwargs: object) -> dp_groups.Plan:
        return real(**{**kwargs, "bounds": dp_groups.Bounds(1, 1)})  # type: ignore[arg-type]

    monkeypatch.setattr(sqa.dp_groups, "plan", one_row)
    p = params()
    d, n = neighbours()
    found = [a.epsilon_lower for a in audit_columns(sample(d, p), sample(n, p))]
    assert found[0] > 1 / 3, found
    assert found[1] > 1 / 3, found
