"""correlation: how a column of one dataset moves with a column of another, joined on a key.

Privacy contract (class ``aggregate``, released to every party; the adversary of
docs/privacy.md holds either input, every parameter and any number of
identities). What leaves: n (matched keys), Pearson's r with a confidence
interval and a p-value, and in exact mode Spearman's rho likewise. No row, key
or per-key value leaves. Key columns may be ``join_only`` or ``never_output``;
``x`` and ``y`` may not.

Method: rows are matched on ``key_a`` = ``key_b`` (identifiers compared as
strings, integers as their digits). When a key has several rows on one side
(a *group key*: e.g. many reviews per restaurant) its value is ``agg_a`` /
``agg_b`` of those rows (default mean; ``count`` needs no column), then clipped
to ``x_bounds`` / ``y_bounds`` (public; request parameters in both modes).

DP mode (``dp``; the default policies require it): Pearson's r from six OpenDP
measurements over the matched keys, each charged epsilon / 6: n (count,
discrete Laplace) and the sums of x, y, x^2, y^2 and xy, each value centred on
its bounds' midpoint (clamp + sum, Laplace). d_in per input
(:mod:`sealroom.computations._join_privacy`): 1 when the entity column is the
key, else 2m, with m = 1 for row entities and ``dp.max_keys_per_entity``
(truncation) for others (a key's value may come from several entities). r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2)(n Syy -
Sy^2)) from the noisy sums, null when a noisy variance is not positive; the
interval and p-value are a bootstrap of the noise and Fisher's sampling error.
Spearman's rho is not released in DP mode (null): one entity moves every rank,
so ranks have no useful sensitivity bound; ask for a DP correlation of ranks
you compute yourself on public scales, or use exact mode. No exact n leaves.

Exact mode (no ``dp``; only the owner-pinned columns, aggregations and bounds,
with pinned partner data): refused (``k-threshold``) unless the matched rows
hold at least ``k_i`` distinct entities of EACH input i; x and y are clipped
to the pinned bounds, then top- and bottom-coded so that each extreme level is
shared by k entities of the other input (``influence-bound`` when too few): a
partner's indicator of one identifier becomes a constant (r undefined), a
planted outlier one of k equal values. The footprint (matched entities per
side) goes to the enclave's difference checks (S vs S plus one id: refused).
Then Pearson r and Spearman rho (average ranks for ties) over the n matched
keys; p-values from scipy (t with n-2 degrees of freedom); Fisher-z intervals
``tanh(atanh(r) +- z_(1+c)/2 * sqrt(f / (n-3)))`` with f = 1 for Pearson and
1.06 for Spearman (Fieller, Hartley and Pearson 1957), null when n < 4; a
coefficient is null when a side is constant.

Residual leakage: DP, epsilon per input per run. Exact: a coefficient over at
least k entities per side with coded extremes; combinations of releases over
sets that differ by k or more, which the pins stop.

Numbers: 12 significant digits as decimal strings; unusable cells are absent
rows (:mod:`sealroom.computations._stats`).

Utility on statsmodels' ``fair`` (ids 1000..3998 even: 1500 pairs) at epsilon 1,
entity = id, over 200 runs: r of age [17, 42] and yrs_married [0, 25] (0.895) is
off by 0.021 (median) and 0.088 (95th percentile); r of yrs_married [0, 25] and
affairs [0, 10] (-0.078) by 0.052 and 0.16: six noisy sums at epsilon / 6 each
cost about +-0.1 in r at n = 1500 when the bounds are wide for the data.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field
from scipy import stats

from sealroom.computations import _join_privacy as jp
from sealroom.computations import _stats
from sealroom.computations._stats import Agg, ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import (
    Computation,
    Footprint,
    PrivacyContext,
    Released,
)
from sealroom.computations.column_uses import ColumnUse

__all__ = ["COMPUTATION", "Coefficient", "CorrelationOutput", "CorrelationParams", "run"]


class CorrelationParams(ParamsModel):
    key_a: ColumnName = "id"
    """Identifier column of input a (the join key)."""
    key_b: ColumnName = "id"
    """Identifier column of input b (the join key)."""
    x: ColumnName
    """Numeric column of input a."""
    y: ColumnName
    """Numeric column of input b."""
    agg_a: Agg = "mean"
    """How an identifier's rows in input a are combined into one x."""
    agg_b: Agg = "mean"
    """How an identifier's rows in input b are combined into one y."""
    x_bounds: jp.Bounds
    """Public [lower, upper] of x, as decimal strings (values are clamped)."""
    y_bounds: jp.Bounds
    """Public [lower, upper] of y, as decimal strings (values are clamped)."""
    confidence: Confidence = "0.95"
    """Confidence level of the interval, a decimal strictly between 0 and 1."""
    dp: jp.JoinDpParams | None = None
    """Differential privacy: epsilon and max_keys_per_entity; the policy's DP budget is charged."""


class Coefficient(Model):
    estimate: Num | None
    ci_low: Num | None
    ci_high: Num | None
    p_value: Num | None


class CorrelationOutput(Model):
    n: Annotated[int, Field(ge=0)]
    pearson: Coefficient
    spearman: Coefficient | None
    confidence: Num
    insight: Annotated[str, Field(min_length=1, max_length=1000)]
    dp: jp.JoinDp | None = None


def _coefficient(r: float, p: float, n: int, confidence: float, f: float) -> Coefficient:
    lo, hi = _stats.fisher_ci(r, n, confidence, se_factor=f)
    return Coefficient(
        estimate=_stats.num(r),
        ci_low=_stats.num(lo),
        ci_high=_stats.num(hi),
        p_value=_stats.num(p) if math.isfinite(r) else None,
    )


