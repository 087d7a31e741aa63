"""Entity-level differentially private statistics per group, on OpenDP's Polars measurements.

The privacy unit is one *identifier*: one entity of one protected input with all its
rows (``ids``; a row number when the input declares no entity column). Neighbouring
datasets add or remove one identifier.

1. **Contribution bounds, by truncation** (:func:`truncate`, before any statistic):
   each identifier keeps at most ``rows_per_group`` rows in each group and rows in at
   most ``groups`` groups, chosen at random (uniformly, per identifier, from fresh OS
   randomness). What an identifier keeps depends only on its own rows, so adding or
   removing one identifier changes the truncated table by at most ``rows_per_group``
   rows in each of at most ``groups`` groups. That is the input distance the
   measurement is calibrated at: OpenDP's frame distance
   ``[Bound(per_group=rows_per_group * groups),
   Bound(by=labels, per_group=rows_per_group, num_groups=groups)]``
   (:meth:`Bounds.d_in`). We truncate ourselves rather than with OpenDP's
   ``truncate_num_groups``: in OpenDP 0.16 it keeps k - 1 groups while charging k
   (a dense rank starts at 1), and with one grouping column it fails in Polars
   ("multiple fields"); our truncation is tested on its own
   (tests/policy/test_policy_dp_groups.py).
2. **One OpenDP measurement** (``make_private_lazyframe``) over the truncated table
   releases every statistic of every released group. Each statistic has its own
   noise scale, calibrated so that its privacy map at the bound is at most its share
   ``epsilon_each`` (a count and a sum: Laplace; a quantile: the exponential mechanism
   over public candidates); the measurement composes them, and its map at the bound
   is checked against ``(epsilon, delta)`` before it may run.
3. **Group presence inside DP**: with labels, which groups appear is decided by
   OpenDP's partition selection (a group is released only if its noisy row count
   reaches a threshold; the threshold is the smallest whose ``delta`` at the bound is
   at most the ``delta`` charged). Without labels there is one public group and
   ``delta`` is 0.

Sums are of integers: a value is clamped to its public bounds, then rounded to a
multiple of a power of two (``step``: 2^-20 of the largest bound, rounded up to a
power of two), so the sum is exact in any order and its sensitivity is exact (a float
sum's rounding error, which OpenDP bounds by the largest group length, would cost
more than the noise at our table sizes). A released sum is the noisy integer times
``step``. Counts are of rows within the bounds; a mean is post-processing (noisy sum
over noisy count, clamped to the bounds). The one public fact the measurement assumes
of the data is a table of at most :data:`MAX_ROWS` rows (OpenDP's ``max_length``
margin; larger tables are refused), which also keeps integer sums far from overflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import opendp.prelude as dp
import polars as pl
from opendp.extras.polars import Bound, DPExpr, Margin, dp_len

from sealroom.errors import InvalidInput

__all__ = [
    "CANDIDATES",
    "MAX_ROWS",
    "Bounds",
    "GroupRelease",
    "Mechanism",
    "Plan",
    "Statistic",
    "integer_bounds",
    "plan",
    "quantize",
    "step_for",
    "truncate",
]

dp.enable_features("contrib")

MAX_ROWS = 2**31 - 1
"""The most rows a table may have (OpenDP's public ``max_length`` margin)."""
CANDIDATES = 101
"""Public candidates of a DP quantile: evenly spaced over the value bounds, ends included."""
_SUM_BITS = 20
_MAX_BOUND = 1_000_000
_MAX_EPSILON = Decimal(100)

Kind = Literal["count", "sum", "quantile"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much one identifier may contribute: rows per group, and groups."""

    rows_per_group: int
    groups: int

    def __post_init__(self) -> None:
        for name in ("rows_per_group", "groups"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an integer")
            if not 1 <= value <= _MAX_BOUND:
                raise InvalidInput(f"{name} must be in [1, {_MAX_BOUND}], got {value}")

    def d_in(self, labels: Sequence[str]) -> list[Any]:
        """The input distance at which every measurement is calibrated (OpenDP bounds)."""
        total = Bound(per_group=self.rows_per_group * self.groups)
        if not labels:
            return [total]
        by = [pl.col(c) for c in labels]
        return [
            total,
            Bound(by=by, per_group=self.rows_per_group, num_groups=self.groups),
        ]


@dataclass(frozen=True, slots=True)
class Statistic:
    """One released statistic of each group.

    ``count`` with ``column`` None counts rows; with a column, its non-null cells.
    ``sum`` sums the integer column ``column`` (see :func:`quantize`) whose values lie in
    ``bounds``. ``quantile`` picks the ``alpha``-quantile of the float column ``column``
    among :data:`CANDIDATES` points evenly spaced over ``bounds``.
    """

    name: str
    kind: Kind
    column: str | None = None
    bounds: tuple[float, float] | None = None
    alpha: float | None = None

    def expr(self, scale: float) -> pl.Expr:
        """The OpenDP Polars expression of this statistic at ``scale``."""
        e: pl.Expr
        if self.kind == "count":
            e = (
                dp_len(scale=scale, signed=False)
                if self.column is None
                else _dp(pl.col(self.column)).count(scale=scale, signed=False)
            )
        elif self.kind == "sum":
            lo, hi = _bounds_of(self)
            e = _dp(pl.col(_column_of(self))).sum((int(lo), int(hi)), scale=scale)
        else:
            lo, hi = _bounds_of(self)
            if self.alpha is None or not 0.0 <= self.alpha <= 1.0:
                raise InvalidInput(f"statistic {self.name}: alpha must be in [0, 1]")
            cands = [float(c) for c in np.linspace(lo, hi, CANDIDATES)]
            e = _dp(pl.col(_column_of(self))).quantile(self.alpha, cands, scale=scale)
        return e.alias(self.name)


def _dp(expr: pl.Expr) -> Any:
    """OpenDP's ``.dp`` namespace of ``expr`` (registered at run time, so untyped)."""
    return DPExpr(expr)  # type: ignore[no-untyped-call]


def _column_of(stat: Statistic) -> str:
    if stat.column is None:
        raise InvalidInput(f"statistic {stat.name}: a {stat.kind} needs a column")
    return stat.column


def _bounds_of(stat: Statistic) -> tuple[float, float]:
    if stat.bounds is None:
        raise InvalidInput(f"statistic {stat.name}: a {stat.kind} needs public bounds")
    lo, hi = stat.bounds
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInput(f"statistic {stat.name}: bounds must be finite with lower < upper")
    return lo, hi


def step_for(bounds: tuple[float, float]) -> float:
    """The power of two that values with these bounds are rounded to before summing."""
    top = max(abs(bounds[0]), abs(bounds[1]), 2.0**-1000)
    return math.ldexp(1.0, math.frexp(top)[1] - _SUM_BITS)


def quantize(values: npt.NDArray[np.float64], bounds: tuple[float, float]) -> npt.NDArray[np.int64]:
    """Values clamped to ``bounds`` as integer multiples of :func:`step_for` (NaN -> 0)."""
    step = step_for(bounds)
    clamped = np.clip(np.nan_to_num(values, nan=0.0), bounds[0], bounds[1])
    out: npt.NDArray[np.int64] = np.rint(clamped / step).astype(np.int64)
    return out


def integer_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """The bounds of :func:`quantize`'s integers, widened to include 0 (a missing value)."""
    step = step_for(bounds)
    return (min(float(np.rint(bounds[0] / step)), 0.0), max(float(np.rint(bounds[1] / step)), 0.0))


def truncate(
    ids: npt.NDArray[np.int64],
    groups: npt.NDArray[np.int64],
    bounds: Bounds,
    rng: np.random.Generator | None = None,
) -> npt.NDArray[np.bool_]:
    """Which rows to keep so that each identifier has at most ``bounds.rows_per_group``
    rows in each group and rows in at most ``bounds.groups`` groups.

    Rows and groups are kept at random, independently per identifier: an identifier's
    kept rows depend on its own rows only.
    """
    n = len(ids)
    if len(groups) != n:
        raise InvalidInput("truncate: ids and groups differ in length")
    rng = rng if rng is not None else np.random.default_rng()
    keep = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return keep
    # Rows: rank rows within (identifier, group) in a random order; keep the first ones.
    order = np.lexsort((rng.random(n), groups, ids))
    i_s, g_s = ids[order], groups[order]
    new_cell = np.r_[True, (i_s[1:] != i_s[:-1]) | (g_s[1:] != g_s[:-1])]
    cell_start = np.maximum.accumulate(np.where(new_cell, np.arange(n), 0))
    row_rank = np.arange(n) - cell_start
    # Groups: rank each identifier's cells by a random number; keep the first ones.
    cell_id = np.cumsum(new_cell) - 1
    n_cells = int(cell_id[-1]) + 1
    cell_ident = i_s[new_cell]
    cell_order = np.lexsort((rng.random(n_cells), cell_ident))
    c_ident = cell_ident[cell_order]
    new_ident = np.r_[True, c_ident[1:] != c_ident[:-1]]
    ident_start = np.maximum.accumulate(np.where(new_ident, np.arange(n_cells), 0))
    cell_rank = np.empty(n_cells, dtype=np.int64)
    cell_rank[cell_order] = np.arange(n_cells) - ident_start
    kept = (row_rank < bounds.rows_per_group) & (cell_rank[cell_id] < bounds.groups)
    keep[order] = kept
    return keep


def _below(value: Decimal) -> float:
    """The largest float not above ``value`` (a share is never overspent)."""
    target = float(value)
    return target if Decimal(target) <= value else math.nextafter(target, 0.0)


@dataclass(frozen=True, slots=True)
class GroupRelease:
    """Released groups: one row per group, label columns then one column per statistic."""

    frame: pl.DataFrame


_NEVER = 2**32 - 1
"""A threshold no count reaches: it isolates a statistic's epsilon from partition selection."""


@dataclass(frozen=True, slots=True)
class _Builder:
    """Makes OpenDP measurements over one table shape, all at one input distance."""

    schema: Mapping[str, pl.DataType]
    labels: tuple[str, ...]
    d_in: list[Any]
    domain: Any

    @classmethod
    def of(
        cls, schema: Mapping[str, pl.DataType], labels: Sequence[str], bounds: Bounds
    ) -> _Builder:
        series = []
        for name, dtype in schema.items():
            if dtype == pl.String:
                atom = dp.option_domain(dp.atom_domain(T=dp.String))
            elif dtype == pl.Int64:
                atom = dp.atom_domain(T=dp.i64)
            elif dtype == pl.Float64:
                atom = dp.option_domain(dp.atom_domain(T=dp.f64, nan=False))
            else:
                raise InvalidInput(f"DP statistics: column {name} has unsupported type {dtype}")
            series.append(dp.series_domain(name, atom))
        domain = dp.with_margin(dp.lazyframe_domain(series), Margin(by=[], max_length=MAX_ROWS))
        if labels:
            domain = dp.with_margin(domain, Margin(by=list(labels), max_length=MAX_ROWS))
        return cls(dict(schema), tuple(labels), bounds.d_in(labels), domain)

    def make(self, stats: Sequence[tuple[Statistic, float]], threshold: int | None) -> Any:
        base = pl.LazyFrame(schema=dict(self.schema))
        exprs = [s.expr(scale) for s, scale in stats]
        if self.labels:
            query = base.group_by(list(self.labels)).agg(*exprs)
            measure = dp.approximate(dp.max_divergence())
        else:
            query = base.select(*exprs)
            measure = dp.max_divergence()
            threshold = None
        return dp.m.make_private_lazyframe(
            self.domain,
            dp.frame_distance(dp.symmetric_distance()),
            measure,
            query,
            threshold=threshold,
        )

    def loss(self, measurement: Any) -> tuple[float, float]:
        """(epsilon, delta) of ``measurement`` at the bound."""
        out = measurement.map(self.d_in)
        return (float(out[0]), float(out[1])) if self.labels else (float(out), 0.0)

    def alone(self, stat: Statistic, scale: float, count: Statistic) -> Any:
        """``stat`` released on its own (with groups, next to a row count at a scale so
        large that its loss vanishes: OpenDP needs a count to release keys)."""
        if not self.labels or stat is count:
            return self.make([(stat, scale)], _NEVER)
        return self.make([(count, 1e300), (stat, scale)], _NEVER)


@dataclass(frozen=True, slots=True)
class Plan:
    """A calibrated measurement and what it spends.

    ``epsilon_each`` is every statistic's share (``epsilon`` divided by the number of
    statistics, rounded down); ``scales`` the noise scale of each statistic;
    ``threshold`` the partition-selection threshold on the noisy row count (None
    without labels); ``measurement`` the OpenDP measurement, whose map at ``d_in`` is
    at most ``(epsilon, delta)``.
    """

    statistics: tuple[Statistic, ...]
    bounds: Bounds
    epsilon: Decimal
    delta: Decimal
    epsilon_each: Decimal
    scales: Mapping[str, float]
    threshold: int | None
    measurement: Any
    _builder: _Builder

    @property
    def labels(self) -> tuple[str, ...]:
        return self._builder.labels

    @property
    def d_in(self) -> list[Any]:
        """The contribution bound as OpenDP's input distance."""
        return self._builder.d_in

    def loss(self) -> tuple[float, float]:
        """(epsilon, delta) of the whole measurement at the contribution bound."""
        return self._builder.loss(self.measurement)

    def loss_of(self, name: str) -> float:
        """The epsilon of statistic ``name`` alone, at its scale, at the contribution bound."""
        stat = next(s for s in self.statistics if s.name == name)
        alone = self._builder.alone(stat, self.scales[name], self.statistics[0])
        return self._builder.loss(alone)[0]

    def release(self, frame: pl.DataFrame) -> GroupRelease:
        """Run the measurement once on a table truncated to :attr:`bounds`."""
        if frame.height > MAX_ROWS:
            raise InvalidInput(f"DP statistics take at most {MAX_ROWS} rows")
        return GroupRelease(frame=self.measurement(frame.lazy()).collect())


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Mechanism(Generic[T]):
    """A computation's DP release on given inputs: ``plan`` (the calibrated measurement)
    and ``release``, which truncates afresh and runs it once (a run calls it once, an
    audit many times)."""

    plan: Plan
    release: Callable[[], T]


_RETRIES = 24
"""Attempts at fitting the composed shares into the budget (the margin reaches 2^-29)."""


def _calibrate(
    builder: _Builder,
    statistics: Sequence[Statistic],
    target: float,
    labels: Sequence[str],
    delta: Decimal,
) -> tuple[dict[str, float], int | None, Any]:
    """Scales giving each statistic at most ``target`` alone, the partition-selection
    threshold for ``delta``, and the composed measurement."""
    count = statistics[0]
    scales: dict[str, float] = {}
    for stat in statistics:
        # A statistic's loss at scale 1 is its sensitivity at the bound: scale = that / share,
        # nudged up until OpenDP's own map agrees (float rounding).
        scale = builder.loss(builder.alone(stat, 1.0, count))[0] / target
        while builder.loss(builder.alone(stat, scale, count))[0] > target:
            scale = math.nextafter(scale, math.inf)
        scales[stat.name] = scale
    calibrated = [(s, scales[s.name]) for s in statistics]
    threshold: int | None = None
    if labels:
        want = _below(delta)
        lo, hi = 0, _NEVER
        while lo < hi:  # the smallest threshold whose delta at the bound fits
            mid = (lo + hi) // 2
            if builder.loss(builder.make(calibrated[:1], mid))[1] <= want:
                hi = mid
            else:
                lo = mid + 1
        threshold = lo
    return scales, threshold, builder.make(calibrated, threshold)


def plan(
    *,
    schema: Mapping[str, pl.DataType],
    labels: Sequence[str],
    statistics: Sequence[Statistic],
    bounds: Bounds,
    epsilon: Decimal,
    delta: Decimal,
) -> Plan:
    """Calibrate one measurement releasing ``statistics`` per group of ``labels``.

    ``statistics`` must start with a row count (``count`` without a column): with
    labels it decides which groups appear. Every statistic gets ``epsilon / n``
    (rounded down); ``delta`` goes to partition selection (it must be positive with
    labels and is spent as 0 without).
    """
    if not isinstance(epsilon, Decimal) or not (
        epsilon.is_finite() and 0 < epsilon <= _MAX_EPSILON
    ):
        raise InvalidInput(f"epsilon must be a decimal in (0, {_MAX_EPSILON}], got {epsilon}")
    if not isinstance(delta, Decimal) or not (delta.is_finite() and 0 <= delta < 1):
        raise InvalidInput(f"delta must be a decimal in [0, 1), got {delta}")
    if labels and delta == 0:
        raise InvalidInput(
            "releasing groups needs delta > 0: which groups appear is decided by DP "
            "partition selection"
        )
    if not statistics or statistics[0].kind != "count" or statistics[0].column is not None:
        raise InvalidInput("the first statistic must be the row count")
    names = [s.name for s in statistics]
    if len(set(names)) != len(names) or set(names) & set(labels):
        raise InvalidInput("statistics and labels need distinct names")
    each = Context(prec=28, rounding=ROUND_DOWN).divide(epsilon, Decimal(len(statistics)))
    builder = _Builder.of(schema, labels, bounds)
    # OpenDP composes the shares in floating point, rounding each addition up: eleven shares
    # of 1/11 compose to 1.0000000000000004 > 1. Each share is then aimed a few ulps lower,
    # the margin doubling until the composition fits (it does at the first retry in practice).
    for attempt in range(_RETRIES):
        target = _below(each) * (1.0 - (0.0 if attempt == 0 else 2.0 ** (attempt - 52)))
        scales, threshold, measurement = _calibrate(builder, statistics, target, labels, delta)
        spent_eps, spent_delta = builder.loss(measurement)
        if spent_eps <= _below(epsilon) and spent_delta <= _below(delta):
            break
    else:
        raise InvalidInput("could not calibrate the DP measurement to the budget")
    return Plan(
        statistics=tuple(statistics),
        bounds=bounds,
        epsilon=epsilon,
        delta=delta if labels else Decimal(0),
        epsilon_each=each,
        scales=scales,
        threshold=threshold,
        measurement=measurement,
        _builder=builder,
    )
