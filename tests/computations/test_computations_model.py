from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.api as sm
from scipy import stats

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.base import PrivacyCost
from sealroom.computations.train_model import TrainModelOutput, prepare
from sealroom.errors import InvalidInput, PolicyDenied
from tests.computations.mqp_data import by_columns, by_rows, frame

MODEL = default_registry().get("train-model")


def train(
    tables: list[pa.Table], privacy: PrivacyContext | None = None, **params: object
) -> TrainModelOutput:
    # k=3: spector's 32 students support 4 parameters (4 <= 32 / (2 * 3)), and star98's
    # largest leverage (0.25) is below 1/3.
    ctx = privacy if privacy is not None else PrivacyContext.uniform(len(tables), k=3)
    out = MODEL.run(tables, MODEL.parse_params(params), ctx)
    assert isinstance(out, TrainModelOutput)
    return out


def estimates(out: TrainModelOutput) -> np.ndarray:
    return np.array([float(c.estimate) for c in out.coefficients])


def std_errors(out: TrainModelOutput) -> np.ndarray:
    return np.array([float(c.std_error) for c in out.coefficients])  # type: ignore[arg-type]


def reference(
    data: pd.DataFrame, target: str, features: list[str], family: sm.families.Family
) -> sm.regression.linear_model.RegressionResultsWrapper:
    x = sm.add_constant(data[features].to_numpy(dtype=float), has_constant="add")
    return sm.GLM(data[target].to_numpy(dtype=float), x, family=family).fit(tol=1e-12)


def test_declaration() -> None:
    assert MODEL.version == "2.2.0"
    assert MODEL.privacy_class == "model"
    assert MODEL.variadic
    assert MODEL.accepts_inputs(2)
    assert MODEL.accepts_inputs(5)
    assert not MODEL.accepts_inputs(1)
    base = {"layout": "stack", "target": "y", "features": ["x"]}
    assert MODEL.cost(MODEL.parse_params(base)).is_zero
    dp = {**base, "dp": {"epsilon": "0.5", "bounds": {"x": ["-1", "1"]}}}
    assert MODEL.cost(MODEL.parse_params(dp)) == PrivacyCost(epsilon=Decimal("0.5"))


def test_logit_on_spector_split_by_columns_matches_statsmodels() -> None:
    data = frame("spector")
    tables = by_columns(data, [["GPA", "TUCE"], ["PSI"], ["GRADE"]])
    features = ["GPA", "TUCE", "PSI"]
    out = train(
        tables, layout="join", id_column="id", target="GRADE", features=features, test_fraction="0"
    )
    ref = reference(data, "GRADE", features, sm.families.Binomial())
    assert out.converged
    assert out.link == "logit"
    assert [c.name for c in out.coefficients] == ["(intercept)", *features]
    np.testing.assert_allclose(estimates(out), ref.params, rtol=1e-9)
    np.testing.assert_allclose(std_errors(out), ref.bse, rtol=1e-9)
    assert (out.rows_train, out.rows_test) == (32, 0)
    assert [(u.input, u.rows_used, u.columns) for u in out.inputs] == [
        (0, 32, ("GPA", "TUCE")),
        (1, 32, ("PSI",)),
        (2, 32, ("GRADE",)),
    ]
    assert out.metrics == {}
    assert out.dp is None


def _fair() -> pd.DataFrame:
    data = frame("fair").copy()
    data["had_affair"] = (data["affairs"] > 0).astype(np.int64)
    return data


FAIR_FEATURES = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]