def _strength(r: float) -> str:
    a = abs(r)
    return "strong" if a >= 0.5 else "moderate" if a >= 0.3 else "weak" if a >= 0.1 else "no"


def _insight(r: float, p: float, n: int, dp: bool) -> str:
    if not math.isfinite(r):
        return f"correlation undefined: fewer than 3 matched keys or a constant side (n = {n})"
    return (
        f"{_strength(r)} {'positive' if r > 0 else 'negative'} linear correlation "
        f"(r = {_stats.num(round(r, 3))}, {_stats.p_text(p)}, n = {n}"
        + (", differentially private)" if dp else ")")
    )


def _values(
    side: jp.Side, codes: _stats.Codes, column: str, agg: Agg, size: int
) -> tuple[_stats.Bools, _stats.Floats, _stats.Bools]:
    xs = None if agg == "count" else _stats.numbers(side.table, column, input_name=side.name)
    return _stats.group_values(codes, xs, agg, size)


def _dp(
    sides: tuple[jp.Side, jp.Side],
    space: _stats.KeySpace,
    params: CorrelationParams,
    privacy: PrivacyContext,
    bounds: tuple[tuple[float, float], tuple[float, float]],
    confidence: float,
) -> CorrelationOutput:
    assert params.dp is not None
    m = params.dp.max_keys_per_entity
    plan = jp.DpPlan(
        jp.moment_stats(*bounds),
        params=params.dp,
        privacy=privacy,
        contributions=(
            jp.contributions(sides[0], m, valued=True),
            jp.contributions(sides[1], m, valued=True),
        ),
        computation="correlation",
    )
    cols, aggs = (params.x, params.y), (params.agg_a, params.agg_b)
    per_key = [
        _values(s, jp.truncate(s, space, m), cols[s.index], aggs[s.index], space.size)
        for s in sides
    ]
    matched = np.flatnonzero(per_key[0][0] & per_key[1][0])
    r, lo, hi, p, n = jp.pearson_release(
        plan, per_key[0][1][matched], per_key[1][1][matched], bounds, confidence
    )
    return CorrelationOutput(
        n=n,
        pearson=Coefficient(
            estimate=_stats.num(r),
            ci_low=_stats.num(lo),
            ci_high=_stats.num(hi),
            p_value=_stats.num(p),
        ),
        spearman=None,
        confidence=params.confidence,
        insight=_insight(r, p, n, True),
        dp=plan.info(confidence),
    )


def run(
    inputs: Sequence[pa.Table], params: CorrelationParams, privacy: PrivacyContext
) -> CorrelationOutput | Released:
    for i, (name, col, role) in enumerate((("a", params.x, "x"), ("b", params.y, "y"))):
        _stats.check_use(privacy, i, col, input_name=name, role=f"correlated column {role}")
    confidence = _stats.confidence_value(params.confidence)
    bounds = (
        jp.bounds_of(params.x_bounds, what="x_bounds"),
        jp.bounds_of(params.y_bounds, what="y_bounds"),
    )
    sides, space = jp.sides(inputs, privacy, (params.key_a, params.key_b), ("a", "b"))
    if params.dp is not None:
        return _dp(sides, space, params, privacy, bounds, confidence)
    size = space.size
    cols, aggs = (params.x, params.y), (params.agg_a, params.agg_b)
    per_key = [_values(s, s.codes, cols[s.index], aggs[s.index], size) for s in sides]
    # Matched keys in str order, as sorted() would give them.
    matched = space.in_str_order(np.flatnonzero(per_key[0][0] & per_key[1][0]))
    rows = [per_key[s.index][2] & s.rows_of(matched, size) for s in sides]
    jp.require_k(sides, rows, privacy, what="correlation")
    x, y = (
        jp.cover_clip(
            np.clip(per_key[i][1], *bounds[i]),
            matched,
            sides[1 - i],
            rows[1 - i],
            privacy.k[1 - i],
            what="correlation",
        )[matched]
        for i in (0, 1)
    )
    n = len(matched)
    r = rho = p_r = p_rho = math.nan
    if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pr = stats.pearsonr(x, y)
            sr = stats.spearmanr(x, y)
        r, p_r = float(pr.statistic), float(pr.pvalue)
        rho, p_rho = float(sr.statistic), float(sr.pvalue)
    out = CorrelationOutput(
        n=n,
        pearson=_coefficient(r, p_r, n, confidence, 1.0),
        spearman=_coefficient(rho, p_rho, n, confidence, 1.06),
        confidence=params.confidence,
        insight=_insight(r, p_r, n, False),
    )
    cells = tuple((jp.entity_set(s, used),) for s, used in zip(sides, rows, strict=True))
    return Released(out, Footprint(cells=cells))


def _columns(params: CorrelationParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (
        ColumnUse(params.key_a, "key", "key_a", 0),
        ColumnUse(params.x, "numeric", "x", 0),
        ColumnUse(params.key_b, "key", "key_b", 1),
        ColumnUse(params.y, "numeric", "y", 1),
    )


COMPUTATION = Computation(
    id="correlation",
    version="2.2.0",
    summary=(
        "Pearson (and, exactly, Spearman) correlation with intervals, p-values and n between "
        "bounded columns of two datasets joined on a key; DP, or exact from a pinned shape."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=CorrelationParams,
    output=CorrelationOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _stats, jp),
    cost_fn=jp.cost,
    isolating=("key_a", "key_b", "x", "y", "agg_a", "agg_b", "x_bounds", "y_bounds"),
    selectors=True,
)
