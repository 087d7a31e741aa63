from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.aggregate_stats import AggregateStatsOutput
from sealroom.computations.base import PrivacyCost, schema_text
from sealroom.errors import InvalidInput, PolicyDenied
from tests.computations.stats_split_data import as_strings, frame, row_shares, with_row

AGG = default_registry().get("aggregate-stats")


def run(
    tables: list[pa.Table],
    k: int = 5,
    entity: str | None = "id",
    cost: PrivacyCost | None = None,
    **params: object,
) -> AggregateStatsOutput:
    n = len(tables)
    privacy = PrivacyContext(k=(k,) * n, entity_columns=(entity,) * n, cost=cost or PrivacyCost())
    out = AGG.run(tables, AGG.parse_params(params), privacy)
    assert isinstance(out, AggregateStatsOutput)
    return out


def close(text: str | None, expected: float, rel: float = 1e-9) -> None:
    assert text is not None
    assert float(text) == pytest.approx(expected, rel=rel, abs=1e-12)


def test_declaration_and_arity() -> None:
    assert AGG.variadic
    assert AGG.version == "2.3.0"
    assert AGG.privacy_class == "aggregate"
    assert AGG.accepts_inputs(2)
    assert AGG.accepts_inputs(7)
    assert not AGG.accepts_inputs(1)
    assert set(AGG.isolating) == {"value", "group_by", "period", "percentiles"}
    with pytest.raises(InvalidInput, match="2 or more"):
        AGG.run(
            row_shares("fair", 1), AGG.parse_params({"value": "affairs"}), PrivacyContext(k=(5,))
        )


def released_percentile(df: pd.DataFrame, value: str, parties: int, p: int, k: int) -> float | None:
    """The rule, restated: the percentile if every party has k entities strictly on each side."""
    v = float(np.percentile(df[value].to_numpy(), p))
    for i in range(parties):
        mine = df[df["id"] % parties == i]
        below = mine.loc[mine[value] < v, "id"].nunique()
        above = mine.loc[mine[value] > v, "id"].nunique()
        if below < k or above < k:
            return None
    return v


def test_five_parties_match_pandas_and_scipy() -> None:
    tables = row_shares("fair", 5, cols=["occupation", "affairs"])
    out = run(tables, value="affairs", group_by=["occupation"], percentiles=[10, 50, 90])
    df = frame("fair")
    assert out.parties == 5
    assert out.k == 5
    assert out.suppressed_groups == 0
    assert out.dp is None
    assert [g.key for g in out.groups] == [(str(i),) for i in range(1, 7)]
    withheld = released = 0
    for g in out.groups:
        rows = df[df["occupation"] == float(g.key[0])]
        vals = rows["affairs"].to_numpy()
        assert g.stats.rows == g.stats.entities == len(vals)
        close(g.stats.sum, float(vals.sum()))
        close(g.stats.mean, float(vals.mean()))
        lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
        close(g.stats.ci_low, float(lo))
        close(g.stats.ci_high, float(hi))
        assert [p.p for p in g.stats.percentiles] == [10, 50, 90]
        for got in g.stats.percentiles:
            want = released_percentile(rows, "affairs", 5, got.p, 5)
            if want is None:
                assert got.value is None
                withheld += 1
            else:
                assert got.value is not None
                assert float(got.value) == pytest.approx(want, abs=1e-12)
                released += 1
    assert withheld > 0, "the data must exercise both sides of the percentile rule"
    assert released > 0
    all_vals = df["affairs"].to_numpy()
    close(out.overall.sum, float(all_vals.sum()))
    close(out.overall.mean, float(all_vals.mean()))
    assert out.overall.rows == len(df)


