"""DP primitives: exact privacy maps, calibrated scales, clamping, refusal of bad arguments."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import numpy as np
import pytest
import statsmodels.api as sm

from sealroom.errors import InvalidInput
from sealroom.policy import dp


def _close_below(actual: float, target: float) -> None:
    """The map spends the budget (to float precision) and never more."""
    assert actual <= target
    assert actual >= target * (1 - 1e-9)


def test_sum_map_equals_epsilon_and_reported_scale() -> None:
    meas, scale = dp.sum_measurement(bounds=(0, 10), epsilon=Decimal("1"))
    _close_below(meas.map(1), 1.0)
    # Sensitivity 10 (plus OpenDP's float rounding allowance) over epsilon 1.
    assert 10.0 <= scale < 10.0 * (1 + 1e-6)
    release = dp.dp_sum([1.0, 2.0], bounds=(0, 10), epsilon=Decimal("1"))
    assert release.scale == repr(scale)
    assert release.epsilon == Decimal("1")
    assert release.delta == 0
    assert release.mechanism == "laplace"


def test_count_map_with_contributions() -> None:
    meas, scale = dp.count_measurement(epsilon=Decimal("0.5"), max_contributions=3)
    assert meas.map(3) == 0.5
    assert scale == 6.0
    assert meas.map(1) == pytest.approx(1 / 6)
    release = dp.dp_count(["a"] * 10, epsilon=Decimal("0.5"), max_contributions=3)
    assert release.scale == "6.0"
    assert isinstance(release.value, int)


def test_mean_and_quantile_maps() -> None:
    meas, sum_scale, count_scale = dp.mean_measurement(
        bounds=(-5, 5), epsilon=Decimal("0.3"), max_contributions=2
    )
    _close_below(meas.map(2), 0.3)
    assert count_scale == pytest.approx(2 / 0.15)
    # OpenDP's unsized float sum over mixed-sign bounds has per-record sensitivity U - L.
    assert sum_scale == pytest.approx(2 * 10 / 0.15, rel=1e-6)
    qmeas, qscale, cands = dp.quantile_measurement(
        bounds=(0, 100), q=0.5, epsilon=Decimal("0.7"), candidates=11
    )
    _close_below(qmeas.map(1), 0.7)
    assert cands == [float(x) for x in range(0, 101, 10)]
    assert qscale > 0


def test_epsilon_decimal_never_rounded_up() -> None:
    # 0.1 as a float is slightly above Decimal("0.1"); the map must stay within the Decimal.
    meas, _ = dp.count_measurement(epsilon=Decimal("0.1"))
    assert Decimal(meas.map(1)) <= Decimal("0.1")


def test_count_is_unbiased_over_many_draws() -> None:
    meas, _scale = dp.count_measurement(epsilon=Decimal("1"))
    draws = [meas([True] * 500) for _ in range(2000)]
    # Laplace(1): sd sqrt(2); mean of 2000 has sd ~0.032.
    assert abs(statistics.fmean(draws) - 500) < 0.2
    assert 1.2 < statistics.pstdev(draws) < 1.7


def test_sum_on_real_data_within_tolerance() -> None:
    # Real public data: US state crime rates (statsmodels bundled dataset).
    df = sm.datasets.statecrime.load_pandas().data
    values = [float(v) for v in df["poverty"]]
    truth = float(np.sum(np.clip(values, 0, 30)))
    meas, scale = dp.sum_measurement(bounds=(0, 30), epsilon=Decimal("1"))
    draws = np.array([meas(values) for _ in range(1000)])
    assert abs(draws.mean() - truth) < 5 * scale * math.sqrt(2) / math.sqrt(1000)
    # Laplace sd = scale * sqrt(2)
    assert draws.std() == pytest.approx(scale * math.sqrt(2), rel=0.15)


def test_mean_and_quantile_track_truth_with_large_budget() -> None:
    df = sm.datasets.statecrime.load_pandas().data
    values = [float(v) for v in df["poverty"]] * 20  # 1020 records
    truth_mean = float(np.mean(values))
    means = [dp.dp_mean(values, bounds=(0, 30), epsilon=Decimal("5")).value for _ in range(50)]
    assert abs(statistics.fmean(means) - truth_mean) < 0.2
    median = float(np.median(values))
    rel = dp.dp_quantile(values, bounds=(0, 30), q=0.5, epsilon=Decimal("5"), candidates=301)
    assert abs(float(rel.value) - median) < 1.0
    assert rel.mechanism == "exponential"


def test_bounds_clamp() -> None:
    # Huge outliers are clamped to the upper bound: the sum of 1000 values of 1e12 is ~1000*10.
    rel = dp.dp_sum([1e12] * 1000, bounds=(0, 10), epsilon=Decimal("10"))
    assert abs(float(rel.value) - 10_000) < 50
    rel = dp.dp_mean([-1e9] * 1000, bounds=(2, 10), epsilon=Decimal("10"))
    assert abs(float(rel.value) - 2) < 0.5
    assert 2 <= float(rel.value) <= 10


def test_one_bad_row_does_not_fail() -> None:
    rel = dp.dp_sum([1.0, math.nan, math.inf, -math.inf], bounds=(0, 10), epsilon=Decimal("1"))
    assert math.isfinite(float(rel.value))
    rel = dp.dp_quantile([math.nan, 3.0], bounds=(0, 10), q=0.5, epsilon=Decimal("1"))
    assert 0 <= float(rel.value) <= 10


@pytest.mark.parametrize(
    "epsilon",
    [Decimal(0), Decimal("-1"), Decimal("NaN"), Decimal("Infinity"), Decimal("101")],
)
def test_invalid_epsilon_refused(epsilon: Decimal) -> None:
    with pytest.raises(InvalidInput, match="epsilon"):
        dp.dp_count([1], epsilon=epsilon)
    with pytest.raises(InvalidInput, match="epsilon"):
        dp.dp_sum([1.0], bounds=(0, 1), epsilon=epsilon)


def test_epsilon_float_refused() -> None:
    with pytest.raises(InvalidInput, match="Decimal"):
        dp.dp_count([1], epsilon=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("bounds", [(1, 1), (2, 1), (0, math.inf), (math.nan, 1)])
def test_invalid_bounds_refused(bounds: tuple[float, float]) -> None:
    with pytest.raises(InvalidInput, match="bounds"):
        dp.dp_sum([1.0], bounds=bounds, epsilon=Decimal("1"))
    with pytest.raises(InvalidInput, match="bounds"):
        dp.dp_mean([1.0], bounds=bounds, epsilon=Decimal("1"))
    with pytest.raises(InvalidInput, match="bounds"):
        dp.dp_quantile([1.0], bounds=bounds, q=0.5, epsilon=Decimal("1"))


def test_invalid_other_arguments_refused() -> None:
    with pytest.raises(InvalidInput, match="max_contributions"):
        dp.dp_count([1], epsilon=Decimal("1"), max_contributions=0)
    with pytest.raises(InvalidInput, match="q must"):
        dp.dp_quantile([1.0], bounds=(0, 1), q=1.5, epsilon=Decimal("1"))
    with pytest.raises(InvalidInput, match="candidates"):
        dp.dp_quantile([1.0], bounds=(0, 1), q=0.5, epsilon=Decimal("1"), candidates=1)
    with pytest.raises(InvalidInput, match="numeric"):
        dp.dp_sum(["x"], bounds=(0, 1), epsilon=Decimal("1"))  # type: ignore[list-item]
