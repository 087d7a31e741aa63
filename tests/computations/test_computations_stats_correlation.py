from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations._stats import num
from sealroom.computations.correlation import CorrelationOutput
from sealroom.errors import InvalidInput, PolicyDenied
from tests.computations.join_truth import WIDE, coded
from tests.computations.stats_split_data import as_strings, columns_of, frame, with_row

CORR = default_registry().get("correlation")


def run(
    a: pa.Table, b: pa.Table, k: tuple[int, int] = (5, 5), **params: object
) -> CorrelationOutput:
    privacy = PrivacyContext(k=k, entity_columns=("id", "id"))
    params = {"x_bounds": WIDE, "y_bounds": WIDE, **params}
    out = CORR.run([a, b], CORR.parse_params(params), privacy)
    assert isinstance(out, CorrelationOutput)
    return out


def close(text: str | None, expected: float, rel: float = 1e-9) -> None:
    assert text is not None
    assert float(text) == pytest.approx(expected, rel=rel, abs=1e-30)


def test_declaration() -> None:
    assert (CORR.privacy_class, CORR.release, CORR.input_names) == (
        "aggregate",
        "all-parties",
        ("a", "b"),
    )


def test_vertical_split_matches_scipy_and_fisher() -> None:
    a = columns_of("fair", ["age", "yrs_married"])
    b = columns_of("fair", ["affairs", "rate_marriage"])
    out = run(a, b, x="yrs_married", y="rate_marriage")
    df = frame("fair")
    # Every extreme value is shared by more than k = 5 women: the coding changes nothing.
    x, y = df["yrs_married"].to_numpy(), df["rate_marriage"].to_numpy()
    assert (coded(x, 5) == x).all()
    assert (coded(y, 5) == y).all()
    n = len(df)
    assert out.n == n
    r = float(np.corrcoef(x, y)[0, 1])
    close(out.pearson.estimate, r)
    z = np.arctanh(r)
    half = stats.norm.ppf(0.975) / math.sqrt(n - 3)
    close(out.pearson.ci_low, math.tanh(z - half))
    close(out.pearson.ci_high, math.tanh(z + half))
    t = r * math.sqrt((n - 2) / (1 - r * r))
    close(out.pearson.p_value, 2 * stats.t.sf(abs(t), n - 2), rel=1e-6)
    rho = float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    assert out.spearman is not None
    close(out.spearman.estimate, rho)
    half_s = stats.norm.ppf(0.975) * math.sqrt(1.06 / (n - 3))
    close(out.spearman.ci_high, math.tanh(np.arctanh(rho) + half_s))
    assert out.confidence == "0.95"
    assert "negative" in out.insight


def test_rows_split_differently_and_partial_overlap() -> None:
    a = columns_of("spector", ["GPA"], rows=range(0, 28))
    b = columns_of("spector", ["TUCE"], rows=range(4, 32))
    out = run(a, b, x="GPA", y="TUCE", confidence="0.9")
    df = frame("spector").iloc[4:28]
    assert out.n == 24
    x, y = coded(df["GPA"], 5), coded(df["TUCE"], 5)
    r = float(np.corrcoef(x, y)[0, 1])
    close(out.pearson.estimate, r)
    half = stats.norm.ppf(0.95) / math.sqrt(24 - 3)
    close(out.pearson.ci_low, math.tanh(np.arctanh(r) - half))


def test_group_key_aggregates_each_side_first() -> None:
    df = frame("grunfeld")
    a = pa.Table.from_pandas(df[["id", "firm", "invest"]], preserve_index=False)
    b = pa.Table.from_pandas(df[["id", "firm", "value"]], preserve_index=False)
    out = run(a, b, key_a="firm", key_b="firm", x="invest", y="value", k=(5, 5))
    means = df.groupby("firm")[["invest", "value"]].mean()
    assert out.n == len(means)
    # The entity is the row: each firm's value stands on 20 entities, so no extreme level
    # needs coding (k counts entities, not keys).
    x, y = means["invest"], means["value"]
    close(out.pearson.estimate, float(np.corrcoef(x, y)[0, 1]))
    assert out.spearman is not None
    close(out.spearman.estimate, float(stats.spearmanr(x, y)[0]))
    counted = run(a, b, key_a="firm", key_b="firm", x="invest", y="value", agg_a="count")
    assert counted.pearson.estimate is None  # every firm has 20 rows: a constant side
    assert "undefined" in counted.insight