def test_period_growth_two_parties_split_by_firm() -> None:
    df = frame("grunfeld")
    firms = sorted(df["firm"].unique())
    parts = [df[df["firm"].isin(firms[:5])], df[df["firm"].isin(firms[5:])]]
    tables = [
        pa.Table.from_pandas(p[["firm", "year", "invest"]], preserve_index=False) for p in parts
    ]
    out = run(tables, entity="firm", value="invest", period="year")
    by_year = df.groupby("year")["invest"].sum()
    assert [p.period for p in out.periods] == [str(int(y)) for y in by_year.index]
    assert [g.period for g in out.groups] == [str(int(y)) for y in by_year.index]
    for i, p in enumerate(out.periods):
        close(p.stats.sum, float(by_year.iloc[i]))
        assert p.stats.entities == df["firm"].nunique() == 11
        if i == 0:
            assert p.growth is None
        else:
            close(p.growth, float(by_year.iloc[i] / by_year.iloc[i - 1] - 1))
    for i, g in enumerate(out.groups[1:], start=1):
        close(g.growth, float(by_year.iloc[i] / by_year.iloc[i - 1] - 1))
    # k = 6: the first party holds only 5 firms per year, so every group is withheld
    strict = run(tables, k=6, entity="firm", value="invest", period="year")
    assert strict.groups == ()
    assert strict.suppressed_groups == 20
    assert strict.overall.rows == 0


def small_group(n_entities: int, rows: int, first: int = 10_000) -> dict[str, list[object]]:
    return {
        "id": [first + (i % n_entities) for i in range(rows)],
        "occupation": [99.0] * rows,
        "affairs": [1000.0 + i for i in range(rows)],
    }


def test_k_minus_one_entities_suppressed_and_not_rebuildable_from_totals() -> None:
    tables = row_shares("fair", 3, cols=["occupation", "affairs"])
    base = run(tables, value="affairs", group_by=["occupation"])
    extra = pa.table(small_group(4, 400)).cast(tables[0].schema)
    attacked = [pa.concat_tables([tables[0], extra]), *tables[1:]]
    out = run(attacked, value="affairs", group_by=["occupation"])
    assert [g.key for g in out.groups] == [g.key for g in base.groups]
    assert out.suppressed_groups == (base.suppressed_groups or 0) + 1
    # totals over released groups only: identical to the run without the small group
    assert out.overall == base.overall
    assert out.groups == base.groups
    # five entities in every party: released
    fives = [
        pa.concat_tables([t, pa.table(small_group(5, 50, 10_000 * (i + 1))).cast(t.schema)])
        for i, t in enumerate(tables)
    ]
    released = run(fives, value="affairs", group_by=["occupation"])
    assert ("99",) in [g.key for g in released.groups]


def test_a_group_needs_k_entities_in_every_input() -> None:
    tables = row_shares("fair", 2, cols=["occupation", "affairs"])
    many = pa.table(small_group(20, 40)).cast(tables[0].schema)
    one = pa.table({"id": [50_000], "occupation": [99.0], "affairs": [7.0]}).cast(tables[1].schema)
    with_one = run(
        [pa.concat_tables([tables[0], many]), pa.concat_tables([tables[1], one])],
        value="affairs",
        group_by=["occupation"],
    )
    without = run(
        [pa.concat_tables([tables[0], many]), tables[1]], value="affairs", group_by=["occupation"]
    )
    # Party 2 with one entity or with none: the same answer (no membership oracle).
    assert ("99",) not in [g.key for g in with_one.groups]
    assert with_one == without


@pytest.mark.parametrize("poison", [1e300, float("inf"), float("-inf"), float("nan")])
def test_poison_value_same_response(poison: float) -> None:
    tables = row_shares("fair", 3, cols=["occupation", "affairs"])
    clean = run(tables, value="affairs", group_by=["occupation"])
    bad = with_row(tables[1], {"id": 77_777, "occupation": 3.0, "affairs": poison})
    assert run([tables[0], bad, tables[2]], value="affairs", group_by=["occupation"]) == clean


def test_unparseable_and_zero_growth_denominator() -> None:
    tables = [
        as_strings(t, "affairs") for t in row_shares("fair", 2, cols=["occupation", "affairs"])
    ]
    clean = run(tables, value="affairs", group_by=["occupation"])
    bad = with_row(tables[0], {"id": 77_777, "occupation": 2.0, "affairs": "12,5 EUR"})
    assert run([bad, tables[1]], value="affairs", group_by=["occupation"]) == clean
    close(clean.overall.sum, float(frame("fair")["affairs"].sum()))
    zero = [
        pa.table({"id": list(range(10)), "t": [1] * 5 + [2] * 5, "v": [0.0] * 5 + [3.0] * 5}),
        pa.table({"id": list(range(10, 20)), "t": [1] * 5 + [2] * 5, "v": [0.0] * 5 + [1.0] * 5}),
    ]
    out = run(zero, value="v", period="t")
    assert [p.growth for p in out.periods] == [None, None]  # previous sum 0: undefined, no error
    close(out.periods[1].stats.sum, 20.0)


