"""Attacks on train-model by a requester who brings its own features (issue 11, class 6).

The requester joins its own table to the protected one: 50 indicator features of 50
people and no test split released 50 of 50 salaries to the cent; DP mode protected
rows, not entities, and released exact row counts. Each attack is shown to work on
an unprotected fit (so the test can fail), then to fail against train-model in both
modes: exact (refused with the rule's name) and DP (the values do not come out).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
import statsmodels.api as sm

from sealroom.computations import PrivacyContext, default_registry
from sealroom.computations.train_model import TrainModelOutput, TrainModelParams, prepare
from sealroom.errors import PolicyDenied

MODEL = default_registry().get("train-model")
N = 2000
K = 10
TARGETS = 50


def salaries() -> pa.Table:
    """The protected input: one salary per employee (the entity is the employee id)."""
    rng = np.random.default_rng(11)
    pay = np.round(rng.lognormal(np.log(60_000), 0.35, N), 2)
    return pa.table({"id": np.arange(N), "salary": pay})


def attacker(columns: dict[str, np.ndarray]) -> pa.Table:
    return pa.table({"id": np.arange(N), **columns})


def indicators(targets: range) -> dict[str, np.ndarray]:
    return {f"is_{t}": (np.arange(N) == t).astype(np.float64) for t in targets}


def ctx(cost: Decimal = Decimal(0)) -> PrivacyContext:
    from sealroom.policy.privacy import PrivacyCost

    return PrivacyContext(k=(K, 1), entity_columns=("id", None), cost=PrivacyCost(epsilon=cost))


def fit(tables: list[pa.Table], **params: object) -> TrainModelOutput:
    parsed = MODEL.parse_params({"layout": "join", "id_column": "id", **params})
    out = MODEL.run(tables, parsed, ctx(MODEL.cost(parsed).epsilon))
    assert isinstance(out, TrainModelOutput)
    return out


def unprotected_ols(protected: pa.Table, theirs: pa.Table, target: str) -> np.ndarray:
    """What the old release gave: the OLS coefficients on the joined rows."""
    y = protected.column(target).to_numpy()
    x = np.column_stack([theirs.column(c).to_numpy() for c in theirs.column_names[1:]])
    return np.asarray(sm.OLS(y, sm.add_constant(x)).fit().params)


def test_fifty_indicators_recover_fifty_salaries_without_protection() -> None:
    pay, theirs = salaries(), attacker(indicators(range(TARGETS)))
    params = unprotected_ols(pay, theirs, "salary")
    recovered = params[0] + params[1:]
    truth = pay.column("salary").to_numpy()[:TARGETS]
    np.testing.assert_allclose(recovered, truth, atol=0.005)  # to the cent


def test_fifty_indicators_are_refused_exactly() -> None:
    tables = [salaries(), attacker(indicators(range(TARGETS)))]
    features = [f"is_{t}" for t in range(TARGETS)]
    with pytest.raises(PolicyDenied, match="'is_0' differs from its most common value") as err:
        fit(tables, family="gaussian", target="salary", features=features, test_fraction="0")
    assert err.value.rule == "influence-bound"


def test_fifty_indicators_recover_nothing_with_dp() -> None:
    tables = [salaries(), attacker(indicators(range(TARGETS)))]
    features = [f"is_{t}" for t in range(TARGETS)]
    bounds = {f: ["0", "1"] for f in features} | {"salary": ["0", "300000"]}
    out = fit(
        tables,
        family="gaussian",
        target="salary",
        features=features,
        test_fraction="0",
        dp={"epsilon": "1", "bounds": bounds},
    )
    est = np.array([float(c.estimate) for c in out.coefficients])
    guess = est[0] + est[1:]
    truth = salaries().column("salary").to_numpy()[:TARGETS]
    # Not one salary comes out within 10%; the guesses are noise around the mean.
    assert np.sum(np.abs(guess - truth) < 0.1 * truth) <= 5
    assert np.median(np.abs(guess - truth)) > 20_000
    assert out.rows_train is None
    assert out.inputs[0].rows_used is None


def test_indicators_that_cover_k_people_each_but_differ_by_one_are_refused() -> None:
    """The per-feature coverage rule alone is beaten by A_j - B_j = indicator of t_j, with
    A_j = {t_j} + S_j and B_j = S_j, |S_j| = k. The leverage rule is not."""
    cols: dict[str, np.ndarray] = {}
    ids = np.arange(N)
    for j in range(10):
        crowd = 100 + 20 * j + np.arange(K)
        cols[f"a_{j}"] = (np.isin(ids, crowd) | (ids == j)).astype(np.float64)
        cols[f"b_{j}"] = np.isin(ids, crowd).astype(np.float64)
    pay, theirs = salaries(), attacker(cols)
    params = unprotected_ols(pay, theirs, "salary")
    recovered = params[0] + params[1::2][:10]
    np.testing.assert_allclose(recovered, pay.column("salary").to_numpy()[:10], atol=0.005)
    with pytest.raises(PolicyDenied, match="leverage above 1/k") as err:
        fit(
            [pay, theirs],
            family="gaussian",
            target="salary",
            features=list(cols),
            test_fraction="0",
        )
    assert err.value.rule == "influence-bound"


def test_a_planted_outlier_is_refused() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1e-6, N)  # every value distinct: per-feature coverage passes
    x[7] = 1000.0
    pay, theirs = salaries(), attacker({"x": x})
    params = unprotected_ols(pay, theirs, "salary")
    guess = params[0] + params[1] * 1000.0  # the fitted value of row 7
    assert abs(guess - pay.column("salary")[7].as_py()) < 1.0
    with pytest.raises(PolicyDenied, match="leverage") as err:
        fit([pay, theirs], family="gaussian", target="salary", features=["x"], test_fraction="0")
    assert err.value.rule == "influence-bound"


def test_a_target_that_singles_someone_out_is_refused() -> None:
    """The requester holds the target: 1 for its victim, 0 for everyone else; the
    protected salary is the feature. Or, noisier, a target that is an outlier at one id."""
    onehot = (np.arange(N) == 3).astype(np.float64)
    tables = [salaries(), attacker({"victim": onehot})]
    with pytest.raises(PolicyDenied, match="'victim' differs from its most common value"):
        fit(tables, target="victim", features=["salary"], test_fraction="0")
    rng = np.random.default_rng(2)
    tables = [salaries(), attacker({"victim": onehot * 1e6 + rng.normal(0, 1e-3, N)})]
    with pytest.raises(PolicyDenied, match="leverage"):
        fit(tables, family="gaussian", target="victim", features=["salary"], test_fraction="0")


def test_an_id_indicator_is_refused_in_either_layout() -> None:
    pay = salaries()
    theirs = attacker({"is_42": (np.arange(N) == 42).astype(np.float64)})
    with pytest.raises(PolicyDenied, match="'is_42'") as err:
        fit([pay, theirs], family="gaussian", target="salary", features=["is_42"])
    assert err.value.rule == "influence-bound"
    # Stacked: the protected owner's own rows carry the indicator of one of its people.
    mine = pay.append_column("is_42", theirs.column("is_42"))
    other = pa.table(
        {"id": [10_000 + i for i in range(N)], "salary": [50_000.0] * N}
    ).append_column("is_42", pa.array(np.ones(N)))
    params = MODEL.parse_params(
        {
            "layout": "stack",
            "family": "gaussian",
            "target": "salary",
            "features": ["is_42"],
            "test_fraction": "0",
        }
    )
    with pytest.raises(PolicyDenied, match="'is_42'"):
        MODEL.run([mine, other], params, PrivacyContext(k=(K, K), entity_columns=("id", "id")))


def test_an_honest_model_still_passes() -> None:
    rng = np.random.default_rng(8)
    pay = salaries()
    years = np.round(rng.uniform(0, 30, N))
    theirs = attacker({"years": years, "remote": (rng.uniform(size=N) < 0.3).astype(float)})
    out = fit([pay, theirs], family="gaussian", target="salary", features=["years", "remote"])
    assert out.rows_train == N - N // 4
    assert set(out.metrics) == {"rmse", "mae", "r2"}


def test_an_entity_with_many_rows_counts_at_its_bound_in_dp_mode() -> None:
    """One person with 300 extreme rows: DP mode keeps max_rows_per_entity of them, and
    the noise is calibrated for that many (the report says so)."""
    rng = np.random.default_rng(3)
    base = pa.table(
        {
            "person": [f"p{i}" for i in range(N)],
            "x": rng.uniform(-1, 1, N),
            "y": (rng.uniform(size=N) < 0.5).astype(float),
        }
    )
    heavy = pa.table({"person": ["whale"] * 300, "x": [1.0] * 300, "y": [1.0] * 300})
    data = pa.concat_tables([base, heavy])
    dp = {"epsilon": "1", "bounds": {"x": ["-1", "1"]}, "max_rows_per_entity": 3}
    raw = {"layout": "stack", "target": "y", "features": ["x"], "test_fraction": "0", "dp": dp}
    params = TrainModelParams.model_validate(raw)
    privacy = PrivacyContext(k=(K, 1), entity_columns=("person", None))
    other = pa.table({"person": ["q"], "x": [0.0], "y": [0.0]})
    rows = prepare([data, other], params, privacy)
    assert sum(e == "whale" for e in rows.entities[0]) == 3
    assert len(rows.y) == N + 3 + 1
    out = MODEL.run(
        [data, other],
        params,
        PrivacyContext(k=(K, 1), entity_columns=("person", None), cost=MODEL.cost(params)),
    )
    assert isinstance(out, TrainModelOutput)
    assert out.dp is not None
    assert out.dp.max_rows_per_entity == 3
    assert float(out.dp.l1_sensitivity) == pytest.approx(
        np.sqrt(2) * 3 / (0.1 * float(out.dp.noisy_rows_train)), rel=1e-3
    )
    assert (out.rows_train, out.converged, out.iterations) == (None, None, None)
