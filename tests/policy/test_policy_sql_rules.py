"""The SQL analyser: every rule admits a conforming query and refuses a breaking one by name."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.sql_rules import (
    ENTITY_COLUMN,
    RULES,
    SqlAnalysisRules,
    analyze,
    entity_count_column,
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
        "filter_columns": ["g", "x", "d", "s"],
        "join_columns": ["id"],
        "identity_columns": ["id"],
    }
)
RULES_B = SqlAnalysisRules.parse(
    {
        "aggregations": ["count", "count_distinct", "sum", "avg", "min", "max", "quantile"],
        "aggregate_columns": ["y"],
        "dimension_columns": ["h"],
        "join_columns": ["id"],
        "identity_columns": ["id"],
    }
)
INPUTS = {"a": (SCHEMA_A, RULES_A), "b": (SCHEMA_B, RULES_B)}


def admit(sql: str, inputs: dict[str, tuple[pa.Schema, SqlAnalysisRules | None]] | None = None):  # type: ignore[no-untyped-def]
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
        "declared-tables",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM read_csv('/etc/passwd')",
        "rule declared-tables: FROM must name an input table",
    ),
    (
        "declared-tables",
        "SELECT count(*) FROM a",
        "SELECT count(*) FROM duckdb_settings()",
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
        "SELECT g, max(x) FROM a GROUP BY g",
        "SELECT g, max(y) FROM a JOIN b ON a.id = b.id GROUP BY g",
        "rule aggregate-columns",  # placeholder replaced below
    ),
    (
        "allowed-functions",
        "SELECT g, sum(x) FROM a GROUP BY g",
        "SELECT g, sum(x) OVER () FROM a GROUP BY g",
        "rule allowed-functions: window functions are not allowed",
    ),
    (
        "allowed-functions",
        "SELECT sum(abs(x)) FROM a",
        "SELECT sum(hash(x)) FROM a",
        "rule allowed-functions: HASH is not allowed",
    ),
    (
        "allowed-functions",
        "SELECT sum(x) FROM a",
        "SELECT stddev(x) FROM a",
        "rule allowed-functions: input a does not allow STDDEV",
    ),
    (
        "allowed-functions",
        "SELECT quantile_cont(x, 0.9) FROM a",
        "SELECT quantile_cont(x, 1.5) FROM a",
        "rule allowed-functions: a quantile needs a constant fraction in [0, 1]",
    ),
    (
        "allowed-functions",
        "SELECT sum(x) FROM a",
        "SELECT sum(sum(x)) FROM a",
        "rule allowed-functions: nested aggregations are not allowed",
    ),
    (
        "aggregate-columns",
        "SELECT sum(x) FROM a",
        "SELECT sum(secret) FROM a",
        "rule aggregate-columns: a.secret may not be aggregated (in SUM)",
    ),
    (
        "identity-aggregates",
        "SELECT count(DISTINCT id) FROM a",
        "SELECT max(id) FROM a",
        "rule identity-aggregates: identity column a.id may only be counted, not in MAX",
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
        "SELECT g, count(*) FROM a GROUP BY GROUPING SETS ((g), ())",
        "rule dimension-columns: ROLLUP, CUBE, GROUPING SETS",
    ),
    (
        "filter-columns",
        "SELECT count(*) FROM a WHERE x > 3",
        "SELECT count(*) FROM a WHERE n > 3",
        "rule filter-columns: a.n may not be used in a WHERE/FILTER predicate",
    ),
    (
        "filter-columns",
        "SELECT g, count(*) FROM a GROUP BY g HAVING sum(x) > 10",
        "SELECT g, count(*) FROM a GROUP BY g HAVING x > 10",
        "rule filter-columns: HAVING may use aggregates and GROUP BY columns only, not a.x",
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
        "SELECT sum(y) FROM a LEFT JOIN b ON a.id = b.id",
        "SELECT sum(y) FROM a CROSS JOIN b",
        "rule join-columns: CROSS joins are not allowed",
    ),
    (
        "no-identity-literals",
        "SELECT g, count(*) FROM a WHERE x > 0 GROUP BY g",
        "SELECT g, count(*) FROM a WHERE id <> 42 GROUP BY g",
        "rule no-identity-literals: a.id compared with a literal (id <> 42)",
    ),
    (
        "no-identity-literals",
        "SELECT count(*) FROM a WHERE x > 0",
        "SELECT count(*) FILTER (WHERE id IN (1, 2)) FROM a",
        "rule no-identity-literals: a.id compared with a literal",
    ),
    (
        "no-identity-literals",
        "SELECT sum(x) FROM a",
        "SELECT sum(CASE WHEN a.id - 7 = 0 THEN 0 ELSE x END) FROM a",
        "rule no-identity-literals: a.id compared with a literal",
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
        "SELECT count(*) FROM a",
        "SELECT 1 FROM a",
        "rule no-row-level-output: the query neither aggregates nor groups",
    ),
    (
        "no-cast",
        "SELECT sum(TRY_CAST(s AS DOUBLE)) FROM a",
        "SELECT sum(CAST(s AS DOUBLE)) FROM a",
        "rule no-cast: use TRY_CAST instead of CAST(s AS DOUBLE)",
    ),
    (
        "no-cast",
        "SELECT sum(TRY_CAST(s AS DOUBLE)) FROM a",
        "SELECT sum(s::DOUBLE) FROM a",
        "rule no-cast: use TRY_CAST",
    ),
    (
        "typed-comparisons",
        "SELECT count(*) FROM a WHERE s = '1'",
        "SELECT count(*) FROM a WHERE s = 1",
        "rule typed-comparisons: EQ mixes number and text operands",
    ),
    (
        "typed-comparisons",
        "SELECT count(*) FROM a WHERE d >= '2020-01-01'",
        "SELECT count(*) FROM a WHERE d >= x",
        "rule typed-comparisons: GTE mixes number and time operands",
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
CASES[15] = (
    "allowed-functions",
    "SELECT h, sum(y) FROM a JOIN b ON a.id = b.id GROUP BY h",
    "SELECT h, min(y) FROM a JOIN b ON a.id = b.id GROUP BY h",
    "rule allowed-functions: input b does not allow MIN",
)


@pytest.fixture(scope="module")
def inputs_with_min_refused() -> dict[str, tuple[pa.Schema, SqlAnalysisRules | None]]:
    b = RULES_B.model_copy(update={"aggregations": ("count", "sum", "avg")})
    return {"a": (SCHEMA_A, RULES_A), "b": (SCHEMA_B, b)}


@pytest.mark.parametrize(("rule", "good", "bad", "message"), CASES)
def test_rule_admits_and_refuses(
    rule: str,
    good: str,
    bad: str,
    message: str,
    inputs_with_min_refused: dict[str, tuple[pa.Schema, SqlAnalysisRules | None]],
) -> None:
    assert rule in RULES
    admitted = admit(good, inputs_with_min_refused)
    assert admitted.rules_checked == RULES
    with pytest.raises(PolicyDenied) as info:
        admit(bad, inputs_with_min_refused)
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


def test_differencing_pair_second_query_is_refused() -> None:
    first = "SELECT g, sum(x), count(*) FROM a GROUP BY g"
    admit(first)
    for second in (
        "SELECT g, sum(x), count(*) FROM a WHERE id <> 17 GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE NOT (id = 17) GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE id NOT IN (17) GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE id < 17 OR id > 17 GROUP BY g",
        "SELECT g, sum(x), count(*) FROM a WHERE NOT id BETWEEN 17 AND 17 GROUP BY g",
        "SELECT g, sum(CASE WHEN a.id = 17 THEN 0 ELSE x END) FROM a GROUP BY g",
        "SELECT g, sum(x) FROM a JOIN b ON a.id = b.id WHERE b.id + 0 <> 17 GROUP BY g",
    ):
        with pytest.raises(PolicyDenied, match="rule no-identity-literals"):
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


def test_rewrite_is_total_and_counts_entities() -> None:
    admitted = admit(
        "SELECT g AS grp, sum(x / n) AS r, avg(n * n) FROM a AS t GROUP BY t.g ORDER BY r DESC"
    )
    assert admitted.tables == ("a",)
    assert admitted.output_names == ("grp", "r", "AVG(n * n)")
    assert admitted.limit is None
    assert "NULLIF(TRY_CAST(" in admitted.sql
    assert entity_count_column("a") in admitted.sql
    uses = {(u.input, u.column, u.role, u.function) for u in admitted.uses}
    assert uses == {
        ("a", "g", "dimension", None),
        ("a", "x", "aggregate", "sum"),
        ("a", "n", "aggregate", "sum"),
        ("a", "n", "aggregate", "avg"),
    }
    # The rewritten SQL runs where the original would fail on a single row.
    con = duckdb.connect(":memory:")
    table = pa.table(
        {
            "id": [1, 2, 3],
            "g": ["p", "p", "q"],
            "x": [1.0, 2.0, 3.0],
            "n": [0, 2**62, 1],
            "s": ["1", "x", "2"],
            "d": pa.array([0, 1, 2], type=pa.date32()),
            "secret": [0.0, 0.0, 0.0],
            ENTITY_COLUMN: [1, 2, 3],
        }
    )
    con.register("a", table)
    with pytest.raises(duckdb.Error):
        con.execute("SELECT g, sum(x / n), avg(n * n) FROM a GROUP BY g").fetchall()
    rows = con.execute(admitted.sql).fetchall()
    assert rows[0][0] == "q"
    assert rows[0][1] == 3.0
    assert rows[0][3] == 1
    assert rows[1][0] == "p"
    assert rows[1][1] == pytest.approx(2.0 / 2**62)
    assert rows[1][2] == pytest.approx((0 + float(2**62) ** 2) / 2)
    assert rows[1][3] == 2


def test_rules_parse_fails_closed() -> None:
    empty = SqlAnalysisRules.parse({})
    with pytest.raises(PolicyDenied, match="rule aggregate-columns"):
        admit("SELECT sum(x) FROM a", {"a": (SCHEMA_A, empty)})
    with pytest.raises(InvalidInput, match="sql analysis rules aggregations"):
        SqlAnalysisRules.parse({"aggregations": ["exec"]})
    with pytest.raises(InvalidInput, match="sql analysis rules"):
        SqlAnalysisRules.parse({"dimension_columns": ["g"], "extra": 1})
