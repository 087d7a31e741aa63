"""Issue 11, class 2, end to end: single-query isolation in sql-aggregate.

On main (0bebc30) one approved query released single rows: an expression of a column that
evaluates to a literal (``COALESCE(NULLIF(x, x), 'C0042')``) passed the identity-literal
rule; predicates inside aggregates (CASE, FILTER, value bins) released 50 of 60 salaries in
one query; a join to the requester's own weight table selected one person; k was checked on
the GROUP BY group, never on the rows behind each aggregate.

Now every such query is refused by the allow-list grammar, naming its rule, at the
coordinator's pre-check (on the attested schema) before any owner is asked, in DP mode as
in exact mode; the weight-table join is DP by default, and entity truncation counts the
target once however many times the requester's table repeats it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.attacks.attack_world import Folder, World, auto
from tests.client.analytics_e2e_world import exact_policy

TARGET = "C0042"
SALARY = 123_456.0
SQL_RULES: dict[str, Any] = {
    "aggregations": ["count", "sum", "avg"],
    "aggregate_columns": ["salary", "bonus"],
    "dimension_columns": ["dept", "sex"],
    "filter_columns": ["salary"],
    "join_columns": ["id"],
    "identity_columns": ["id"],
}
BUDGET = {
    "epsilon_per_requester": "5",
    "epsilon_total": "5",
    "delta_per_requester": "0.0001",
    "delta_total": "0.001",
}
DP = {"epsilon": "1", "delta": "0.00001", "bounds": {"a.salary": ["0", "200000"]}}


def staff() -> list[dict[str, Any]]:
    """60 people; the target is the only man in sales and the only one with a bonus."""
    rows = []
    for i in range(60):
        target = i == 42
        rows.append(
            {
                "id": TARGET if target else f"C{i:04d}",
                "dept": "sales" if i < 30 or target else "ops",
                "sex": "M" if target or (i >= 30 and i % 2) else "F",
                "salary": SALARY if target else 30_000.0 + 917.0 * i,
                "bonus": 9_999.0 if target else None,
            }
        )
    return rows


ISOLATING = [
    (
        f"SELECT dept, sum(salary) FROM a WHERE id = COALESCE(NULLIF(dept, dept), '{TARGET}') "
        "GROUP BY dept",
        "identity-columns",
    ),
    (
        f"SELECT dept, count(*) FROM a WHERE COALESCE(NULLIF(id, id), '{TARGET}') = '{TARGET}' "
        "GROUP BY dept",
        "filter-columns",
    ),
    (f"SELECT dept, sum(CASE WHEN id = '{TARGET}' THEN salary END) FROM a GROUP BY dept", None),
    (f"SELECT dept, sum(salary) FILTER (WHERE id = '{TARGET}') FROM a GROUP BY dept", None),
    ("SELECT dept, sum(salary * (sex = 'M')) FROM a GROUP BY dept", None),
    (
        "SELECT dept, count(CASE WHEN salary BETWEEN 123456 AND 123457 THEN 1 END) FROM a "
        "GROUP BY dept",
        None,
    ),
    ("SELECT count(*) FROM a GROUP BY floor(salary / 1000)", "dimension-columns"),
    ("SELECT dept, max(salary) FROM a GROUP BY dept", "no-order-statistics"),
    ("SELECT dept, id, sum(salary) FROM a GROUP BY dept, id", "identity-columns"),
    # Fifty single-row aggregates in one query: 50 of 60 salaries on main.
    (
        "SELECT "
        + ", ".join(f"sum(CASE WHEN id = 'C{i:04d}' THEN salary END)" for i in range(5, 55))
        + " FROM a",
        None,
    ),
]


@pytest.fixture(scope="module")
def victim(world: World, tmp_path_factory: pytest.TempPathFactory) -> str:
    files = Folder(tmp_path_factory.mktemp("c2"))
    rules = auto("sql-aggregate", k=5, entity_column="id", sql=SQL_RULES, dp=BUDGET)
    return world.publish("c2-payroll", files.csv("staff", staff()), rules)


def test_every_isolating_query_is_refused_by_its_rule_before_anyone_is_asked(
    world: World, victim: str
) -> None:
    for sql, rule in ISOLATING:
        for params in ({"sql": sql}, {"sql": sql, "dp": DP}):
            answer = world.ask("c2-mallory", "sql-aggregate", [victim], params)
            assert answer.where == "coordinator", sql
            # A predicate inside an aggregate is refused as such, or (50 of them) by the cap
            # on output columns: either way a named rule of the grammar.
            rules = (rule,) if rule else ("aggregate-arguments", "output-columns")
            assert any(f"rule {r}" in (answer.refused or "") for r in rules), answer.refused


def test_the_allowed_query_exactly_is_refused_and_with_dp_has_no_lone_group(
    world: World, victim: str
) -> None:
    sql = "SELECT dept, sex, count(*) AS n, sum(bonus) AS bonus FROM a GROUP BY dept, sex"
    assert world.ask("c2-mallory", "sql-aggregate", [victim], {"sql": sql}).refused_by(
        "rule dp-required"
    )
    dp = {"epsilon": "1", "delta": "0.00001", "bounds": {"a.bonus": ["0", "10000"]}}
    rows = world.ask("c2-mallory", "sql-aggregate", [victim], {"sql": sql, "dp": dp}).released
    # The sales men (one person, the target) are a group of one: partition selection keeps
    # it out but with probability about delta.
    assert ["sales", "M"] not in [r[:2] for r in rows["rows"]]


def test_a_join_to_the_requesters_weight_table_counts_the_target_once(
    world: World, victim: str, files: Folder
) -> None:
    weights = [{"id": f"C{i:04d}" if i != 42 else TARGET, "w": 1.0} for i in range(60)]
    weights += [{"id": TARGET, "w": 1.0}] * 2_000
    mine = world.publish(
        "c2-mallory",
        files.csv("weights", weights),
        auto(
            "sql-aggregate",
            entity_column="id",
            sql={
                "aggregations": ["count", "sum"],
                "aggregate_columns": ["w"],
                "join_columns": ["id"],
                "identity_columns": ["id"],
            },
            dp={**BUDGET, "epsilon_total": "100", "epsilon_per_requester": "100"},
        ),
    )
    sql = "SELECT sum(a.salary) AS total FROM a JOIN b ON a.id = b.id"
    assert world.ask("c2-mallory", "sql-aggregate", [victim, mine], {"sql": sql}).refused_by(
        "rule dp-required"
    )
    once = sum(r["salary"] for r in staff())
    for _ in range(3):
        body = world.ask("c2-mallory", "sql-aggregate", [victim, mine], {"sql": sql, "dp": DP})
        total = float(str(body.released["rows"][0][0]))
        # Exactly, the join weighs the target 2,001 times: 2.5e8 against 3.9e6 for everyone
        # once. Truncation keeps one row per entity; the noise (Laplace of scale 2e5 / 0.5)
        # would need 600 scales to reach the weighted sum (probability e^-600).
        assert abs(total - once) < abs(total - (once + 2_000 * SALARY))
        assert total < once + 2_000 * SALARY / 2


def test_a_careless_pinned_query_withholds_the_aggregate_that_stands_on_one_person(
    world: World, files: Folder
) -> None:
    """The owner pins a query whose GROUP BY groups are large, but one aggregate (the bonus)
    stands on one person: k counts the entities behind each aggregate, not the group."""
    sql = "SELECT dept, count(*) AS n, sum(bonus) AS bonus FROM a GROUP BY dept"
    rules = exact_policy("sql-aggregate", {"sql": sql}, k=5, entity_column="id", sql=SQL_RULES)
    victim = world.publish("c2-careless", files.csv("staff", staff()), rules)
    body = world.ask("c2-mallory", "sql-aggregate", [victim], {"sql": sql}).released
    assert body["rows"] == []
    other = "SELECT dept, count(*) AS n, sum(salary) AS s FROM a GROUP BY dept"
    assert world.ask("c2-mallory", "sql-aggregate", [victim], {"sql": other}).refused_by(
        "rule exact-shape-pinned"
    )