def test_policy_columns_refused_by_rule_here_and_before_the_run() -> None:
    tables = row_shares("fair", 2, cols=["occupation", "affairs"])
    schemas = [schema_text(t.schema) for t in tables]
    params = AGG.parse_params({"value": "affairs", "group_by": ["occupation"]})
    never = PrivacyContext(k=(5, 5), never_output=(frozenset(), frozenset({"occupation"})))
    join_only = PrivacyContext(k=(5, 5), join_only=(frozenset({"affairs"}), frozenset()))
    for privacy, rule in ((never, "never-output"), (join_only, "join-only")):
        with pytest.raises(PolicyDenied, match=f"rule {rule}") as before:
            AGG.admit(params, schemas, privacy)
        with pytest.raises(PolicyDenied, match=f"rule {rule}") as during:
            AGG.run(tables, params, privacy)
        assert before.value.rule == during.value.rule == rule
        assert before.value.detail == during.value.detail
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        AGG.admit(AGG.parse_params({"value": "nope"}), schemas, PrivacyContext(k=(5, 5)))


def test_exact_release_reports_the_entities_behind_every_number() -> None:
    tables = row_shares("fair", 2, cols=["occupation", "affairs"])
    privacy = PrivacyContext(k=(5, 5), entity_columns=("id", "id"))
    out, footprint = AGG.execute(
        tables, AGG.parse_params({"value": "affairs", "group_by": ["occupation"]}), privacy
    )
    assert isinstance(out, AggregateStatsOutput)
    assert footprint is not None
    df = frame("fair")
    for i in range(2):
        cells = footprint.cells[i]
        mine = df[df["id"] % 2 == i]
        for g in out.groups:
            ids = frozenset(mine.loc[mine["occupation"] == float(g.key[0]), "id"].tolist())
            assert ids in cells
        assert frozenset(mine["id"].tolist()) in cells  # the overall total
        assert len(cells) == len(out.groups) + 1


def test_dp_mode_costs_epsilon_and_delta_and_stays_near_the_truth() -> None:
    tables = row_shares("fair", 5, cols=["occupation", "affairs"])
    params = {
        "value": "affairs",
        "group_by": ["occupation"],
        "percentiles": [50],
        "dp": {"epsilon": "8", "delta": "0.000001", "lower": "0", "upper": "10"},
    }
    cost = PrivacyCost(epsilon=Decimal(8), delta=Decimal("0.000001"))
    assert AGG.cost(AGG.parse_params(params)) == cost
    assert AGG.cost(AGG.parse_params({"value": "affairs"})).is_zero
    with pytest.raises(PolicyDenied, match="exceeds the budget") as info:
        run(tables, cost=PrivacyCost(epsilon=Decimal(1), delta=Decimal("0.5")), **params)
    assert info.value.rule == "dp-budget"
    no_delta = {**params, "dp": {**params["dp"], "delta": "0"}}  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="partition selection"):
        run(tables, cost=cost, **no_delta)
    out = run(tables, cost=cost, **params)
    assert out.dp is not None
    assert out.dp.epsilon == "8"
    assert out.dp.delta == "0.000001"
    assert out.dp.epsilon_per_statistic == "2.666666666666666666666666666"
    assert out.dp.statistics == ("count", "sum", "p50")
    assert out.dp.threshold is not None
    assert out.dp.threshold > 1
    assert out.k is None
    assert out.suppressed_groups is None
    assert out.confidence is None
    assert all(g.stats.entities is None and g.stats.ci_low is None for g in out.groups)
    df = frame("fair")
    for g in out.groups:
        vals = df.loc[df["occupation"] == float(g.key[0]), "affairs"].clip(0, 10)
        assert g.stats.rows is not None
        assert abs(g.stats.rows - len(vals)) <= 20
        assert g.stats.sum is not None
        assert abs(float(g.stats.sum) - vals.sum()) <= 100
    # the big groups are always released; totals are sums of the released noisy values
    assert {("2",), ("3",), ("4",), ("5",)} <= {g.key for g in out.groups}
    total = sum(float(g.stats.sum or 0) for g in out.groups)
    close(out.overall.sum, total)
    assert out.overall.rows == sum(g.stats.rows or 0 for g in out.groups)
