"""train-model's DP mode: privacy maps at the contribution bound, the sensitivity claims
behind them, the stability of the row pipeline, and a statistical audit."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest

from sealroom.computations import PrivacyContext, _glm
from sealroom.computations.train_model import (
    TrainModelParams,
    dp_measurements,
    prepare,
    release_dp,
)
from tests.dp_audit import audit


def params(family: str, m: int, fraction: str, epsilon: str = "1.3") -> TrainModelParams:
    features = ["a", "b", "c"]
    bounds = {f: ["-1", "1"] for f in [*features, "y"]}
    return TrainModelParams.model_validate(
        {
            "layout": "stack",
            "family": family,
            "target": "y",
            "features": features,
            "test_fraction": fraction,
            "dp": {"epsilon": epsilon, "bounds": bounds, "l2": "0.05", "max_rows_per_entity": m},
        }
    )


@pytest.mark.parametrize(
    ("family", "m", "fraction"),
    list(itertools.product(["binomial", "gaussian"], [1, 4], ["0", "0.2"])),
)
def test_privacy_maps_at_the_contribution_bound_add_up_to_the_epsilon_charged(
    family: str, m: int, fraction: str
) -> None:
    p_ = params(family, m, fraction)
    has_test = fraction != "0"
    noisy_rows = 812.4
    ms = dp_measurements(p_, has_test=has_test, noisy_rows=noisy_rows)
    p, q = 4, 5  # parameters with the intercept; and with the target (gaussian)
    reg = 0.05 * noisy_rows
    expected = (
        {"count": m, "params": math.sqrt(p) * m / reg} | ({"metric": 2 * m} if has_test else {})
        if family == "binomial"
        else {"params": m * (q * q + q) / 2} | ({"metric": 5 * m} if has_test else {})
    )
    assert {x.name: x.d_in for x in ms} == pytest.approx(expected, rel=1e-15)
    # Each map, evaluated AT the bound by OpenDP, against its share; the shares sum to 1.3.
    spent = [float(x.meas.map(x.d_in)) for x in ms]  # type: ignore[attr-defined]
    for x, eps in zip(ms, spent, strict=True):
        assert eps <= x.epsilon
    assert sum(spent) <= 1.3
    assert sum(spent) == pytest.approx(1.3, rel=1e-9)
    # One row more than the bound would cost more than charged: the bound is what is paid.
    over = [float(x.meas.map(x.d_in * (m + 1) / m)) for x in ms]  # type: ignore[attr-defined]
    assert sum(over) > 1.3


def test_one_row_moves_the_gram_matrix_by_at_most_the_declared_l1() -> None:
    rng = np.random.default_rng(0)
    q = 5
    upper = np.triu_indices(q)
    bound = (q * q + q) / 2
    for _ in range(2000):
        z = np.concatenate([[1.0], rng.uniform(-1, 1, q - 1)])
        assert np.abs(np.outer(z, z)[upper]).sum() <= bound
    corner = np.ones(q)
    assert np.abs(np.outer(corner, corner)[upper]).sum() == bound  # tight


def test_an_entity_moves_the_logistic_minimiser_by_at_most_m_over_lambda() -> None:
    rng = np.random.default_rng(1)
    p, n, m, l2 = 3, 60, 5, 0.05
    for _ in range(30):
        x = rng.uniform(-1, 1, (n, p))
        x /= np.maximum(np.linalg.norm(x, axis=1), 1.0)[:, None]
        y = (rng.uniform(size=n) < 0.5).astype(float)
        extra = rng.uniform(-1, 1, (m, p))
        extra /= np.linalg.norm(extra, axis=1)[:, None]
        reg = l2 * n  # the regulariser is fixed (from the DP count) across neighbours
        a = _glm.fit_logistic_l2(x, y, l2=reg / n)
        xb = np.vstack([x, extra])
        yb = np.concatenate([y, np.ones(m)])
        b = _glm.fit_logistic_l2(xb, yb, l2=reg / (n + m))
        assert np.linalg.norm(a - b) <= m / reg * (1 + 1e-9)


def _rows(table: pa.Table, adversary: pa.Table, m: int) -> list[tuple[object, ...]]:
    p = TrainModelParams.model_validate(
        {
            "layout": "join",
            "id_column": "id",
            "target": "y",
            "features": ["x"],
            "test_fraction": "0",
            "dp": {"epsilon": "1", "bounds": {"x": ["-1", "1"]}, "max_rows_per_entity": m},
        }
    )
    privacy = PrivacyContext(k=(1, 1), entity_columns=("person", None))
    rows = prepare([table, adversary], p, privacy)
    return sorted(zip(rows.split_key, rows.x[:, 0].tolist(), rows.y.tolist(), strict=True))


def test_adding_an_entity_changes_at_most_its_bound_of_joined_rows() -> None:
    """Even when its rows reuse ids already present (so the duplicate-id drop removes
    other people's rows) and the adversary's input is fixed."""
    n, m = 40, 2
    table = pa.table(
        {"id": list(range(n)), "person": [f"p{i // 2}" for i in range(n)], "x": [0.5] * n}
    )
    adversary = pa.table({"id": list(range(n + 10)), "y": [1.0] * (n + 10)})
    for new_ids in ([n, n + 1, n + 2, 3, 4], [3, 3, 4, 4, 5], [n, n, n + 1, 7, 8]):
        entity = pa.table(
            {"id": new_ids, "person": ["new"] * len(new_ids), "x": [-0.5] * len(new_ids)}
        )
        before = _rows(table, adversary, m)
        after = _rows(pa.concat_tables([table, entity]), adversary, m)
        changed = len(set(before) ^ set(after))
        assert changed <= m, (new_ids, changed)


def _audit_world(m: int) -> tuple[object, object]:
    """D: 100 people at x = -1; D': plus one person with 30 rows at x = +1, y = 1."""
    n = 100
    base = pa.table(
        {
            "person": [f"p{i}" for i in range(n)],
            "x": [-1.0] * n,
            "y": [float(i % 2) for i in range(n)],
        }
    )
    whale = pa.table({"person": ["whale"] * 30, "x": [1.0] * 30, "y": [1.0] * 30})
    other = pa.table({"person": ["q"], "x": [0.0], "y": [0.0]})
    p = _audit_params(m)
    privacy = PrivacyContext(k=(1, 1), entity_columns=("person", "person"))
    return (
        prepare([base, other], p, privacy),
        prepare([pa.concat_tables([base, whale]), other], p, privacy),
    )


def _audit_params(m: int) -> TrainModelParams:
    return TrainModelParams.model_validate(
        {
            "layout": "stack",
            "target": "y",
            "features": ["x"],
            "test_fraction": "0",
            "dp": {
                "epsilon": "1",
                "bounds": {"x": ["-1", "1"]},
                "l2": "1",
                "max_rows_per_entity": m,
            },
        }
    )


def _slope_plus_intercept(rows: object, p: TrainModelParams) -> float:
    coefs, _, _ = release_dp(rows, p)  # type: ignore[arg-type]
    return float(coefs[0].estimate) + float(coefs[1].estimate)


def test_dp_audit_passes_at_the_bound_and_catches_noise_calibrated_for_one_row() -> None:
    """Neighbours differ by one entity with 30 rows, truncated to m = 8. The real run is
    calibrated at 8 rows; the mutant truncates the same way but calibrates at 1 row (the
    old bug: rows, not entities). The auditor estimates epsilon from the released
    intercept + slope (a post-processing, whose tails carry the whole L1 loss)."""
    m = 8
    d, d2 = _audit_world(m)
    real, mutant = _audit_params(m), _audit_params(1)
    result = audit(
        lambda: _slope_plus_intercept(d, real), lambda: _slope_plus_intercept(d2, real), runs=1200
    )
    assert result.epsilon_lower <= 1.0, result
    caught = audit(
        lambda: _slope_plus_intercept(d, mutant),
        lambda: _slope_plus_intercept(d2, mutant),
        runs=1200,
    )
    assert caught.epsilon_lower > 1.0, caught


def test_rows_as_entities_keep_their_split_when_a_row_is_added() -> None:
    """Stacked, no entity column: each row is an entity, and the split hashes its content
    (a row number would shift for every row after an inserted one)."""
    p = TrainModelParams.model_validate(
        {
            "layout": "stack",
            "target": "y",
            "features": ["x"],
            "test_fraction": "0.5",
            "dp": {"epsilon": "1", "bounds": {"x": ["-1", "1"]}},
        }
    )
    privacy = PrivacyContext(k=(1, 1))
    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.uniform(-1, 1, 200), "y": (rng.uniform(size=200) < 0.5) * 1.0})
    other = pa.table({"x": [0.0], "y": [0.0]})

    def assigned(t: pa.Table) -> set[tuple[float, float, bool]]:
        rows = prepare([t, other], p, privacy)
        assert rows.is_test is not None
        return set(zip(rows.x[:, 0].tolist(), rows.y.tolist(), rows.is_test.tolist(), strict=True))

    before = assigned(table)
    inserted = pa.concat_tables(
        [table.slice(0, 7), pa.table({"x": [0.123], "y": [1.0]}), table.slice(7)]
    )
    assert len(assigned(inserted) ^ before) == 1
