"""intersection-sum: what the shared identifiers are worth, e.g. the spend of overlapping customers.

Privacy contract (class ``aggregate``, released to every party; the adversary of
docs/privacy.md holds either input, every parameter and any number of
identities). What leaves: the size of the intersection (identifiers with a
usable value on the ``value_input`` side that the other side also holds), the
sum of the value over it, the mean per identifier with a confidence interval,
and in exact mode the number of value rows and the mean per row. Nothing per
identifier leaves. Identifier columns may be ``join_only`` / ``never_output``;
the value column may not.

Method: identifiers are matched as strings (see
:mod:`sealroom.computations.intersection_overlap`). An identifier's value is the
sum of its rows, clipped to ``value_bounds`` (public, a request parameter in
both modes). Unusable value cells are absent rows; numbers are decimal strings
of 12 significant digits (:mod:`sealroom.computations._stats`).

DP mode (``dp``; the default policies require it): three OpenDP measurements
over the intersection, each charged epsilon / 3: its size (count, discrete
Laplace), the sum of the clipped values and the sum of their squared
deviations from the bounds' midpoint (clamp + sum, Laplace). d_in per input
(:mod:`sealroom.computations._join_privacy`), with m the keys one entity may
hold (1 when the entity column is the key or rows are the entities, else
``dp.max_keys_per_entity``, enforced by truncation): m on the other side; on the
value side 1 when the entity column is the key, else 2m (a key's total may come
from several entities). The mean is the
noisy sum over the noisy size, clipped to the bounds; the interval is a
bootstrap of the noise and of the t-interval's sampling error. No exact count
(overlap, rows) leaves: ``rows`` and ``mean_per_row`` are null.

Exact mode (no ``dp``; only from the owner-pinned key and value columns, value
input and bounds, with pinned partner data): refused (``k-threshold``) unless
the intersection holds at least K = max(k_a, k_b) identifiers and at least
``k_i`` distinct entities of EACH input i; values are clipped to the pinned
bounds, then top- and bottom-coded so that each extreme level is shared by
k entities of the other input (refused, ``influence-bound``, when there are too
few): a value planted on one identifier to reveal whether the partner holds it
moves the release no more than any of k people. The footprint (the
intersection's entities on each side) goes to the enclave's difference checks:
two pinned partner lists S and S plus one id give releases that differ by one
entity, and the second is refused (``difference-check``).

Residual leakage: DP, epsilon per input per run (the size, sum and spread of
the clipped values are noisy; the bounds cap one entity's influence). Exact: a
sum over at least k entities per side with coded extremes; linear combinations
of releases that differ by k or more entities, which the pins stop (an exact
shape has one pinned partner set per owner approval).

Utility on statsmodels' ``fair`` (``affairs`` of ids 1000..3998 even: 1500
identifiers, sum 1022.7 after clipping to bounds [0, 10]) at epsilon 1, entity =
id, over 200 runs: the sum is off by 17 (median) and 100 (95th percentile; the
noise scale is 10 x 3 / 1), the mean (0.682) by 0.014 and 0.056, the size by
2.5 and 10. Exact mode with k = 5 gives the same sum here (no value is coded).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from sealroom.computations import _join_privacy as jp
from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import (
    Computation,
    Footprint,
    PrivacyContext,
    Released,
)
from sealroom.computations.column_uses import ColumnUse
from sealroom.errors import PolicyDenied

__all__ = ["COMPUTATION", "IntersectionSumOutput", "IntersectionSumParams", "run"]


class IntersectionSumParams(ParamsModel):
    key_a: ColumnName = "id"
    """Identifier column of input a."""
    key_b: ColumnName = "id"
    """Identifier column of input b."""
    value: ColumnName
    """Numeric column summed over the common identifiers."""
    value_input: Literal["a", "b"] = "b"
    """Which input holds the value column: a or b."""
    value_bounds: jp.Bounds
    """Public [lower, upper] of the value, as decimal strings (values are clamped)."""
    confidence: Confidence = "0.95"
    """Confidence level of the interval, a decimal strictly between 0 and 1."""
    dp: jp.JoinDpParams | None = None
    """Differential privacy: epsilon and max_keys_per_entity; the policy's DP budget is charged."""


class IntersectionSumOutput(Model):
    overlap: Annotated[int, Field(ge=0)]
    rows: Annotated[int, Field(ge=0)] | None
    sum: Num | None
    mean_per_id: Num | None
    ci_low: Num | None
    ci_high: Num | None
    mean_per_row: Num | None
    confidence: Num
    dp: jp.JoinDp | None = None


