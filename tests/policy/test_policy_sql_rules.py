"""The SQL analyser: every rule admits a conforming query and refuses a breaking one by name."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.sql_rules import (
    DP_RULES,
    ENTITY_COLUMN,
    MAX_OUTPUT_COLUMNS,
    RULES,
    Admitted,
    SqlAnalysisRules,
    admit_dp,
    analyze,
    hidden_column,
)

SCHEMA_A = pa.schema(
    [
        ("id", pa.int64()),
        ("g", pa.string()),
        ("x", pa.float64()),
        ("n", pa.int64()),
        ("s", pa.string()),
        ("d", pa.date32()),
        ("secret", pa.float64()),
    ]
)
SCHEMA_B = pa.schema([("id", pa.int64()), ("y", pa.float64()), ("h", pa.string())])
RULES_A = SqlAnalysisRules.parse(
    {
        "aggregations": ["count", "count_distinct", "sum", "avg", "min", "max", "quantile"],
        "aggregate_columns": ["x", "n", "s"],
        "dimension_columns": ["g"],
        "filter_columns": ["x", "d", "s"],
        "join_columns": ["id"],
        "identity_columns": ["id"],
    }
)
RULES_B = SqlAnalysisRules.parse(
    {
        "aggregations": ["count", "count_distinct", "sum", "avg"],
        "aggregate_columns": ["y"],
        "dimension_columns": ["h"],
        "join_columns": ["id"],
        "identity_columns": ["id"],
    }
)
INPUTS = {"a": (SCHEMA_A, RULES_A), "b": (SCHEMA_B, RULES_B)}


def admit(
    sql: str, inputs: dict[str, tuple[pa.Schema, SqlAnalysisRules | None]] | None = None
) -> Admitted:
    return analyze(sql, inputs=INPUTS if inputs is None else inputs, max_output_rows=100)


# (rule, a query that satisfies it, a query that breaks it, the expected refusal text)
CASES = [
    (
        "single-select",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM a; SELECT count(*) FROM b",
        "rule single-select: exactly one statement is allowed, got 2",
    ),
    ("single-select", "SELECT sum(x) FROM a", "DROP TABLE a", "rule single-select: only SELECT"),
    ("single-select", "SELECT sum(x) FROM a", "PRAGMA database_list", "rule single-select"),
    ("single-select", "SELECT sum(x) FROM a", "ATTACH 'x.db'", "rule single-select"),
    ("single-select", "SELECT sum(x) FROM a", "COPY a TO 'x.csv'", "rule single-select"),
    (
        "single-select",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM a UNION SELECT count(*) FROM b",
        "rule single-select: only SELECT is allowed, not UNION",
    ),
    (
        "single-select",
        "SELECT count(*) FROM a",
        "WITH q AS (SELECT * FROM a) SELECT count(*) FROM q",
        "rule single-select: WITH (common table expressions) is not allowed",
    ),
    (
        "single-select",
        "SELECT sum(x) FROM a WHERE x > 1",
        "SELECT sum(x) FROM a WHERE x > (SELECT avg(x) FROM a)",
        "rule single-select: subqueries are not allowed",
    ),
    (
        "single-select",
        "SELECT g, sum(x) FROM a GROUP BY g",
        "SELECT g, sum(x) FROM a GROUP BY g HAVING sum(x) > 10",
        "rule single-select: HAVING is not allowed",
    ),
    (
        "single-select",
        "SELECT g, sum(x) FROM a GROUP BY g",
        "SELECT g, sum(sum(x)) OVER () FROM a GROUP BY g",
        "rule single-select: window functions are not allowed",
    ),
    (
        "declared-tables",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM read_csv('/etc/passwd')",
        "rule declared-tables: FROM must name an input table",
    ),
    (
        "declared-tables",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM information_schema.tables",
        "rule declared-tables: information_schema.tables names a schema or catalog",
    ),
    (
        "declared-tables",
        "SELECT count(*) FROM b",
        "SELECT count(*) FROM c",
        "rule declared-tables: unknown table 'c'; the inputs are a, b",
    ),
    (
        "declared-tables",
        "SELECT count(*) FROM a AS p JOIN b AS q ON p.id = q.id",
        "SELECT count(*) FROM a AS p JOIN a AS q ON p.id = q.id",
        "rule declared-tables: input a is read more than once",
    ),
    (
        "known-columns",
        "SELECT sum(a.x) FROM a",
        "SELECT sum(a.nope) FROM a",
        "rule known-columns: unknown column a.nope",
    ),
    (
        "known-columns",
        "SELECT count(DISTINCT a.id) FROM a JOIN b ON a.id = b.id",
        "SELECT count(DISTINCT id) FROM a JOIN b ON a.id = b.id",
        "rule known-columns: column 'id' is in a and b; qualify it",
    ),
    (
        "allowed-functions",
        "SELECT sum(x) FROM a",
        "SELECT stddev(x) FROM a",
        "rule allowed-functions: input a does not allow STDDEV",
    ),
    (
        "no-order-statistics",
        "SELECT g, avg(x) FROM a GROUP BY g",
        "SELECT g, max(x) FROM a GROUP BY g",
        "rule no-order-statistics: MAX releases one entity's value exactly",
    ),
    (
        "no-order-statistics",
        "SELECT avg(x) FROM a",
        "SELECT quantile_cont(x, 0.99) FROM a",
        "rule no-order-statistics: QUANTILE releases",
    ),
    (
        "aggregate-arguments",
        "SELECT sum(x) FROM a",
        "SELECT sum(CASE WHEN a.id = 42 THEN x END) FROM a",
        "rule aggregate-arguments: SUM takes one plain column, not CASE WHEN",
    ),
    (
        "aggregate-arguments",
        "SELECT count(*) FROM a WHERE g = 'p'",
        "SELECT count(*) FILTER (WHERE g = 'p') FROM a",
        "rule aggregate-arguments: FILTER (WHERE ...) selects rows inside an aggregate",
    ),
    (
        "aggregate-arguments",
        "SELECT sum(x) FROM a",
        "SELECT sum(COALESCE(NULLIF(x, x), 1)) FROM a",
        "rule aggregate-arguments: SUM takes one plain column, not COALESCE(NULLIF(x, x), 1)",
    ),
    (
        "aggregate-arguments",
        "SELECT sum(x) FROM a",
        "SELECT sum(x / (x - 17)) FROM a",
        "rule aggregate-arguments: SUM takes one plain column",
    ),
    (
        "aggregate-arguments",
        "SELECT sum(x) FROM a",
        "SELECT sum(floor(x / 1000)) FROM a",
        "rule aggregate-arguments: SUM takes one plain column",
    ),
    (
        "aggregate-arguments",
        "SELECT count(DISTINCT x) FROM a",
        "SELECT sum(DISTINCT x) FROM a",
        "rule aggregate-arguments: DISTINCT is allowed in COUNT only, not SUM",
    ),
    (
        "aggregate-columns",
        "SELECT sum(x) FROM a",
        "SELECT sum(secret) FROM a",
        "rule aggregate-columns: a.secret may not be aggregated (in SUM)",
    ),
    (
        "identity-columns",
        "SELECT count(DISTINCT id) FROM a",
        "SELECT sum(id) FROM a",
        "rule identity-columns: a.id is an identity column; it may only be counted, not in SUM",
    ),
    (
        "identity-columns",
        "SELECT g, count(*) FROM a WHERE x > 0 GROUP BY g",
        "SELECT g, count(*) FROM a WHERE id <> 42 GROUP BY g",
        "rule identity-columns: a.id is an identity column; it may appear only in JOIN "
        "conditions and in COUNT, not in WHERE",
    ),
    (
        "identity-columns",
        "SELECT g, count(*) FROM a GROUP BY g",
        "SELECT id, count(*) FROM a GROUP BY id",
        "rule identity-columns: a.id is an identity column",
    ),
    (
        "dimension-columns",
        "SELECT g, count(*) FROM a GROUP BY g",
        "SELECT s, count(*) FROM a GROUP BY s",
        "rule dimension-columns: a.s is not a dimension column",
    ),
    (
        "dimension-columns",
        "SELECT g, count(*) FROM a GROUP BY g",
        "SELECT g, count(*) FROM a GROUP BY ROLLUP (g)",
        "rule dimension-columns: ROLLUP, CUBE, GROUPING SETS and GROUP BY ALL are not allowed",
    ),
    (
        "dimension-columns",
        "SELECT g, count(*) FROM a GROUP BY g",
        "SELECT count(*) FROM a GROUP BY floor(x / 10)",
        "rule dimension-columns: GROUP BY takes plain dimension columns",
    ),
    (
        "filter-columns",
        "SELECT count(*) FROM a WHERE x > 3",
        "SELECT count(*) FROM a WHERE n > 3",
        "rule filter-columns: a.n may not be used in WHERE",
    ),
    (
        "filter-columns",
        "SELECT count(*) FROM a WHERE g = 'p'",
        "SELECT count(*) FROM a WHERE g = COALESCE(NULLIF(g, g), 'C0042')",
        "rule filter-columns: a.g is compared with COALESCE(NULLIF(g, g), 'C0042'), not a literal",
    ),
    (
        "filter-columns",
        "SELECT count(*) FROM a WHERE x BETWEEN 1 AND 2",
        "SELECT count(*) FROM a WHERE x + 0 BETWEEN 1 AND 2",
        "rule filter-columns: WHERE compares a plain column with literals",
    ),
    (
        "join-columns",
        "SELECT sum(y) FROM a JOIN b ON a.id = b.id",
        "SELECT sum(y) FROM a JOIN b ON a.x = b.y",
        "rule join-columns: a.x is not a join column",
    ),
    (
        "join-columns",
        "SELECT sum(y) FROM a JOIN b ON a.id = b.id",
        "SELECT sum(y) FROM a JOIN b ON a.id > b.id",
        "rule join-columns: join conditions are equalities of two columns",
    ),
    (
        "join-columns",
        "SELECT sum(y) FROM a INNER JOIN b ON a.id = b.id",
        "SELECT sum(y) FROM a LEFT JOIN b ON a.id = b.id",
        "rule join-columns: LEFT joins are not allowed",
    ),
    (
        "join-columns",
        "SELECT sum(y) FROM a JOIN b ON a.id = b.id",
        "SELECT sum(y) FROM a CROSS JOIN b",
        "rule join-columns: CROSS joins are not allowed",
    ),
    (
        "no-row-level-output",
        "SELECT g, count(*) FROM a GROUP BY g",
        "SELECT * FROM a",
        "rule no-row-level-output: SELECT * is not allowed",
    ),
    (
        "no-row-level-output",
        "SELECT g, avg(x) FROM a GROUP BY g",
        "SELECT g, x FROM a GROUP BY g",
        "rule no-row-level-output: a.x is neither aggregated nor a GROUP BY column",
    ),
    (
        "no-row-level-output",
        "SELECT g FROM a GROUP BY g",
        "SELECT DISTINCT g FROM a",
        "rule no-row-level-output: SELECT DISTINCT is not allowed",
    ),
    (
        "no-row-level-output",
        "SELECT sum(x) AS total FROM a",
        "SELECT sum(x) / count(*) FROM a",
        "rule no-row-level-output: each output is one aggregate or one GROUP BY column",
    ),
    (
        "output-columns",
        "SELECT " + ", ".join(["count(*)"] * MAX_OUTPUT_COLUMNS) + " FROM a",
        "SELECT " + ", ".join(["count(*)"] * (MAX_OUTPUT_COLUMNS + 1)) + " FROM a",
        f"rule output-columns: {MAX_OUTPUT_COLUMNS + 1} outputs",
    ),
    (
        "output-order",
        "SELECT g, sum(x) AS t FROM a GROUP BY g ORDER BY t DESC, 1",
        "SELECT g, sum(x) AS t FROM a GROUP BY g ORDER BY sum(secret)",
        "rule output-order: ORDER BY names outputs only",
    ),
    (
        "typed-comparisons",
        "SELECT count(*) FROM a WHERE s = '1'",
        "SELECT count(*) FROM a WHERE s = 1",
        "rule typed-comparisons: a.s (text) is compared with a number literal",
    ),
    (
        "typed-comparisons",
        "SELECT count(*) FROM a WHERE d >= '2020-01-01'",
        "SELECT count(*) FROM a WHERE x LIKE 'a%'",
        "rule typed-comparisons",
    ),
    (
        "output-limit",
        "SELECT g, count(*) FROM a GROUP BY g LIMIT 100",
        "SELECT g, count(*) FROM a GROUP BY g LIMIT 101",
        "rule output-limit: LIMIT 101 is outside 1..100",
    ),
    (
        "output-limit",
        "SELECT g, count(*) FROM a GROUP BY g LIMIT 5",
        "SELECT g, count(*) FROM a GROUP BY g LIMIT 5 OFFSET 5",
        "rule output-limit: OFFSET is not allowed",
    ),
]


@pytest.mark.parametrize(("rule", "good", "bad", "message"), CASES)
def test_rule_admits_and_refuses(rule: str, good: str, bad: str, message: str) -> None:
    assert rule in RULES
    admitted = admit(good)
    assert admitted.rules_checked == RULES
    with pytest.raises(PolicyDenied) as info:
        admit(bad)
    assert info.value.rule == rule
    assert info.value.detail is not None
    assert info.value.detail.startswith(f"rule {rule}")
    assert message in info.value.detail


def test_every_rule_has_a_case() -> None:
    assert {c[0] for c in CASES} | {"sql-rules-declared"} == set(RULES)


def test_input_without_sql_rules_is_never_read() -> None:
    inputs = {"a": (SCHEMA_A, RULES_A), "b": (SCHEMA_B, None)}
    assert admit("SELECT count(*) FROM a", inputs).tables == ("a",)
    with pytest.raises(PolicyDenied, match="rule sql-rules-declared: input b declares no SQL"):
        admit("SELECT count(*) FROM a JOIN b ON a.id = b.id", inputs)


def test_the_attested_schema_gives_the_same_decision_as_the_table() -> None:
    attested = {
        "a": (tuple((f.name, str(f.type)) for f in SCHEMA_A), RULES_A),
        "b": (tuple((f.name, str(f.type)) for f in SCHEMA_B), RULES_B),
    }
    for _, good, bad, _ in CASES:
        assert analyze(good, inputs=attested, max_output_rows=100) == admit(good)
        with pytest.raises(PolicyDenied) as by_table:
            admit(bad)
        with pytest.raises(PolicyDenied) as by_attestation:
            analyze(bad, inputs=attested, max_output_rows=100)
        assert by_table.value.detail == by_attestation.value.detail


def test_every_way_to_exclude_one_identifier_is_refused() -> None:
    admit("SELECT g, sum(x), count(*) FROM a GROUP BY g")
    for second in (
        "SELECT g, sum(x), count(*) FROM a WHERE id <> 17 GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE NOT (id = 17) GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE id NOT IN (17) GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE id < 17 OR id > 17 GROUP BY g",
        "SELECT g, sum(CASE WHEN a.id = 17 THEN 0 ELSE x END) FROM a GROUP BY g",
        "SELECT g, sum(x) FROM a JOIN b ON a.id = b.id WHERE b.id + 0 <> 17 GROUP BY g",
        "SELECT g, sum(x) FROM a WHERE g = COALESCE(NULLIF(CAST(id AS VARCHAR), 'x'), 'p') "
        "GROUP BY g",
        "SELECT g, sum(IF(id = 17, 0, x)) FROM a GROUP BY g",
    ):
        with pytest.raises(PolicyDenied):
            admit(second)


def test_unparseable_and_oversized_sql_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="does not parse"):
        admit("SELECT sum(x FROM a")
    with pytest.raises(InvalidInput, match="characters; the limit is"):
        admit("SELECT count(*) FROM a " + " " * 30_000)


def test_reserved_column_names_are_refused() -> None:
    schema = SCHEMA_A.append(pa.field(ENTITY_COLUMN, pa.int64()))
    with pytest.raises(InvalidInput, match="reserved column name"):
        admit("SELECT count(*) FROM a", {"a": (schema, RULES_A)})


def test_the_rewrite_lists_the_entities_behind_the_group_and_each_aggregate() -> None:
    admitted = admit(
        "SELECT g AS grp, sum(x) AS total, count(*), count(n) FROM a AS t "
        "WHERE x > 0 GROUP BY t.g ORDER BY total DESC"
    )
    assert admitted.tables == ("a",)
    assert admitted.output_names == ("grp", "total", "COUNT(*)", "COUNT(n)")
    assert admitted.outputs == (
        ("dimension", 0),
        ("aggregate", 0),
        ("aggregate", 1),
        ("aggregate", 2),
    )
    assert admitted.order == ((1, True),)
    assert admitted.hidden == (("a", None), ("a", 0), ("a", 2))
    uses = {(u.input, u.column, u.role, u.function) for u in admitted.uses}
    assert uses == {
        ("a", "g", "dimension", None),
        ("a", "x", "aggregate", "sum"),
        ("a", "x", "filter", None),
        ("a", "n", "aggregate", "count"),
    }
    con = duckdb.connect(":memory:")
    table = pa.table(
        {
            "id": [1, 2, 3, 4],
            "g": ["p", "p", "p", "q"],
            "x": [1.0, None, 3.0, 5.0],
            "n": [1, 2, None, 4],
            "s": ["1", "x", "2", "3"],
            "d": pa.array([0, 1, 2, 3], type=pa.date32()),
            "secret": [0.0] * 4,
            ENTITY_COLUMN: [11, 12, 13, 14],
        }
    )
    con.register("a", table)
    rows = con.execute(admitted.sql).fetchall()
    # x > 0 drops id 2 (x null); the sum of p is over 11 and 13, count(n) over 11 only.
    assert rows[0][:4] == ("q", 5.0, 1, 1)
    assert rows[1][:4] == ("p", 4.0, 2, 1)
    assert [sorted(v) for v in rows[1][4:]] == [[11, 13], [11, 13], [11]]
    assert hidden_column("a", None) in admitted.sql
    frame = con.execute(admitted.rows_sql).fetchall()
    assert sorted(frame) == [(11, "p", 1.0, 1), (13, "p", 3.0, None), (14, "q", 5.0, 4)]


def test_dp_sql_rules() -> None:
    entities = {"a": "id", "b": "id"}
    good = admit("SELECT g, count(*), sum(x), avg(y) FROM a JOIN b ON a.id = b.id GROUP BY g")
    admit_dp(good, entity_columns=entities, bounds={"a.x": (0, 1), "b.y": (0, 1)})
    for sql, bounds, rule in (
        ("SELECT count(DISTINCT a.id) FROM a", {}, "dp-aggregations"),
        ("SELECT sum(x) FROM a", {}, "dp-bounds"),
        ("SELECT avg(y) FROM a JOIN b ON a.id = b.id", {"a.y": (0, 1)}, "dp-bounds"),
    ):
        with pytest.raises(PolicyDenied, match=f"rule {rule}"):
            admit_dp(admit(sql), entity_columns=entities, bounds=bounds)
    with pytest.raises(PolicyDenied, match="rule dp-entity-join: input a declares no entity"):
        admit_dp(admit("SELECT count(*) FROM a"), entity_columns={"a": None}, bounds={})
    schema_c = pa.schema([("id", pa.int64()), ("key", pa.int64())])
    rules_c = SqlAnalysisRules.parse({"join_columns": ["key"], "identity_columns": ["id"]})
    joined = analyze(
        "SELECT count(*) FROM a JOIN c ON a.id = c.key",
        inputs={"a": (SCHEMA_A, RULES_A), "c": (schema_c, rules_c)},
    )
    with pytest.raises(PolicyDenied, match="rule dp-entity-join: input c is not joined on its"):
        admit_dp(joined, entity_columns={"a": "id", "c": "id"}, bounds={})
    assert set(DP_RULES) == {"dp-aggregations", "dp-bounds", "dp-entity-join"}


def test_rules_parse_fails_closed() -> None:
    empty = SqlAnalysisRules.parse({})
    with pytest.raises(PolicyDenied, match="rule aggregate-columns"):
        admit("SELECT sum(x) FROM a", {"a": (SCHEMA_A, empty)})
    with pytest.raises(InvalidInput, match="sql analysis rules aggregations"):
        SqlAnalysisRules.parse({"aggregations": ["exec"]})
    with pytest.raises(InvalidInput, match="sql analysis rules"):
        SqlAnalysisRules.parse({"dimension_columns": ["g"], "extra": 1})
