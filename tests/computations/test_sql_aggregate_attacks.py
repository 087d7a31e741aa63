"""sql-aggregate from the attacker's side: single-query isolation, joins, differencing.

The attacker writes the SQL, may bring its own table (input ``b``), and asks as often as
it likes. Each attack of issue 11 (class 2, and the SQL halves of classes 1 and 7) is run
and must not recover the target: refused by a named rule (the same at the pre-check, on
the attested schema, and in the run), or answered without the target's value.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.base import schema_text
from sealroom.computations.sql_aggregate import SqlAggregateOutput, dp_mechanism
from sealroom.enclave.history import FootprintScope, SqlReleaseHistory
from sealroom.errors import PolicyDenied
from sealroom.policy import PolicyRules
from sealroom.policy.rules import decide

SQL = default_registry().get("sql-aggregate")
K = 5
TARGET = "C0042"
SALARY = 123_456.0
RULES: dict[str, Any] = {
    "aggregations": ["count", "count_distinct", "sum", "avg"],
    "aggregate_columns": ["salary", "bonus"],
    "dimension_columns": ["dept", "sex"],
    "filter_columns": ["salary"],
    "join_columns": ["id"],
    "identity_columns": ["id"],
}
THEIR_RULES: dict[str, Any] = {
    "aggregations": ["count", "sum", "avg"],
    "aggregate_columns": ["w"],
    "dimension_columns": ["segment"],
    "join_columns": ["id"],
    "identity_columns": ["id"],
}


def staff() -> pa.Table:
    """60 people in two departments; the target is the only man in sales and the only one
    with a bonus."""
    rng = np.random.default_rng(2)
    ids = [f"C{i:04d}" for i in range(60)]
    ids[42] = TARGET
    salary = rng.uniform(30_000, 90_000, 60).round(2)
    salary[42] = SALARY
    dept = ["sales"] * 30 + ["ops"] * 30
    sex = ["F"] * 30 + ["F", "M"] * 15
    dept[42], sex[42] = "sales", "M"
    bonus = [None] * 60
    bonus[42] = 9_999.0
    return pa.table(
        {"id": ids, "dept": dept, "sex": sex, "salary": salary.tolist(), "bonus": bonus}
    )


def privacy(n: int = 1, **kw: Any) -> PrivacyContext:
    rules = (RULES, THEIR_RULES)[:n]
    return PrivacyContext(k=(K,) * n, entity_columns=("id",) * n, analysis=rules, **kw)


def exact(tables: list[pa.Table], sql: str) -> tuple[SqlAggregateOutput, Any]:
    out, footprint = SQL.execute(tables, SQL.parse_params({"sql": sql}), privacy(len(tables)))
    assert isinstance(out, SqlAggregateOutput)
    return out, footprint


def refused(tables: list[pa.Table], sql: str) -> str:
    """The rule that refuses ``sql``: the same at the pre-check and in the run."""
    params = SQL.parse_params({"sql": sql})
    ctx = privacy(len(tables))
    with pytest.raises(PolicyDenied) as before:
        SQL.admit(params, [schema_text(t.schema) for t in tables], ctx)
    with pytest.raises(PolicyDenied) as during:
        SQL.run(tables, params, ctx)
    assert before.value.detail == during.value.detail
    assert before.value.rule is not None
    return before.value.rule


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        # The identity-literal rule's old bypass: an expression of a column that is a literal.
        (
            f"SELECT dept, sum(salary) FROM a WHERE id = COALESCE(NULLIF(dept, dept), '{TARGET}') "
            "GROUP BY dept",
            "identity-columns",
        ),
        (
            f"SELECT dept, sum(salary) FROM a WHERE dept = COALESCE(NULLIF(id, id), '{TARGET}') "
            "GROUP BY dept",
            "filter-columns",
        ),
        (
            f"SELECT dept, count(*) FROM a WHERE COALESCE(NULLIF(id, id), '{TARGET}') = "
            f"'{TARGET}' GROUP BY dept",
            "filter-columns",
        ),
        # Predicates inside aggregates: one row per aggregate.
        (
            f"SELECT dept, sum(CASE WHEN id = '{TARGET}' THEN salary END) FROM a GROUP BY dept",
            "aggregate-arguments",
        ),
        (
            f"SELECT dept, sum(salary) FILTER (WHERE id = '{TARGET}') FROM a GROUP BY dept",
            "aggregate-arguments",
        ),
        (
            f"SELECT dept, sum(IF(id = '{TARGET}', salary, 0)) FROM a GROUP BY dept",
            "aggregate-arguments",
        ),
        (
            "SELECT dept, sum(salary * (sex = 'M')) FROM a GROUP BY dept",
            "aggregate-arguments",
        ),
        # Value bins: which people fall in a narrow band of salary.
        (
            "SELECT dept, count(CASE WHEN salary BETWEEN 123456 AND 123457 THEN 1 END) FROM a "
            "GROUP BY dept",
            "aggregate-arguments",
        ),
        ("SELECT count(*) FROM a GROUP BY floor(salary / 1000)", "dimension-columns"),
        ("SELECT dept, max(salary) FROM a GROUP BY dept", "no-order-statistics"),
        ("SELECT dept, id, sum(salary) FROM a GROUP BY dept, id", "identity-columns"),
    ],
)
def test_single_query_isolation_is_refused_by_rule(sql: str, rule: str) -> None:
    assert refused([staff()], sql) == rule


def test_fifty_single_row_aggregates_in_one_query_are_refused() -> None:
    picks = ", ".join(f"sum(CASE WHEN id = 'C{i:04d}' THEN salary END)" for i in range(K, K + 50))
    assert refused([staff()], f"SELECT {picks} FROM a") in ("aggregate-arguments", "output-columns")


def test_k_is_checked_on_the_rows_behind_each_aggregate() -> None:
    table = staff()
    # The sales group holds 30 people, but only the target has a bonus: SUM(bonus) stands on
    # one entity, so the row is withheld even though COUNT(*) passes.
    out, _ = exact([table], "SELECT dept, count(*), sum(bonus) FROM a GROUP BY dept")
    assert out.rows == ()
    # Without the bonus the same groups are released.
    out, _ = exact([table], "SELECT dept, count(*), sum(salary) FROM a GROUP BY dept")
    assert [r[0] for r in out.rows] == ["ops", "sales"]


def test_a_value_band_in_where_does_not_release_one_person() -> None:
    out, _ = exact(
        [staff()],
        "SELECT dept, count(*), avg(salary) FROM a WHERE salary BETWEEN 123000 AND 124000 "
        "GROUP BY dept",
    )
    assert out.rows == ()


def weights(times: int) -> pa.Table:
    """The requester's own table: every id once, the target's id ``times`` times."""
    ids = [f"C{i:04d}" for i in range(60)]
    ids[42] = TARGET
    ids += [TARGET] * (times - 1)
    return pa.table({"id": ids, "segment": ["all"] * len(ids), "w": [1.0] * len(ids)})


def test_a_join_to_the_requesters_weight_table_needs_pinned_partners_to_be_exact() -> None:
    sql = "SELECT sum(a.salary) FROM a JOIN b ON a.id = b.id"
    # Run exactly, the weight table would make the target's salary dominate the sum...
    out, _ = exact([staff(), weights(10_000)], sql)
    total = float(str(out.rows[0][0]))
    assert total / 10_000 == pytest.approx(SALARY, rel=0.01)
    # ...so an owner allows it exactly only with the partner data it pinned.
    rules = PolicyRules.parse(
        {
            "allow": [
                {
                    "id": "sql-aggregate",
                    "dp": "off",
                    "pinned": {"params": {"sql": sql}, "partners": ["A" * 43 + "="]},
                }
            ],
            "k": K,
            "entity_column": "id",
        }
    )
    shape = SQL.request_shape(SQL.parse_params({"sql": sql}), partners=["B" * 43 + "="])
    decision = decide(rules, computation=SQL, request=shape, requester="sr1x")
    assert decision.reason.startswith("rule exact-partners-pinned")


def test_a_join_to_the_requesters_weight_table_with_dp_counts_the_target_once() -> None:
    sql = "SELECT sum(a.salary) AS total FROM a JOIN b ON a.id = b.id"
    params = SQL.parse_params(
        {
            "sql": sql,
            "dp": {"epsilon": "1", "bounds": {"a.salary": ["0", "200000"]}},
        }
    )
    ctx = privacy(2, cost=SQL.cost(params))
    release = dp_mechanism([staff(), weights(10_000)], params, ctx).release
    once = sum(staff().column("salary").to_pylist())
    scale = 200_000 / 1.0
    totals = [float(str(release().rows[0][0])) for _ in range(21)]
    # Truncation keeps one row per entity: the sum is every salary once, plus noise. The
    # median of 21 releases sits within a few noise scales of it (never one draw: a tail
    # bound on one Laplace draw fails now and then)...
    assert abs(statistics.median(totals) - once) < 4 * scale
    # ...and no release comes near the sum that counts the target 10,000 times.
    assert all(abs(t - 10_000 * SALARY) > 1_000 * scale for t in totals)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[SqlReleaseHistory]:
    h = SqlReleaseHistory.in_directory(tmp_path)
    yield h
    h.close()


def test_region_then_region_and_sex_exact_is_refused_by_the_difference_check(
    history: SqlReleaseHistory,
) -> None:
    table = staff()
    by_dept, first = exact([table], "SELECT dept, sum(salary) FROM a GROUP BY dept")
    by_sex, second = exact([table], "SELECT dept, sex, sum(salary) FROM a GROUP BY dept, sex")
    assert ("sales", "M") not in [r[:2] for r in by_sex.rows]
    sales = next(float(str(r[1])) for r in by_dept.rows if r[0] == "sales")
    sales_f = next(float(str(r[2])) for r in by_sex.rows if r[:2] == ("sales", "F"))
    assert sales - sales_f == pytest.approx(SALARY)  # what the pair would give away
    history.check_and_record(
        [FootprintScope(scope="owner:id", k=K, cells=first.cells[0])], request="1", now=1
    )
    with pytest.raises(PolicyDenied, match="rule difference-check"):
        history.check_and_record(
            [FootprintScope(scope="owner:id", k=K, cells=second.cells[0])], request="2", now=2
        )


def test_dp_sql_group_presence_does_not_reveal_a_lone_member() -> None:
    lone = pa.table(
        {"id": ["Z9999"], "dept": ["legal"], "sex": ["M"], "salary": [1.0], "bonus": [None]}
    ).cast(staff().schema)
    params = SQL.parse_params(
        {
            "sql": "SELECT dept, count(*) AS n FROM a GROUP BY dept",
            "dp": {"epsilon": "1", "delta": "0.000001"},
        }
    )
    release = dp_mechanism(
        [pa.concat_tables([staff(), lone])], params, privacy(cost=SQL.cost(params))
    ).release
    seen = sum(any(r[0] == "legal" for r in release().rows) for _ in range(300))
    assert seen == 0