def _dp(
    sides: tuple[jp.Side, jp.Side],
    space: _stats.KeySpace,
    values: _stats.Floats,
    vi: int,
    bounds: tuple[float, float],
    params: IntersectionSumParams,
    privacy: PrivacyContext,
) -> IntersectionSumOutput:
    assert params.dp is not None
    m = params.dp.max_keys_per_entity
    lo, hi = bounds
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    contributions = [jp.contributions(s, m, valued=s.index == vi) for s in sides]
    plan = jp.DpPlan(
        (
            jp.Stat("n", (0, 1)),
            jp.Stat("sum", (0, 1), bounds=bounds),
            jp.Stat("squares", (0, 1), bounds=(0.0, half * half)),
        ),
        params=params.dp,
        privacy=privacy,
        contributions=(contributions[0], contributions[1]),
        computation="intersection-sum",
    )
    codes = [jp.truncate(s, space, m) for s in sides]
    has_v, totals, _ = _stats.group_values(codes[vi], values, "sum", space.size)
    other = codes[1 - vi]
    in_other = np.bincount(other[other >= 0], minlength=space.size) > 0
    x = np.clip(totals[np.flatnonzero(has_v & in_other)], lo, hi)
    noisy = plan.release({"n": len(x), "sum": x, "squares": (x - mid) ** 2})
    n = max(noisy.count("n"), 0)
    total = noisy.sum("sum")
    confidence = _stats.confidence_value(params.confidence)
    reps = plan.replicates(noisy)
    rn = reps["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_r = np.where(rn >= 2, reps["sum"] / rn, math.nan)
        var_r = np.maximum((reps["squares"] - rn * (mean_r - mid) ** 2) / (rn - 1), 0.0)
        ci_lo, ci_hi = jp.interval(mean_r + reps.z * np.sqrt(var_r / rn), confidence)
    return IntersectionSumOutput(
        overlap=n,
        rows=None,
        sum=_stats.num(total),
        mean_per_id=_stats.num(min(max(total / n, lo), hi)) if n else None,
        ci_low=_stats.num(ci_lo),
        ci_high=_stats.num(ci_hi),
        mean_per_row=None,
        confidence=params.confidence,
        dp=plan.info(confidence),
    )


def run(
    inputs: Sequence[pa.Table], params: IntersectionSumParams, privacy: PrivacyContext
) -> IntersectionSumOutput | Released:
    vi = 0 if params.value_input == "a" else 1
    _stats.check_use(privacy, vi, params.value, input_name=params.value_input, role="value")
    confidence = _stats.confidence_value(params.confidence)
    bounds = jp.bounds_of(params.value_bounds, what="value_bounds")
    sides, space = jp.sides(inputs, privacy, (params.key_a, params.key_b), ("a", "b"))
    values = _stats.numbers(inputs[vi], params.value, input_name=sides[vi].name)
    if params.dp is not None:
        return _dp(sides, space, values, vi, bounds, params, privacy)
    has_v, totals, used_v = _stats.group_values(sides[vi].codes, values, "sum", space.size)
    selector = sides[1 - vi]
    in_other = np.bincount(selector.codes[selector.codes >= 0], minlength=space.size) > 0
    both = space.in_str_order(np.flatnonzero(has_v & in_other))
    rows = [used_v & sides[vi].rows_of(both, space.size), selector.rows_of(both, space.size)]
    if vi == 1:
        rows.reverse()
    if len(both) < max(privacy.k) or any(
        s.entities(r) < privacy.k[s.index] for s, r in zip(sides, rows, strict=True)
    ):
        raise PolicyDenied(
            f"intersection-sum: the intersection is below the threshold of {max(privacy.k)} "
            "identifiers or of an input's k distinct entities",
            rule="k-threshold",
        )
    coded = jp.cover_clip(
        np.clip(totals, *bounds),
        both,
        selector,
        rows[selector.index],
        privacy.k[selector.index],
        what="intersection-sum",
    )
    per_id = coded[both]
    n_rows = int(np.count_nonzero(rows[vi]))
    total = math.fsum(per_id.tolist())
    lo, hi = _stats.t_mean_ci(per_id, confidence)
    out = IntersectionSumOutput(
        overlap=len(both),
        rows=n_rows,
        sum=_stats.num(total),
        mean_per_id=_stats.num(total / len(both)),
        ci_low=_stats.num(lo),
        ci_high=_stats.num(hi),
        mean_per_row=_stats.num(total / n_rows),
        confidence=params.confidence,
    )
    cells = tuple((jp.entity_set(s, r),) for s, r in zip(sides, rows, strict=True))
    return Released(out, Footprint(cells=cells))


def _columns(params: IntersectionSumParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (
        ColumnUse(params.key_a, "key", "key_a", 0),
        ColumnUse(params.key_b, "key", "key_b", 1),
        ColumnUse(params.value, "numeric", "value", 0 if params.value_input == "a" else 1),
    )


COMPUTATION = Computation(
    id="intersection-sum",
    version="2.2.0",
    summary=(
        "Sum and mean (with confidence interval) of a bounded value over the identifiers two "
        "datasets share; DP, or (from an owner-pinned shape) exact with k on both sides."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=IntersectionSumParams,
    output=IntersectionSumOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _stats, jp),
    cost_fn=jp.cost,
    isolating=("key_a", "key_b", "value", "value_input", "value_bounds"),
    selectors=True,
)