def test_logit_on_fair_stacked_with_held_out_metrics() -> None:
    data = _fair()
    tables = by_rows(data, 3)
    out = train(
        tables,
        layout="stack",
        target="had_affair",
        features=FAIR_FEATURES,
        test_fraction="0.25",
        seed=7,
    )
    n = len(data)
    order = np.random.default_rng(7).permutation(n)
    test, trainrows = np.sort(order[: n // 4]), np.sort(order[n // 4 :])
    ref = reference(data.iloc[trainrows], "had_affair", FAIR_FEATURES, sm.families.Binomial())
    np.testing.assert_allclose(estimates(out), ref.params, rtol=1e-8)
    np.testing.assert_allclose(std_errors(out), ref.bse, rtol=1e-8)
    assert (out.rows_train, out.rows_test) == (n - n // 4, n // 4)
    assert sum(u.rows_used for u in out.inputs) == n
    held = data.iloc[test]
    p = ref.predict(sm.add_constant(held[FAIR_FEATURES].to_numpy(dtype=float), has_constant="add"))
    y = held["had_affair"].to_numpy()
    assert float(out.metrics["accuracy"]) == pytest.approx(
        np.mean((p >= 0.5) == (y == 1)), abs=1e-11
    )
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert float(out.metrics["log_loss"]) == pytest.approx(log_loss, rel=1e-9)
    u = stats.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert float(out.metrics["auc"]) == pytest.approx(
        u / (np.sum(y == 1) * np.sum(y == 0)), rel=1e-9
    )
    assert float(out.metrics["brier"]) == pytest.approx(np.mean((p - y) ** 2), rel=1e-9)


def test_split_is_deterministic_from_seed() -> None:
    tables = by_rows(_fair(), 2)
    params = {"layout": "stack", "target": "had_affair", "features": FAIR_FEATURES[:3]}
    a = train(tables, **params, seed=3)
    assert train(tables, **params, seed=3) == a
    assert train(tables, **params, seed=4).coefficients != a.coefficients


def test_gaussian_on_star98_matches_statsmodels() -> None:
    data = frame("star98")
    features = ["LOWINC", "PERASIAN", "PERBLACK", "PERHISP", "AVYRSEXP"]
    tables = by_columns(data, [features[:2], features[2:], ["PTRATIO"]])
    out = train(
        tables,
        layout="join",
        id_column="id",
        family="gaussian",
        target="PTRATIO",
        features=features,
        test_fraction="0",
    )
    ref = reference(data, "PTRATIO", features, sm.families.Gaussian())
    np.testing.assert_allclose(estimates(out), ref.params, rtol=1e-9)
    np.testing.assert_allclose(std_errors(out), ref.bse, rtol=1e-9)
    ols = sm.OLS(data["PTRATIO"], sm.add_constant(data[features])).fit()
    np.testing.assert_allclose(estimates(out), ols.params, rtol=1e-9)


def test_poisson_on_randhie_matches_statsmodels_with_metrics() -> None:
    data = frame("randhie").iloc[:4000].copy()
    features = ["lncoins", "idp", "lpi", "physlm", "disea"]
    tables = by_rows(data, 4)
    out = train(
        tables, layout="stack", family="poisson", target="mdvis", features=features, seed=11
    )
    n = len(data)
    order = np.random.default_rng(11).permutation(n)
    test, trainrows = np.sort(order[: n // 4]), np.sort(order[n // 4 :])
    ref = reference(data.iloc[trainrows], "mdvis", features, sm.families.Poisson())
    np.testing.assert_allclose(estimates(out), ref.params, rtol=1e-8)
    np.testing.assert_allclose(std_errors(out), ref.bse, rtol=1e-8)
    held = data.iloc[test]
    mu = ref.predict(sm.add_constant(held[features].to_numpy(dtype=float), has_constant="add"))
    y = held["mdvis"].to_numpy(dtype=float)
    assert float(out.metrics["rmse"]) == pytest.approx(np.sqrt(np.mean((y - mu) ** 2)), rel=1e-9)
    dev = sm.families.Poisson().deviance(y, mu) / len(y)
    assert float(out.metrics["mean_deviance"]) == pytest.approx(dev, rel=1e-9)


def test_join_uses_only_ids_present_once_in_every_input() -> None:
    data = frame("spector")
    a, b = by_columns(data, [["GPA", "TUCE", "PSI"], ["GRADE"]])
    b = b.filter(pa.compute.not_equal(b.column("id"), 1000))  # id 1000 only in a
    dup = a.filter(pa.compute.equal(a.column("id"), 1007))
    a = pa.concat_tables([a, dup])  # id 1007 twice in a: dropped
    out = train(
        [a, b],
        layout="join",
        id_column="id",
        target="GRADE",
        features=["GPA", "TUCE", "PSI"],
        test_fraction="0",
    )
    kept = data[~data["id"].isin([1000, 1007])]
    ref = reference(kept, "GRADE", ["GPA", "TUCE", "PSI"], sm.families.Binomial())
    assert out.rows_train == 30
    np.testing.assert_allclose(estimates(out), ref.params, rtol=1e-9)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300, None])
def test_one_bad_row_gives_the_same_response_as_without_it(bad: float | None) -> None:
    data = frame("spector")
    a, b = by_columns(data, [["GPA", "TUCE", "PSI"], ["GRADE"]])
    params = {
        "layout": "join",
        "id_column": "id",
        "target": "GRADE",
        "features": ["GPA", "TUCE", "PSI"],
        "test_fraction": "0",
    }
    clean = train([a, b], **params)
    extra_a = pa.table({"id": [5], "GPA": [bad], "TUCE": [20.0], "PSI": [1.0]}).cast(a.schema)
    extra_b = pa.table({"id": [5], "GRADE": [1]}).cast(b.schema)
    dirty = train([pa.concat_tables([a, extra_a]), pa.concat_tables([b, extra_b])], **params)
    assert dirty == clean


def test_binomial_target_out_of_domain_row_is_dropped() -> None:
    data = frame("spector")
    a, b = by_columns(data, [["GPA", "TUCE", "PSI"], ["GRADE"]])
    params = {
        "layout": "join",
        "id_column": "id",
        "target": "GRADE",
        "features": ["GPA", "TUCE", "PSI"],
        "test_fraction": "0",
    }
    extra_a = pa.table({"id": [5], "GPA": [3.0], "TUCE": [20.0], "PSI": [1.0]}).cast(a.schema)
    extra_b = pa.table({"id": [5], "GRADE": [7]}).cast(b.schema)
    dirty = train([pa.concat_tables([a, extra_a]), pa.concat_tables([b, extra_b])], **params)
    assert dirty == train([a, b], **params)


def test_k_counts_distinct_entities_not_rows() -> None:
    data = _fair()
    a, b = by_rows(data, 2)
    # input b's rows all belong to 4 households: many rows, k-1 entities for k=5
    b = b.append_column("household", pa.array([i % 4 for i in range(b.num_rows)]))
    a = a.append_column("household", pa.array(list(range(a.num_rows))))
    params = {"layout": "stack", "target": "had_affair", "features": FAIR_FEATURES[:2]}
    ctx = PrivacyContext(k=(5, 5), entity_columns=("household", "household"))
    with pytest.raises(PolicyDenied, match="input 1 contributes fewer than its k=5") as err:
        train([a, b], ctx, **params)
    assert err.value.rule == "k-threshold"
    # 4 entities pass k=4, but cannot carry 3 parameters: 3 * 2 * 4 > 4.
    ctx = PrivacyContext(k=(5, 4), entity_columns=("household", "household"))
    with pytest.raises(PolicyDenied, match="3 parameters need 8 entities of input 1") as err:
        train([a, b], ctx, **params)
    assert err.value.rule == "parameter-bound"
    b = b.set_column(
        b.column_names.index("household"),
        "household",
        pa.array([i % 400 for i in range(b.num_rows)]),
    )
    assert train([a, b], ctx, **params).converged


def test_too_few_rows_per_parameter_is_refused() -> None:
    data = frame("spector")
    tables = by_rows(data, 2)
    with pytest.raises(PolicyDenied, match="per parameter"):
        train(
            tables,
            layout="stack",
            target="GRADE",
            features=["GPA", "TUCE", "PSI"],
            test_fraction="0.5",
        )


@pytest.mark.parametrize("rule", ["never_output", "join_only"])
def test_restricted_columns_are_refused_naming_the_rule(rule: str) -> None:
    data = frame("spector")
    tables = by_columns(data, [["GPA", "TUCE", "PSI"], ["GRADE"]])
    ctx = PrivacyContext(k=(5, 5), **{rule: (frozenset({"PSI"}), frozenset())})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=f"'PSI' of input 0 is {rule}"):
        train(
            tables,
            ctx,
            layout="join",
            id_column="id",
            target="GRADE",
            features=["GPA", "TUCE", "PSI"],
        )


def test_invalid_parameters() -> None:
    tables = by_columns(frame("spector"), [["GPA"], ["GRADE"]])
    with pytest.raises(InvalidInput, match="id_column"):
        train(tables, layout="join", target="GRADE", features=["GPA"])
    with pytest.raises(InvalidInput, match="test_fraction"):
        train(
            tables,
            layout="join",
            id_column="id",
            target="GRADE",
            features=["GPA"],
            test_fraction="0.9",
        )
    with pytest.raises(InvalidInput, match="no input has column 'nope'"):
        train(tables, layout="join", id_column="id", target="GRADE", features=["nope"])
    with pytest.raises(InvalidInput, match="'binomial' and 'gaussian'"):
        train(
            tables,
            layout="join",
            id_column="id",
            target="GRADE",
            features=["GPA"],
            family="poisson",
            dp={"epsilon": "1", "bounds": {"GPA": ["0", "4"]}},
        )
    with pytest.raises(InvalidInput, match="needs bounds for column 'GRADE'"):
        train(
            tables,
            layout="join",
            id_column="id",
            target="GRADE",
            features=["GPA"],
            family="gaussian",
            dp={"epsilon": "1", "bounds": {"GPA": ["0", "4"]}},
        )
    with pytest.raises(InvalidInput, match="parameter"):
        MODEL.parse_params(
            {"layout": "stack", "target": "y", "features": ["x"], "test_fraction": 0.2}
        )


def _dp_params(epsilon: str, l2: str = "0.01", **extra: object) -> dict[str, object]:
    bounds = {
        f: [str(int(lo)), str(int(hi) + 1)]
        for f, lo, hi in zip(
            FAIR_FEATURES, _fair()[FAIR_FEATURES].min(), _fair()[FAIR_FEATURES].max(), strict=True
        )
    }
    return {
        "layout": "stack",
        "target": "had_affair",
        "features": FAIR_FEATURES,
        "dp": {"epsilon": epsilon, "bounds": bounds, "l2": l2},
        **extra,
    }


def test_dp_refuses_to_spend_more_than_charged() -> None:
    tables = by_rows(_fair(), 2)
    params = MODEL.parse_params(_dp_params("1"))
    short = PrivacyContext(k=(5, 5), cost=PrivacyCost(epsilon=Decimal("0.5")))
    with pytest.raises(PolicyDenied, match="exceeds the charged budget") as err:
        MODEL.run(tables, params, short)
    assert err.value.rule == "dp-budget"


def test_dp_with_huge_epsilon_approaches_the_regularised_fit_and_declares_its_noise() -> None:
    data = _fair()
    tables = by_rows(data, 2)
    params = MODEL.parse_params(_dp_params("1000000", l2="0.000001", test_fraction="0"))
    ctx = PrivacyContext(k=(5, 5), cost=MODEL.cost(params))
    out = MODEL.run(tables, params, ctx)
    assert isinstance(out, TrainModelOutput)
    assert out.dp is not None
    assert all(c.std_error is None for c in out.coefficients)
    ref = reference(data, "had_affair", FAIR_FEATURES, sm.families.Binomial())
    # a tiny ridge penalty and negligible noise: close to the unpenalised MLE
    np.testing.assert_allclose(estimates(out), ref.params, rtol=0.05, atol=0.01)
    n, p = len(data), len(FAIR_FEATURES) + 1
    # add/remove one row (m = 1) moves the minimiser of sum loss + (l2 * n~ / 2)||theta||^2
    # by at most 1 / (l2 * n~); n~ is the noisy row count (noise ~1e-5 at this epsilon)
    l1 = np.sqrt(p) / (n * 1e-6)
    assert float(out.dp.l1_sensitivity) == pytest.approx(l1, rel=1e-6)
    assert float(out.dp.scale) == pytest.approx(l1 / (0.9 * 1e6), rel=1e-6)
    assert out.dp.noisy_rows_train == str(n)
    assert out.dp.mechanism == "laplace"
    assert out.dp.epsilon == "1000000"
    assert (out.rows_train, out.rows_test, out.converged, out.iterations) == (None,) * 4
    assert all(u.rows_used is None for u in out.inputs)


def test_dp_noise_is_real_and_metric_spends_a_share() -> None:
    tables = by_rows(_fair(), 2)
    params = MODEL.parse_params(_dp_params("1", test_fraction="0.2"))
    ctx = PrivacyContext(k=(5, 5), cost=MODEL.cost(params))
    a = MODEL.run(tables, params, ctx)
    b = MODEL.run(tables, params, ctx)
    assert isinstance(a, TrainModelOutput)
    assert isinstance(b, TrainModelOutput)
    assert a.coefficients != b.coefficients  # fresh noise each run
    assert a.dp is not None
    assert (a.dp.count_epsilon, a.dp.params_epsilon, a.dp.metric_epsilon) == ("0.1", "0.7", "0.2")
    assert set(a.metrics) == {"accuracy"}
    assert 0 <= float(a.metrics["accuracy"]) <= 1


def test_dp_linear_regression_with_huge_epsilon_approaches_ols_in_original_units() -> None:
    data = frame("star98")
    features = ["LOWINC", "PERASIAN", "PERBLACK", "PERHISP", "AVYRSEXP"]
    tables = by_columns(data, [features[:2], features[2:], ["PTRATIO"]])
    bounds = {f: ["0", "100"] for f in features[:4]} | {"AVYRSEXP": ["0", "30"]}
    params = MODEL.parse_params(
        {
            "layout": "join",
            "id_column": "id",
            "family": "gaussian",
            "target": "PTRATIO",
            "features": features,
            "test_fraction": "0.2",
            "dp": {
                "epsilon": "1000000",
                "bounds": bounds | {"PTRATIO": ["10", "35"]},
                "l2": "0.000000001",
            },
        }
    )
    out = MODEL.run(tables, params, PrivacyContext(k=(3, 3, 3), cost=MODEL.cost(params)))
    assert isinstance(out, TrainModelOutput)
    assert out.dp is not None
    assert (out.dp.count_epsilon, out.dp.params_epsilon, out.dp.metric_epsilon) == (
        "0",
        "800000",
        "200000",
    )
    assert float(out.dp.l1_sensitivity) == 28.0  # q = 7: (49 + 7) / 2, one row per entity
    assert set(out.metrics) == {"rmse"}
    # the DP split is row-local: compare with OLS on the same training rows
    rows = prepare(tables, params, PrivacyContext(k=(3, 3, 3)))
    assert rows.is_test is not None
    train_ids = data["id"].to_numpy()[~rows.is_test]
    ols = reference(data[data["id"].isin(train_ids)], "PTRATIO", features, sm.families.Gaussian())
    np.testing.assert_allclose(estimates(out), ols.params, rtol=1e-3, atol=1e-4)
    assert float(out.metrics["rmse"]) == pytest.approx(2.0, abs=1.0)
