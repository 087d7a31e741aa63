"""The auditor itself: it passes calibrated mechanisms and catches a mis-calibrated one."""

from __future__ import annotations

from decimal import Decimal

from sealroom.policy import dp as dpm
from tests.dp_audit import audit, laplace_counts


def test_a_calibrated_laplace_release_passes() -> None:
    on_d, on_n = laplace_counts(10, 11, scale=1.0)  # epsilon 1 at sensitivity 1
    result = audit(on_d, on_n)
    assert result.epsilon_lower <= 1.0, result


def test_noise_divided_by_four_is_caught() -> None:
    on_d, on_n = laplace_counts(10, 11, scale=0.25)  # claims epsilon 1, spends 4
    result = audit(on_d, on_n)
    assert result.epsilon_lower > 1.0, result


def test_opendp_count_is_epsilon_dp_at_its_contribution_bound() -> None:
    # One entity with 3 rows: the neighbour lacks all 3; the map is evaluated at 3.
    eps = Decimal(1)
    meas, _ = dpm.count_measurement(epsilon=eps, max_contributions=3)
    result = audit(lambda: meas([True] * 50), lambda: meas([True] * 47))
    assert result.epsilon_lower <= float(eps), result


def test_opendp_count_calibrated_for_one_row_is_caught_with_three() -> None:
    eps = Decimal(1)
    meas, _ = dpm.count_measurement(epsilon=eps, max_contributions=1)
    result = audit(lambda: meas([True] * 50), lambda: meas([True] * 47))
    assert result.epsilon_lower > float(eps), result