def test_refuses_below_k_distinct_entities_even_with_many_rows() -> None:
    # 4 entities with 50 rows each on side a: below k=5 whatever the row count.
    ids = [i % 4 for i in range(200)]
    a = pa.table({"id": ids, "x": [float(i) for i in range(200)]})
    b = pa.table({"id": list(range(4)), "y": [1.0, 2.0, 3.0, 5.0]})
    with pytest.raises(PolicyDenied, match="fewer than its threshold of 5") as info:
        run(a, b, x="x", y="y")
    assert info.value.rule == "k-threshold"
    a9 = pa.table({"id": [i % 9 for i in range(200)], "x": [float(i) for i in range(200)]})
    b9 = pa.table({"id": list(range(9)), "y": [1.0, 2.0, 3.0, 5.0, 4.0, 6.0, 8.0, 7.0, 9.0]})
    assert run(a9, b9, x="x", y="y").n == 9


@pytest.mark.parametrize("poison", [1e308, float("inf"), float("nan"), 2.0**70])
def test_poison_value_gives_the_same_response(poison: float) -> None:
    a = columns_of("spector", ["GPA"])
    b = columns_of("spector", ["TUCE"])
    clean = run(a, b, x="GPA", y="TUCE")
    assert (
        run(
            with_row(a, {"id": 999, "GPA": poison}),
            with_row(b, {"id": 999, "TUCE": 20.0}),
            x="GPA",
            y="TUCE",
        )
        == clean
    )


def test_unparseable_string_gives_the_same_response() -> None:
    a = as_strings(columns_of("spector", ["GPA"]), "GPA")
    b = columns_of("spector", ["TUCE"])
    clean = run(a, b, x="GPA", y="TUCE", k=(1, 1))
    poisoned = with_row(a, {"id": 999, "GPA": "1e99999"})
    poisoned = with_row(poisoned, {"id": 1000, "GPA": "not a number"})
    b2 = with_row(with_row(b, {"id": 999, "TUCE": 1.0}), {"id": 1000, "TUCE": 2.0})
    assert run(poisoned, b2, x="GPA", y="TUCE", k=(1, 1)) == clean
    close(
        clean.pearson.estimate,
        float(np.corrcoef(frame("spector")["GPA"], frame("spector")["TUCE"])[0, 1]),
    )


def test_policy_columns_refused() -> None:
    a = columns_of("spector", ["GPA"])
    b = columns_of("spector", ["TUCE"])
    privacy = PrivacyContext(k=(5, 5), join_only=(frozenset({"GPA", "id"}), frozenset()))
    params = CORR.parse_params({"x": "GPA", "y": "TUCE", "x_bounds": WIDE, "y_bounds": WIDE})
    with pytest.raises(InvalidInput, match="join-only"):
        CORR.run([a, b], params, privacy)
    privacy = PrivacyContext(k=(5, 5), never_output=(frozenset({"id"}), frozenset({"TUCE"})))
    with pytest.raises(InvalidInput, match="never-output"):
        CORR.run([a, b], params, privacy)
    # a join-only key is fine
    privacy = PrivacyContext(k=(5, 5), join_only=(frozenset({"id"}), frozenset({"id"})))
    CORR.run([a, b], params, privacy)


def test_params_from_json_and_missing_column() -> None:
    bounds = {"x_bounds": WIDE, "y_bounds": WIDE}
    with pytest.raises(InvalidInput, match="confidence"):
        CORR.parse_params({"x": "a", "y": "b", "confidence": "1.5", **bounds})
    with pytest.raises(InvalidInput, match="bogus"):
        CORR.parse_params({"x": "a", "y": "b", "bogus": 1, **bounds})
    with pytest.raises(InvalidInput, match="x_bounds"):
        CORR.parse_params({"x": "a", "y": "b", "y_bounds": WIDE})
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        run(columns_of("spector", ["GPA"]), columns_of("spector", ["TUCE"]), x="nope", y="TUCE")


def test_number_format() -> None:
    assert num(0.1) == "0.1"
    assert num(-1234567.891234567) == "-1234567.89123"
    # Tiny values (p-values far in the tail) keep their significant digits, down to the
    # smallest subnormal float; the CLI shows them as 1e-40, never as "0".
    assert num(1e-40) == "0." + "0" * 39 + "1"
    assert num(-1e-40) == "-0." + "0" * 39 + "1"
    assert Decimal(num(3.2e-45) or "") == Decimal("3.2e-45")
    assert Decimal(num(5e-324) or "") == Decimal("4.94065645841e-324")
    assert num(2.5e20) == "250000000000000000000"
    assert num(float("nan")) is None
