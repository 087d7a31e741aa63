"""Differentially private releases, built only from OpenDP measurements.

Every release here is an OpenDP measurement over the record-level input
(``symmetric_distance``: adding or removing one record moves the input by 1;
one entity may move it by ``max_contributions``). We never sample noise
ourselves: the measurement does, with OpenDP's exact samplers. The noise scale
is the smallest one whose privacy map, evaluated at ``max_contributions``, is
at most the requested epsilon (found by OpenDP's ``binary_search_param``), so a
release never spends more than the budget charged for it.

Noise granularity: counts get integer discrete-Laplace noise (the release is a
whole number). Float sums and means get OpenDP's discretised Laplace at its
finest granularity (2^-1074, the float's own resolution), after clamping every
value to the public bounds; the float-sum sensitivity includes OpenDP's bound on
floating-point rounding error. Quantiles are chosen by OpenDP's exponential
mechanism from ``candidates`` evenly spaced public values, so the release is
always one of those candidates.

Robustness: a NaN cannot be clamped, so NaNs are dropped before the measurement
(a record-wise filter, 1-stable, and the same for every input); infinities are
clamped like any other value. One bad row therefore never turns a release into
an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import opendp.prelude as dp

from sealroom.errors import InvalidInput

__all__ = [
    "MAX_EPSILON",
    "DpRelease",
    "count_measurement",
    "dp_count",
    "dp_mean",
    "dp_quantile",
    "dp_sum",
    "mean_measurement",
    "quantile_measurement",
    "sum_measurement",
]

MAX_EPSILON = Decimal(100)
"""Larger epsilons give no meaningful protection; refuse them rather than pretend."""

_MAX_CANDIDATES = 10_000
_MAX_CONTRIBUTIONS = 1_000_000

dp.enable_features("contrib")


@dataclass(frozen=True, slots=True)
class DpRelease:
    """One noisy value with what a reader needs to interpret it."""

    value: float | int
    mechanism: str
    scale: str
    epsilon: Decimal
    delta: Decimal
    granularity: str


def _check_epsilon(epsilon: Decimal) -> float:
    """The epsilon as a float no larger than the Decimal (a budget is never overspent)."""
    if not isinstance(epsilon, Decimal):
        raise InvalidInput("epsilon must be a Decimal")
    try:
        ok = epsilon.is_finite() and Decimal(0) < epsilon <= MAX_EPSILON
    except InvalidOperation:
        ok = False
    if not ok:
        raise InvalidInput(f"epsilon must be a finite decimal in (0, {MAX_EPSILON}], got {epsilon}")
    target = float(epsilon)
    if Decimal(target) > epsilon:
        target = math.nextafter(target, 0.0)
    return target


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(bounds[0]), float(bounds[1]))
    except (TypeError, ValueError, IndexError):
        raise InvalidInput("bounds must be a pair of numbers (lower, upper)") from None
    if len(bounds) != 2 or not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InvalidInput(f"bounds must be finite with lower < upper, got {bounds!r}")
    return lo, hi


def _check_contributions(max_contributions: int) -> int:
    if (
        isinstance(max_contributions, bool)
        or not isinstance(max_contributions, int)
        or not 1 <= max_contributions <= _MAX_CONTRIBUTIONS
    ):
        raise InvalidInput(
            f"max_contributions must be an integer in [1, {_MAX_CONTRIBUTIONS}], "
            f"got {max_contributions!r}"
        )
    return max_contributions


def _floats(values: Sequence[float]) -> list[float]:
    """Values as floats with NaNs dropped (they cannot be clamped; see the module docstring)."""
    out: list[float] = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InvalidInput("DP statistics take numeric values only") from None
        if not math.isnan(f):
            out.append(f)
    return out


def _float_space() -> tuple[Any, Any]:
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()


def _calibrate(make: Callable[[float], Any], *, d_in: int, epsilon: float) -> tuple[Any, float]:
    """The measurement with the smallest scale whose map(d_in) <= epsilon."""
    scale = float(dp.binary_search_param(make, d_in=d_in, d_out=epsilon, T=float))
    meas = make(scale)
    # binary_search_param guarantees the relation; check it anyway (fail closed).
    if not meas.check(d_in, epsilon):  # pragma: no cover - OpenDP guarantees this
        raise InvalidInput("could not calibrate the DP noise to the budget")
    return meas, scale


def count_measurement(*, epsilon: Decimal, max_contributions: int = 1) -> tuple[Any, float]:
    """The record count with integer discrete-Laplace noise, and its scale."""
    eps = _check_epsilon(epsilon)
    mc = _check_contributions(max_contributions)
    space = (dp.vector_domain(dp.atom_domain(T=bool)), dp.symmetric_distance())

    def make(scale: float) -> Any:
        return space >> dp.t.then_count() >> dp.m.then_laplace(scale=scale)

    return _calibrate(make, d_in=mc, epsilon=eps)


def dp_count(
    n_entities_values: Sequence[object], *, epsilon: Decimal, max_contributions: int = 1
) -> DpRelease:
    """A noisy count of the records given (one record per item; an entity may own
    ``max_contributions`` of them, which the caller has already enforced)."""
    meas, scale = count_measurement(epsilon=epsilon, max_contributions=max_contributions)
    value = int(meas([True] * len(n_entities_values)))
    return DpRelease(
        value=value,
        mechanism="laplace",
        scale=repr(scale),
        epsilon=epsilon,
        delta=Decimal(0),
        granularity=(
            "integer count plus discrete Laplace noise (granularity 1) from OpenDP; "
            "may be negative or exceed the true count"
        ),
    )


def sum_measurement(
    *, bounds: tuple[float, float], epsilon: Decimal, max_contributions: int = 1
) -> tuple[Any, float]:
    """Clamp to ``bounds``, sum, add Laplace noise; returns the measurement and its scale."""
    eps = _check_epsilon(epsilon)
    lo, hi = _check_bounds(bounds)
    mc = _check_contributions(max_contributions)

    def make(scale: float) -> Any:
        return (
            _float_space()
            >> dp.t.then_clamp((lo, hi))
            >> dp.t.then_sum()  # type: ignore[no-untyped-call]
            >> dp.m.then_laplace(scale=scale)
        )

    return _calibrate(make, d_in=mc, epsilon=eps)


def dp_sum(
    values: Sequence[float],
    *,
    bounds: tuple[float, float],
    epsilon: Decimal,
    max_contributions: int = 1,
) -> DpRelease:
    """A noisy sum of ``values`` clamped to ``bounds``."""
    meas, scale = sum_measurement(
        bounds=bounds, epsilon=epsilon, max_contributions=max_contributions
    )
    value = float(meas(_floats(values)))
    return DpRelease(
        value=value,
        mechanism="laplace",
        scale=repr(scale),
        epsilon=epsilon,
        delta=Decimal(0),
        granularity=(
            f"values clamped to [{bounds[0]!r}, {bounds[1]!r}]; sum plus OpenDP discretised "
            "Laplace noise at granularity 2^-1074 (float resolution)"
        ),
    )


def mean_measurement(
    *, bounds: tuple[float, float], epsilon: Decimal, max_contributions: int = 1
) -> tuple[Any, float, float]:
    """A noisy clamped sum and a noisy count, each with half of ``epsilon``, composed.

    Returns the composed measurement (its output is ``[sum, count]``) and both scales.
    """
    eps = _check_epsilon(epsilon)
    half = epsilon / 2
    sum_meas, sum_scale = sum_measurement(
        bounds=bounds, epsilon=half, max_contributions=max_contributions
    )
    half_f = _check_epsilon(half)
    mc = _check_contributions(max_contributions)

    def make_count(scale: float) -> Any:
        return _float_space() >> dp.t.then_count() >> dp.m.then_laplace(scale=scale)

    count_meas, count_scale = _calibrate(make_count, d_in=mc, epsilon=half_f)
    composed = dp.c.make_composition([sum_meas, count_meas])
    if not composed.check(mc, eps):  # pragma: no cover - the halves add up to at most eps
        raise InvalidInput("could not calibrate the DP noise to the budget")
    return composed, sum_scale, count_scale


def dp_mean(
    values: Sequence[float],
    *,
    bounds: tuple[float, float],
    epsilon: Decimal,
    max_contributions: int = 1,
) -> DpRelease:
    """Noisy clamped sum / noisy count (each with epsilon/2), clamped to ``bounds``.

    Dividing and clamping are post-processing and cost nothing more; with a noisy
    count below 1 the divisor is 1.
    """
    lo, hi = _check_bounds(bounds)
    meas, sum_scale, count_scale = mean_measurement(
        bounds=bounds, epsilon=epsilon, max_contributions=max_contributions
    )
    noisy_sum, noisy_count = meas(_floats(values))
    mean = float(noisy_sum) / max(int(noisy_count), 1)
    value = min(max(mean, lo), hi)
    return DpRelease(
        value=value,
        mechanism="laplace",
        scale=repr(sum_scale),
        epsilon=epsilon,
        delta=Decimal(0),
        granularity=(
            f"values clamped to [{bounds[0]!r}, {bounds[1]!r}]; noisy sum (Laplace scale "
            f"{sum_scale!r}, granularity 2^-1074) divided by noisy count (discrete Laplace "
            f"scale {count_scale!r}), each with half the epsilon; result clamped to the bounds"
        ),
    )


def _candidates(lo: float, hi: float, candidates: int) -> list[float]:
    if isinstance(candidates, bool) or not isinstance(candidates, int):
        raise InvalidInput("candidates must be an integer")
    if not 2 <= candidates <= _MAX_CANDIDATES:
        raise InvalidInput(f"candidates must be in [2, {_MAX_CANDIDATES}], got {candidates}")
    step = (hi - lo) / (candidates - 1)
    return [lo + i * step for i in range(candidates - 1)] + [hi]


def quantile_measurement(
    *, bounds: tuple[float, float], q: float, epsilon: Decimal, candidates: int = 100
) -> tuple[Any, float, list[float]]:
    """The exponential-mechanism quantile over evenly spaced candidates; measurement,
    scale and candidates."""
    eps = _check_epsilon(epsilon)
    lo, hi = _check_bounds(bounds)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= float(q) <= 1.0:
        raise InvalidInput(f"q must be a number in [0, 1], got {q!r}")
    cands = _candidates(lo, hi, candidates)

    def make(scale: float) -> Any:
        return (
            _float_space()
            >> dp.t.then_clamp((lo, hi))
            >> dp.m.then_private_quantile(
                dp.max_divergence(), candidates=cands, alpha=float(q), scale=scale
            )
        )

    meas, scale = _calibrate(make, d_in=1, epsilon=eps)
    return meas, scale, cands


def dp_quantile(
    values: Sequence[float],
    *,
    bounds: tuple[float, float],
    q: float,
    epsilon: Decimal,
    candidates: int = 100,
) -> DpRelease:
    """The ``q``-quantile of ``values`` clamped to ``bounds``, one of ``candidates`` points.

    Each record contributes once (the caller aggregates per entity first).
    """
    meas, scale, _ = quantile_measurement(
        bounds=bounds, q=q, epsilon=epsilon, candidates=candidates
    )
    value = float(meas(_floats(values)))
    return DpRelease(
        value=value,
        mechanism="exponential",
        scale=repr(scale),
        epsilon=epsilon,
        delta=Decimal(0),
        granularity=(
            f"one of {candidates} evenly spaced candidates in [{bounds[0]!r}, {bounds[1]!r}], "
            "chosen by OpenDP's exponential mechanism on clamped values"
        ),
    )
