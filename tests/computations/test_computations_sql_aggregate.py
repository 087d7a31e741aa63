"""sql-aggregate on real data (Grunfeld, split across three parties) and the attack tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sealroom.computations.base import PrivacyContext
from sealroom.computations.registry import default_registry
from sealroom.computations.sql_aggregate import (
    COMPUTATION,
    RUNTIME_REFUSAL,
    SqlAggregateOutput,
    input_names,
)
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.statements.canonical import canonical_json
from tests.computations.sql_split_data import SQL_RULES, grunfeld, split_by_columns

JOIN3 = (
    "FROM a JOIN b ON a.firm = b.firm AND a.year = b.year "
    "JOIN c ON a.firm = c.firm AND a.year = c.year"
)


def privacy(n: int, k: int = 5, **kw: Any) -> PrivacyContext:
    return PrivacyContext(
        k=(k,) * n,
        entity_columns=("firm",) * n,
        analysis=(SQL_RULES,) * n,
        **kw,
    )


def run_sql(
    tables: Sequence[pa.Table], sql: str, ctx: PrivacyContext | None = None
) -> SqlAggregateOutput:
    params = COMPUTATION.parse_params({"sql": sql})
    out = COMPUTATION.run(list(tables), params, ctx or privacy(len(tables)))
    assert isinstance(out, SqlAggregateOutput)
    canonical_json(out.model_dump(mode="json"))  # the enclave must be able to serialise it
    return out


def num(cell: object) -> float:
    assert isinstance(cell, int | str), cell
    return float(cell)


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return grunfeld()


@pytest.fixture(scope="module")
def tables(df: pd.DataFrame) -> list[pa.Table]:
    return split_by_columns(df)


def test_registered_and_described() -> None:
    c = default_registry().get("sql-aggregate")
    assert c.version == "2.2.0"
    assert c.selectors
    assert c.isolating == ("sql",)
    assert c.privacy_class == "aggregate"
    assert c.release == "requester"
    assert c.variadic
    assert c.accepts_inputs(1)
    assert c.accepts_inputs(3)
    assert input_names(3) == ("a", "b", "c")
    with pytest.raises(InvalidInput, match="parameter sql"):
        c.parse_params({"sql": "x" * 20_001})
    with pytest.raises(InvalidInput, match="parameter"):
        c.parse_params({"sql": "SELECT 1", "other": 1})


def test_three_party_join_matches_plaintext(df: pd.DataFrame, tables: list[pa.Table]) -> None:
    sql = (
        "SELECT a.year, count(*) AS n, count(DISTINCT a.firm) AS firms, sum(a.invest) AS inv, "
        "avg(b.value) AS val, stddev(c.capital) AS sd "
        f"{JOIN3} GROUP BY a.year ORDER BY a.year"
    )
    out = run_sql(tables, sql)
    assert out.columns == ("year", "n", "firms", "inv", "val", "sd")
    assert out.dp is None
    assert not out.truncated
    g = df.groupby("year")
    expected = pd.DataFrame(
        {
            "n": g.size(),
            "firms": g["firm"].nunique(),
            "inv": g["invest"].sum(),
            "val": g["value"].mean(),
            "sd": g["capital"].std(ddof=1),
        }
    )
    assert [r[0] for r in out.rows] == list(expected.index)
    for row in out.rows:
        e = expected.loc[row[0]]
        assert row[1] == e["n"] == 11
        assert row[2] == e["firms"]
        for i, col in enumerate(["inv", "val", "sd"], start=3):
            assert num(row[i]) == pytest.approx(e[col], rel=1e-10), col


def test_filter_suppresses_groups_below_k(df: pd.DataFrame, tables: list[pa.Table]) -> None:
    sql = (
        "SELECT b.year, count(*) AS n, avg(a.invest) AS inv "
        "FROM a JOIN b ON a.firm = b.firm AND a.year = b.year "
        "WHERE b.value > 1000 GROUP BY b.year ORDER BY b.year"
    )
    out = run_sql(tables[:2], sql)
    big = df[df["value"] > 1000].groupby("year")
    firms = big["firm"].nunique()
    kept = firms[firms >= 5].index
    assert 0 < len(kept) < len(firms), "the test needs both released and suppressed groups"
    assert [r[0] for r in out.rows] == list(kept)
    means = big["invest"].mean()
    for row in out.rows:
        assert row[1] == big.size()[row[0]]
        assert num(row[2]) == pytest.approx(means[row[0]], rel=1e-10)


def test_same_answer_as_plain_duckdb_on_joined_plaintext(
    df: pd.DataFrame, tables: list[pa.Table]
) -> None:
    sql = (
        "SELECT a.decade, sum(a.invest) AS s, stddev(c.capital) AS m, avg(b.value) AS v "
        f"{JOIN3} GROUP BY a.decade ORDER BY a.decade"
    )
    out = run_sql(tables, sql)
    plain = duckdb.connect()
    plain.register("t", df)
    expected = plain.execute(
        "SELECT decade, sum(invest), stddev(capital), avg(value) FROM t GROUP BY decade ORDER BY 1"
    ).fetchall()
    assert len(out.rows) == len(expected) == 3
    for got, want in zip(out.rows, expected, strict=True):
        assert got[0] == want[0]
        assert [num(v) for v in got[1:]] == pytest.approx(list(want[1:]), rel=1e-10)


def test_group_of_one_entity_with_many_rows_is_suppressed(tables: list[pa.Table]) -> None:
    # Every firm has 20 rows but is one entity: with k=2 no group of one firm is released.
    labelled = tables[0].append_column("label", tables[0].column("firm"))
    rules = dict(SQL_RULES, dimension_columns=["label"])
    ctx = PrivacyContext(k=(2,), entity_columns=("firm",), analysis=(rules,))
    out = run_sql([labelled], "SELECT label, count(*), sum(invest) FROM a GROUP BY label", ctx)
    assert out.rows == ()
    with pytest.raises(PolicyDenied, match="rule identity-columns"):
        run_sql(tables[:1], "SELECT firm, count(*) FROM a GROUP BY firm", ctx)


def test_group_with_k_minus_one_entities_suppressed_and_not_rebuildable() -> None:
    k = 5
    rng = np.random.default_rng(7)
    # group "big" has 10 entities x 3 rows; group "small" has k-1 = 4 entities x 50 rows.
    ids = [f"e{i}" for i in range(10) for _ in range(3)] + [
        f"s{i}" for i in range(k - 1) for _ in range(50)
    ]
    groups = ["big"] * 30 + ["small"] * 200
    values = rng.integers(1, 1000, size=len(ids)).tolist()
    table = pa.table({"person": ids, "grp": groups, "amount": values})
    rules = {
        "aggregations": ["count", "sum", "avg"],
        "aggregate_columns": ["amount"],
        "dimension_columns": ["grp"],
        "identity_columns": ["person"],
    }
    ctx = PrivacyContext(k=(k,), entity_columns=("person",), analysis=(rules,))
    out = run_sql([table], "SELECT grp, count(*), sum(amount) FROM a GROUP BY grp", ctx)
    assert out.rows == (("big", 30, sum(values[:30])),)
    # No total is released next to the groups, in any form the analyser admits.
    for sql in (
        "SELECT grp, sum(amount) FROM a GROUP BY ROLLUP (grp)",
        "SELECT grp, sum(amount) FROM a GROUP BY GROUPING SETS ((grp), ())",
        "SELECT grp, sum(sum(amount)) OVER () FROM a GROUP BY grp",
        "SELECT grp, sum(amount) FROM a GROUP BY grp UNION ALL SELECT 'all', sum(amount) FROM a",
    ):
        with pytest.raises(PolicyDenied):
            run_sql([table], sql, ctx)
    # With fewer than k rows-per-entity counted as rows, it would pass: entities, not rows.
    rows_ctx = PrivacyContext(k=(k,), analysis=(rules,))
    by_rows = run_sql([table], "SELECT grp, count(*) FROM a GROUP BY grp", rows_ctx)
    assert len(by_rows.rows) == 2


def test_differencing_pair_is_refused(tables: list[pa.Table]) -> None:
    first = "SELECT year, sum(invest) FROM a GROUP BY year"
    assert len(run_sql(tables[:1], first).rows) == 20
    with pytest.raises(PolicyDenied, match="rule identity-columns: a.firm is an identity column"):
        run_sql(tables[:1], "SELECT year, sum(invest) FROM a WHERE firm <> 'IBM' GROUP BY year")


def test_entity_column_is_an_identity_column_even_if_undeclared(tables: list[pa.Table]) -> None:
    rules = dict(SQL_RULES, identity_columns=[], filter_columns=["firm"])
    ctx = PrivacyContext(k=(5,), entity_columns=("firm",), analysis=(rules,))
    with pytest.raises(PolicyDenied, match="rule identity-columns: a.firm"):
        run_sql(tables[:1], "SELECT sum(invest) FROM a WHERE firm LIKE 'I%'", ctx)


def poison_tables(poison: bool) -> list[pa.Table]:
    people = [f"p{i}" for i in range(12)]
    a: dict[str, list[Any]] = {
        "person": people,
        "grp": ["x"] * 6 + ["y"] * 6,
        "num": [10.0 * i for i in range(12)],
        "big": list(range(12)),
    }
    if poison:
        # One entity's extra rows: non-finite doubles and an int64 extreme.
        for value, big in ((float("nan"), 2**63 - 1), (float("inf"), -(2**63)), (None, None)):
            a["person"].append("p3")
            a["grp"].append("x")
            a["num"].append(value)
            a["big"].append(big)
    return [pa.table(a)]


POISON_RULES = {
    "aggregations": ["count", "count_distinct", "sum", "avg", "stddev"],
    "aggregate_columns": ["num", "big"],
    "dimension_columns": ["grp"],
    "identity_columns": ["person"],
}


def test_no_row_can_turn_success_into_failure() -> None:
    ctx = PrivacyContext(k=(3,), entity_columns=("person",), analysis=(POISON_RULES,))
    sql = (
        "SELECT grp, count(DISTINCT person) AS people, sum(num), avg(num), stddev(big), "
        "sum(big) FROM a GROUP BY grp ORDER BY grp"
    )
    clean = run_sql(poison_tables(False), sql, ctx)
    poisoned = run_sql(poison_tables(True), sql, ctx)
    assert clean.rows[1] == poisoned.rows[1]  # group y is untouched
    assert poisoned.rows[0][0] == "x"
    assert poisoned.rows[0][1] == 6
    assert num(clean.rows[0][2]) == pytest.approx(sum(10.0 * i for i in range(6)))
    # Sums of int64 are HUGEINT: 2^63 - 1 - 2^63 + 15 leaves an exact integer.
    assert poisoned.rows[0][5] == sum(range(6)) - 1


def test_column_rules_from_the_policy(tables: list[pa.Table]) -> None:
    join_only = PrivacyContext(
        k=(5, 5),
        entity_columns=("firm", "firm"),
        analysis=(SQL_RULES, SQL_RULES),
        join_only=(frozenset({"year"}), frozenset({"year"})),
    )
    join = "FROM a JOIN b ON a.firm = b.firm AND a.year = b.year"
    assert (
        len(
            run_sql(
                tables[:2], f"SELECT a.decade, sum(b.value) {join} GROUP BY a.decade", join_only
            ).rows
        )
        == 3
    )
    with pytest.raises(PolicyDenied, match="rule join-only: b.year may be used as a join key only"):
        run_sql(tables[:2], f"SELECT b.year, sum(b.value) {join} GROUP BY b.year", join_only)
    never = PrivacyContext(
        k=(5,),
        entity_columns=("firm",),
        analysis=(SQL_RULES,),
        never_output=(frozenset({"invest"}),),
    )
    assert run_sql(tables[:1], "SELECT count(invest) FROM a", never).rows == ((220,),)
    with pytest.raises(PolicyDenied, match="rule never-output: a.invest is never output"):
        run_sql(tables[:1], "SELECT sum(invest) FROM a", never)


def test_output_caps_and_limits(tables: list[pa.Table]) -> None:
    capped = privacy(1, max_output_rows=5)
    out = run_sql(tables[:1], "SELECT year, sum(invest) FROM a GROUP BY year", capped)
    assert len(out.rows) == 5
    assert out.truncated
    with pytest.raises(PolicyDenied, match="rule output-limit"):
        run_sql(tables[:1], "SELECT year, sum(invest) FROM a GROUP BY year LIMIT 6", capped)
    out = run_sql(
        tables[:1], "SELECT year, sum(invest) AS s FROM a GROUP BY year ORDER BY s DESC LIMIT 3"
    )
    assert len(out.rows) == 3
    assert not out.truncated
    sums = [num(r[1]) for r in out.rows]
    assert sums == sorted(sums, reverse=True)


def test_input_without_rules_and_bind_errors(tables: list[pa.Table]) -> None:
    ctx = PrivacyContext(k=(5, 5), entity_columns=("firm", "firm"), analysis=(SQL_RULES, None))
    with pytest.raises(PolicyDenied, match="rule sql-rules-declared: input b"):
        run_sql(tables[:2], "SELECT count(*) FROM a JOIN b ON a.firm = b.firm", ctx)
    # A binder error depends on the schema only, so its reason is reported.
    text_rules = dict(SQL_RULES, aggregate_columns=["firm_name"])
    t = pa.table({"firm": ["f"] * 6, "firm_name": ["x"] * 6})
    ctx1 = PrivacyContext(k=(1,), entity_columns=("firm",), analysis=(text_rules,))
    with pytest.raises(InvalidInput, match="does not bind") as info:
        run_sql([t], "SELECT sum(firm_name) FROM a", ctx1)
    assert RUNTIME_REFUSAL not in str(info.value.detail)


def test_runs_are_isolated_from_files_and_settings(tables: list[pa.Table]) -> None:
    for sql in (
        "SELECT count(*) FROM read_parquet('/etc/passwd')",
        "SELECT count(*) FROM 'data.csv'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "SELECT count(*) FROM duckdb_tables()",
    ):
        with pytest.raises((PolicyDenied, InvalidInput)):
            run_sql(tables[:1], sql)
