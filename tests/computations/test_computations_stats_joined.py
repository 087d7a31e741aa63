"""intersection-overlap, intersection-sum, lift and association-test on real split data."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from sealroom.computations import PrivacyContext, default_registry
from sealroom.errors import InvalidInput, PolicyDenied
from tests.computations.join_truth import WIDE, coded
from tests.computations.stats_split_data import as_strings, columns_of, frame, with_row

REG = default_registry()
OVERLAP = REG.get("intersection-overlap")
ISUM = REG.get("intersection-sum")
LIFT = REG.get("lift")
ASSOC = REG.get("association-test")

FAIR_A = range(0, 4000, 2)  # even rows 0..3998
FAIR_B = range(1000, 6366)


def ctx(k: int = 5, entity: str | None = "id") -> PrivacyContext:
    return PrivacyContext(k=(k, k), entity_columns=(entity, entity))


def close(text: str | None, expected: float, rel: float = 1e-9) -> None:
    assert text is not None
    assert float(text) == pytest.approx(expected, rel=rel, abs=1e-12)


# ---- intersection-overlap ------------------------------------------------------------


def test_overlap_matches_python_sets_with_string_and_int_ids() -> None:
    a = columns_of("fair", ["age"], rows=FAIR_A)
    b = columns_of("fair", ["affairs"], rows=FAIR_B)
    b = b.set_column(0, "id", pa.array([f" {i} " for i in b.column("id").to_pylist()]))
    out = OVERLAP.run([a, b], OVERLAP.parse_params({}), ctx())
    sa, sb = set(FAIR_A), set(FAIR_B)
    assert (out.size_a, out.size_b, out.overlap, out.union) == (
        len(sa),
        len(sb),
        len(sa & sb),
        len(sa | sb),
    )
    close(out.jaccard, len(sa & sb) / len(sa | sb))
    close(out.share_of_a, len(sa & sb) / len(sa))
    assert not out.below_k


def test_overlap_below_k_reports_below_k_not_the_number() -> None:
    a = pa.table({"id": list(range(100))})
    b = pa.table({"id": [*range(96, 100), *range(1000, 1100)] * 3})  # 4 shared, many rows
    out = OVERLAP.run([a, b], OVERLAP.parse_params({}), ctx())
    assert out.below_k
    assert out.overlap is None
    assert out.union is None
    assert out.jaccard is None
    assert (out.size_a, out.size_b) == (100, 104)
    dumped = out.model_dump_json()
    assert "204" not in dumped
    assert '"overlap":null' in dumped
    out5 = OVERLAP.run([a, pa.table({"id": list(range(95, 100))})], OVERLAP.parse_params({}), ctx())
    assert out5.overlap == 5
    assert not out5.below_k


def test_overlap_join_only_keys_are_fine_and_null_ids_absent() -> None:
    a = pa.table({"cust": [1, 2, 3, 4, 5, 6, None]})
    b = pa.table({"cust": ["1", "2", "3", "4", "5", None, ""]})
    privacy = PrivacyContext(k=(5, 5), join_only=(frozenset({"cust"}), frozenset({"cust"})))
    out = OVERLAP.run([a, b], OVERLAP.parse_params({"key_a": "cust", "key_b": "cust"}), privacy)
    assert (out.overlap, out.size_a, out.size_b) == (5, 6, 5)


# ---- intersection-sum ----------------------------------------------------------------


def test_intersection_sum_matches_numpy() -> None:
    a = columns_of("fair", ["age"], rows=FAIR_A)
    b = columns_of("fair", ["affairs"], rows=FAIR_B)
    out = ISUM.run([a, b], ISUM.parse_params({"value": "affairs", "value_bounds": WIDE}), ctx())
    df = frame("fair")
    shared = sorted(set(FAIR_A) & set(FAIR_B))
    vals = coded(df.loc[shared, "affairs"].to_numpy(), 5)
    assert out.overlap == out.rows == len(shared)
    close(out.sum, float(vals.sum()))
    close(out.mean_per_id, float(vals.mean()))
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
    close(out.ci_low, float(lo))
    close(out.ci_high, float(hi))


def test_intersection_sum_value_on_a_and_several_rows_per_id() -> None:
    df = frame("grunfeld")
    b = pa.table({"firm": sorted(df["firm"].unique())[:7]})
    a = pa.Table.from_pandas(df[["firm", "invest"]], preserve_index=False)
    privacy = PrivacyContext(k=(3, 3), entity_columns=("firm", "firm"))
    params = {
        "key_a": "firm",
        "key_b": "firm",
        "value": "invest",
        "value_input": "a",
        "value_bounds": WIDE,
    }
    out = ISUM.run([a, b], ISUM.parse_params(params), privacy)
    per_firm = coded(df.groupby("firm")["invest"].sum().loc[b.column("firm").to_pylist()], 3)
    assert (out.overlap, out.rows) == (7, 140)
    close(out.sum, float(per_firm.sum()))
    close(out.mean_per_id, float(per_firm.mean()))
    close(out.mean_per_row, float(per_firm.sum() / 140))


def test_intersection_sum_below_k_refused_and_poison_rows_ignored() -> None:
    a = pa.table({"id": list(range(4)) * 50})
    b = pa.table({"id": list(range(100)), "v": [float(i) for i in range(100)]})
    with pytest.raises(PolicyDenied, match="below the threshold") as info:
        ISUM.run([a, b], ISUM.parse_params({"value": "v", "value_bounds": WIDE}), ctx())
    assert info.value.rule == "k-threshold"
    a = columns_of("fair", ["age"], rows=FAIR_A)
    b = as_strings(columns_of("fair", ["affairs"], rows=FAIR_B), "affairs")
    params = ISUM.parse_params({"value": "affairs", "value_bounds": WIDE})
    clean = ISUM.run([a, b], params, ctx())
    for poison in ("9" * 400, "1e309", "abc", "nan", "-inf"):
        bad_b = with_row(b, {"id": 2, "affairs": poison})  # id 2 is in a but not in b
        bad_a = with_row(a, {"id": 90_001, "age": 30.0})
        assert (
            ISUM.run(
                [bad_a, with_row(bad_b, {"id": 90_001, "affairs": poison})],
                params,
                ctx(),
            )
            == clean
        )


# ---- lift -----------------------------------------------------------------------------


def lift_tables() -> tuple[pa.Table, pa.Table, pa.DataFrame]:
    """fair: exposure = women with children (test) vs without (control); conversion = any affair."""
    df = frame("fair")
    exposure = pa.table(
        {"id": df["id"], "group": ["test" if c > 0 else "control" for c in df["children"]]}
    )
    conv = df[df["affairs"] > 0]
    conversions = pa.table({"id": conv["id"], "when": ["2024-01"] * len(conv)})
    return exposure, conversions, df


def test_lift_matches_statsmodels_ztest() -> None:
    exposure, conversions, df = lift_tables()
    out = LIFT.run([exposure, conversions], LIFT.parse_params({}), ctx())
    t, c = df[df["children"] > 0], df[df["children"] == 0]
    ct, cc = int((t["affairs"] > 0).sum()), int((c["affairs"] > 0).sum())
    z, p = proportions_ztest([ct, cc], [len(t), len(c)])
    assert (out.test.n, out.test.conversions, out.control.n, out.control.conversions) == (
        len(t),
        ct,
        len(c),
        cc,
    )
    pt, pc = ct / len(t), cc / len(c)
    close(out.absolute_lift, pt - pc)
    close(out.relative_lift, pt / pc - 1)
    close(out.z, float(z))
    close(out.p_value, float(p), rel=1e-7)
    se = math.sqrt(pt * (1 - pt) / len(t) + pc * (1 - pc) / len(c))
    close(out.absolute_ci_low, pt - pc - stats.norm.ppf(0.975) * se)
    close(out.incremental_conversions, ct - pc * len(t))


def test_lift_with_flag_column_and_contaminated_ids() -> None:
    df = frame("spector")
    exposure = pa.table({"id": df["id"], "group": ["test" if x else "control" for x in df["PSI"]]})
    exposure = with_row(exposure, {"id": 0, "group": "test" if df["PSI"][0] == 0 else "control"})
    conv = pa.table({"id": df["id"], "y": ["yes" if g else "no" for g in df["GRADE"]]})
    out = LIFT.run([exposure, conv], LIFT.parse_params({"conversion": "y"}), ctx(k=3))
    kept = df.iloc[1:]  # id 0 is in both arms: left out
    t, c = kept[kept["PSI"] == 1], kept[kept["PSI"] == 0]
    _z, p = proportions_ztest([t["GRADE"].sum(), c["GRADE"].sum()], [len(t), len(c)])
    assert (out.test.n, out.control.n) == (len(t), len(c))
    close(out.p_value, float(p), rel=1e-7)


def test_lift_refuses_an_arm_where_nearly_everyone_converted() -> None:
    exposure = pa.table({"id": list(range(40)), "group": ["test"] * 20 + ["control"] * 20})
    conv = pa.table({"id": [*range(0, 16), *range(20, 30)]})  # test: 16 of 20 convert, 4 do not
    with pytest.raises(PolicyDenied, match="non-converted"):
        LIFT.run([exposure, conv], LIFT.parse_params({}), ctx())
    ok = pa.table({"id": [*range(0, 15), *range(20, 30)]})
    assert LIFT.run([exposure, ok], LIFT.parse_params({}), ctx()).test.conversions == 15


def test_lift_poison_rows_same_response_and_column_rules() -> None:
    exposure, conversions, _ = lift_tables()
    clean = LIFT.run([exposure, conversions], LIFT.parse_params({}), ctx())
    bad = with_row(exposure, {"id": None, "group": "test"})
    bad = with_row(bad, {"id": 99_999, "group": None})
    assert LIFT.run([bad, conversions], LIFT.parse_params({}), ctx()) == clean
    privacy = PrivacyContext(k=(5, 5), never_output=(frozenset({"group"}), frozenset()))
    with pytest.raises(InvalidInput, match="never-output"):
        LIFT.run([exposure, conversions], LIFT.parse_params({}), privacy)


# ---- association-test -------------------------------------------------------------------


def test_association_numeric_signal_binary_outcome() -> None:
    a = columns_of("spector", ["GPA", "PSI"])
    b = columns_of("spector", ["GRADE"])
    params = {"signal": "GPA", "signal_bounds": ["0", "4"], "outcome": "GRADE"}
    out = ASSOC.run([a, b], ASSOC.parse_params(params), ctx(k=3))
    df = frame("spector").assign(GPA=lambda d: coded(d["GPA"], 3))
    g1, g0 = df.loc[df["GRADE"] == 1, "GPA"], df.loc[df["GRADE"] == 0, "GPA"]
    res = stats.ttest_ind(g1, g0, equal_var=False)
    sp = math.sqrt(((len(g1) - 1) * g1.var() + (len(g0) - 1) * g0.var()) / (len(df) - 2))
    assert out.effect.name == "standardized_mean_difference"
    assert out.n == 32
    close(out.effect.estimate, float((g1.mean() - g0.mean()) / sp))
    close(out.statistic, float(res.statistic))
    close(out.p_value, float(res.pvalue), rel=1e-7)
    close(out.correlation, float(stats.pointbiserialr(df["GRADE"], df["GPA"])[0]))
    assert out.significant is True


def test_association_binary_binary_odds_ratio_and_chi2() -> None:
    df = frame("fair")
    sig = pa.table({"id": df["id"], "kids": [c > 0 for c in df["children"]]})
    outc = pa.table({"id": df["id"], "affair": [int(x > 0) for x in df["affairs"]]})
    params = {"signal": "kids", "signal_type": "binary", "outcome": "affair"}
    out = ASSOC.run([sig, outc], ASSOC.parse_params(params), ctx())
    table = sm.stats.Table2x2(
        np.array(
            [
                [
                    ((df.children > 0) & (df.affairs > 0)).sum(),
                    ((df.children > 0) & (df.affairs == 0)).sum(),
                ],
                [
                    ((df.children == 0) & (df.affairs > 0)).sum(),
                    ((df.children == 0) & (df.affairs == 0)).sum(),
                ],
            ]
        )
    )
    close(out.effect.estimate, float(table.oddsratio))
    lo, hi = table.oddsratio_confint()
    close(out.effect.ci_low, float(lo))
    close(out.effect.ci_high, float(hi))
    chi = table.test_nominal_association()
    close(out.statistic, float(chi.statistic))
    close(out.p_value, float(chi.pvalue), rel=1e-6)


def test_association_ticket_counts_with_fill_and_numeric_outcome() -> None:
    # signal = number of rows per id (like support tickets); fair: rows of yrs_married > 10 as tickets
    df = frame("fair")
    many = df[df["yrs_married"] > 10]
    tickets = pa.table({"id": np.repeat(many["id"].to_numpy(), 2)})
    outc = pa.table({"id": df["id"], "rate": df["rate_marriage"]})
    params = {
        "signal_agg": "count",
        "signal_bounds": ["0", "10"],
        "fill_missing_signal": True,
        "outcome": "rate",
        "outcome_type": "numeric",
        "outcome_bounds": ["1", "5"],
    }
    out = ASSOC.run([tickets, outc], ASSOC.parse_params(params), ctx())
    x = np.where(df["yrs_married"] > 10, 2.0, 0.0)
    r = float(np.corrcoef(x, df["rate_marriage"])[0, 1])
    assert out.effect.name == "pearson_r"
    assert out.n == len(df)
    close(out.effect.estimate, r)
    close(out.p_value, float(stats.pearsonr(x, df["rate_marriage"]).pvalue), rel=1e-7)


def test_association_small_class_refused_and_poison_same() -> None:
    sig = pa.table({"id": list(range(50)), "s": [1.0] * 4 + [0.0] * 46})
    outc = pa.table({"id": list(range(50)), "o": [float(i % 7) for i in range(50)]})
    params = {
        "signal": "s",
        "signal_type": "binary",
        "outcome": "o",
        "outcome_type": "numeric",
        "outcome_bounds": ["0", "10"],
    }
    with pytest.raises(PolicyDenied, match="every class") as info:
        ASSOC.run([sig, outc], ASSOC.parse_params(params), ctx())
    assert info.value.rule == "k-threshold"
    a = columns_of("spector", ["GPA"])
    b = columns_of("spector", ["GRADE"])
    p2 = {"signal": "GPA", "signal_bounds": WIDE, "outcome": "GRADE"}
    clean = ASSOC.run([a, b], ASSOC.parse_params(p2), ctx(k=3))
    bad_a = with_row(a, {"id": 500, "GPA": 1e200})
    bad_b = with_row(with_row(b, {"id": 500, "GRADE": 1.0}), {"id": 3, "GRADE": 7.0})  # not 0/1
    assert ASSOC.run([bad_a, bad_b], ASSOC.parse_params(p2), ctx(k=3)) == clean
