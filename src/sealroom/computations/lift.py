"""lift: what a campaign caused: exposure (test/control) from one party, conversions from another.

Privacy contract (class ``aggregate``, released to every party; the adversary of
docs/privacy.md holds either input, including its policy and entity column,
every parameter and any number of identities). What leaves: per arm the number
of identifiers, conversions and the conversion rate; the absolute lift with an
interval, the relative lift with an interval, a p-value (and in exact mode the
z statistic), and the estimated incremental conversions. Nothing per
identifier leaves. The identifier columns may be ``join_only`` /
``never_output``; the group and conversion columns may not.

Method: an identifier is in an arm when its exposure rows carry ``test_value``
(or ``control_value``) in ``group``; an identifier in both arms is contaminated
and left out; other labels are ignored. Repeated rows of one identifier count
once. It converted when it appears in the conversions input (``conversion``
null) or when any of its rows there has a true ``conversion`` flag (bool, 0/1,
"true"/"false", "yes"/"no"; unusable cells are absent rows). Rates p =
conversions / n; absolute lift = p_t - p_c; relative lift = p_t / p_c - 1;
incremental conversions = conversions_t - p_c * n_t.

DP mode (``dp``; the default policies require it): one OpenDP measurement, the
counts of the four arm x outcome cells (count by categories, discrete Laplace
per cell), charged all of epsilon; d_in (:mod:`sealroom.computations._join_privacy`)
with m the keys one entity may hold (1 when the entity column is the key or rows
are the entities, else ``dp.max_keys_per_entity``, enforced by truncation): on
the exposure side 1 when its entity column is the key, else 2m; on the
conversions side 2m: a key's absence there is the label "did not convert", so
one entity moves a key between cells. Arms,
rates and lifts are post-processing of the noisy cells (clamped at 0); the
intervals and the p-value are a bootstrap of the noise and the Wald /
log risk-ratio sampling error; z is null. No exact count leaves.

Exact mode (no ``dp``; only the owner-pinned columns and labels, with pinned
partner data): refused (``k-threshold``) unless every cell holds at least K =
max(k_exposure, k_conversions) identifiers and k_exposure distinct exposure
entities, and each converted cell k_conversions distinct entities of the
CONVERSIONS input: thresholds count the protected party on both sides, never
the exposure side alone (whose policy and entity column the requester may
write; one real id repeated 10 times is one identifier and one conversions
entity). A non-converted cell stands on the absence or false flags of the
conversions rows, which the arm's size minus the converted cell already
determines. Binary classes therefore cover k entities of each party. The
footprint (per input, the entities behind each arm and cell) goes to the
enclave's difference checks. Then the pooled two-proportion z-test, two-sided
(as statsmodels' ``proportions_ztest``), the Wald interval of the absolute lift
and the Katz log risk-ratio interval of the relative lift.

Residual leakage: DP, epsilon per input per run. Exact: four cell counts of at
least k; an attacker who knows k-1 converters of an arm learns about a k-th
only if the owner pinned that partner data, and two such releases are refused
by the difference check.

Numbers: decimal strings of 12 significant digits (:mod:`sealroom.computations._stats`).

Utility at epsilon 1, entity = id, over 200 runs: on statsmodels' ``fair`` (6366
women; test = with children, 3952, of whom 1551 had an affair; control 2414,
502) a cell is off by 1 (median) and 6 (95th percentile), the absolute lift
(0.1845) by 0.0006 and 0.0022. On ``spector`` (32 students) the lift (0.405) is
off by 0.13 and 0.43 and the p-value (0.017) by 0.08 and 0.65: too few people
for DP at epsilon 1, which is why the demo's course pins an exact lift.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable, Sequence
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field
from scipy import stats

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
from sealroom.errors import InvalidInput, PolicyDenied

__all__ = ["COMPUTATION", "Arm", "LiftOutput", "LiftParams", "run"]

Label = Annotated[str, Field(min_length=1, max_length=200)]
CELLS = ("test converted", "test not converted", "control converted", "control not converted")


class LiftParams(ParamsModel):
    key_exposure: ColumnName = "id"
    """Identifier column of the exposure input."""
    key_conversions: ColumnName = "id"
    """Identifier column of the conversions input."""
    group: ColumnName = "group"
    """Column of the exposure input naming the arm of each identifier."""
    test_value: Label = "test"
    """Value of group that marks the test arm."""
    control_value: Label = "control"
    """Value of group that marks the control arm."""
    conversion: ColumnName | None = None
    """Flag column of the conversions input; none: any row there is a conversion."""
    confidence: Confidence = "0.95"
    """Confidence level of the intervals, a decimal strictly between 0 and 1."""
    dp: jp.JoinDpParams | None = None
    """Differential privacy: epsilon and max_keys_per_entity; the policy's DP budget is charged."""


class Arm(Model):
    n: Annotated[int, Field(ge=0)]
    conversions: Annotated[int, Field(ge=0)]
    rate: Num | None


class LiftOutput(Model):
    test: Arm
    control: Arm
    absolute_lift: Num | None
    absolute_ci_low: Num | None
    absolute_ci_high: Num | None
    relative_lift: Num | None
    relative_ci_low: Num | None
    relative_ci_high: Num | None
    incremental_conversions: Num | None
    z: Num | None
    p_value: Num | None
    confidence: Num
    insight: Annotated[str, Field(min_length=1, max_length=1000)]
    dp: jp.JoinDp | None = None


def _arms(
    exposure: jp.Side, codes: _stats.Codes, params: LiftParams, size: int
) -> tuple[_stats.Bools, _stats.Bools]:
    labels = _stats.key_array(exposure.table, params.group, input_name="exposure")
    known = codes >= 0

    def labelled(value: str) -> _stats.Bools:
        rows = np.asarray(pc.fill_null(pc.equal(labels, value), False).to_numpy(False), dtype=bool)
        return np.bincount(codes[rows & known], minlength=size) > 0

    has_t, has_c = labelled(params.test_value), labelled(params.control_value)
    # An identifier in both arms is contaminated and left out.
    return has_t & ~has_c, has_c & ~has_t


def _converted(
    conversions: jp.Side, codes: _stats.Codes, params: LiftParams, size: int
) -> _stats.Bools:
    if params.conversion is None:
        present: _stats.Bools = np.bincount(codes[codes >= 0], minlength=size) > 0
        return present
    flag = _stats.flags(conversions.table, params.conversion, input_name="conversions")
    has, best, _ = _stats.group_values(codes, flag, "max", size)
    converted: _stats.Bools = has & (best == 1.0)
    return converted


def _output(
    cells: tuple[float, float, float, float],
    interval: tuple[float, float, float, float],
    z: float,
    p: float,
    params: LiftParams,
    dp: jp.JoinDp | None,
) -> LiftOutput:
    c_t, n_t, c_c, n_c = cells[0], cells[0] + cells[1], cells[2], cells[2] + cells[3]
    p_t = c_t / n_t if n_t else math.nan
    p_c = c_c / n_c if n_c else math.nan
    diff = p_t - p_c
    rel = p_t / p_c - 1 if p_c > 0 else math.nan
    incremental = c_t - p_c * n_t
    if math.isfinite(diff):
        insight = (
            f"test converts at {100 * p_t:.2f}% vs control {100 * p_c:.2f}%: "
            f"{'+' if diff >= 0 else ''}{100 * diff:.2f} points "
            f"({_stats.p_text(p)}), about {incremental:.0f} incremental conversions"
            + (" (differentially private)" if dp is not None else "")
        )
    else:
        insight = "lift undefined: an arm is empty (differentially private)"
    return LiftOutput(
        test=Arm(n=int(n_t), conversions=int(c_t), rate=_stats.num(p_t)),
        control=Arm(n=int(n_c), conversions=int(c_c), rate=_stats.num(p_c)),
        absolute_lift=_stats.num(diff),
        absolute_ci_low=_stats.num(interval[0]),
        absolute_ci_high=_stats.num(interval[1]),
        relative_lift=_stats.num(rel),
        relative_ci_low=_stats.num(interval[2]),
        relative_ci_high=_stats.num(interval[3]),
        incremental_conversions=_stats.num(incremental),
        z=_stats.num(z),
        p_value=_stats.num(p),
        confidence=params.confidence,
        insight=insight,
        dp=dp,
    )


def _dp(
    sides: tuple[jp.Side, jp.Side],
    space: _stats.KeySpace,
    params: LiftParams,
    privacy: PrivacyContext,
    confidence: float,
) -> LiftOutput:
    assert params.dp is not None
    m = params.dp.max_keys_per_entity
    exposure, conversions = sides
    plan = jp.DpPlan(
        (jp.Stat("cells", (0, 1), categories=CELLS),),
        params=params.dp,
        privacy=privacy,
        contributions=(
            jp.contributions(exposure, m, valued=True),
            jp.contributions(conversions, m, valued=True, labels=True),
        ),
        computation="lift",
    )
    arm_t, arm_c = _arms(exposure, jp.truncate(exposure, space, m), params, space.size)
    converted = _converted(conversions, jp.truncate(conversions, space, m), params, space.size)
    labels = np.full(space.size, "", dtype=object)
    for arm, name in ((arm_t, "test"), (arm_c, "control")):
        labels[arm & converted] = f"{name} converted"
        labels[arm & ~converted] = f"{name} not converted"
    noisy = plan.release({"cells": [v for v in labels.tolist() if v]})
    t1, t0, c1, c0 = (float(max(c, 0)) for c in noisy.counts("cells"))
    reps = plan.replicates(noisy)
    r = np.maximum(reps["cells"], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_t, n_c = r[:, 0] + r[:, 1], r[:, 2] + r[:, 3]
        p_t, p_c = r[:, 0] / n_t, r[:, 2] / n_c
        se = np.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
        diff = p_t - p_c + reps.z * se
        se_log = np.sqrt(1 / r[:, 0] - 1 / n_t + 1 / r[:, 2] - 1 / n_c)
        log_rr = np.log(p_t / p_c) + reps.z * se_log
    lo, hi = jp.interval(diff, confidence)
    rlo, rhi = jp.interval(log_rr, confidence)
    interval = (lo, hi, math.expm1(rlo), math.expm1(rhi))
    p = jp.p_two_sided(diff)
    return _output((t1, t0, c1, c0), interval, math.nan, p, params, plan.info(confidence))


def run(
    inputs: Sequence[pa.Table], params: LiftParams, privacy: PrivacyContext
) -> LiftOutput | Released:
    if params.test_value == params.control_value:
        raise InvalidInput("lift: test_value and control_value must differ")
    _stats.check_use(privacy, 0, params.group, input_name="exposure", role="group column")
    if params.conversion is not None:
        _stats.check_use(
            privacy, 1, params.conversion, input_name="conversions", role="conversion column"
        )
    confidence = _stats.confidence_value(params.confidence)
    sides, space = jp.sides(
        inputs,
        privacy,
        (params.key_exposure, params.key_conversions),
        ("exposure", "conversions"),
    )
    if params.dp is not None:
        return _dp(sides, space, params, privacy, confidence)
    exposure, conversions = sides
    size = space.size
    arm_t, arm_c = _arms(exposure, exposure.codes, params, size)
    converted = _converted(conversions, conversions.codes, params, size)
    k = max(privacy.k)
    cells: list[frozenset[Hashable]] = []
    conv_cells: list[frozenset[Hashable]] = []
    for arm in (arm_t, arm_c):
        cells.append(jp.entity_set(exposure, exposure.rows_of(np.flatnonzero(arm), size)))
        for outcome in (True, False):
            keys = np.flatnonzero(arm & (converted if outcome else ~converted))
            rows = exposure.rows_of(keys, size)
            enough = len(keys) >= k and exposure.entities(rows) >= privacy.k[0]
            if outcome:
                conv_rows = conversions.rows_of(keys, size)
                enough = enough and conversions.entities(conv_rows) >= privacy.k[1]
                conv_cells.append(jp.entity_set(conversions, conv_rows))
            if not enough:
                raise PolicyDenied(
                    f"lift: every arm needs at least {k} converted and {k} non-converted "
                    "identifiers, each with k distinct entities of the exposure input and the "
                    "converted ones with k of the conversions input",
                    rule="k-threshold",
                )
            cells.append(jp.entity_set(exposure, rows))
    n_t, n_c = int(np.count_nonzero(arm_t)), int(np.count_nonzero(arm_c))
    c_t = int(np.count_nonzero(arm_t & converted))
    c_c = int(np.count_nonzero(arm_c & converted))
    p_t, p_c = c_t / n_t, c_c / n_c
    diff = p_t - p_c
    zq = float(stats.norm.ppf((1 + confidence) / 2))
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    pooled = (c_t + c_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = diff / se0 if se0 > 0 else math.nan
    p = float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan
    rel_lo = rel_hi = math.nan
    if c_t > 0 and c_c > 0:
        se_log = math.sqrt(1 / c_t - 1 / n_t + 1 / c_c - 1 / n_c)
        log_rr = math.log(p_t / p_c)
        rel_lo = math.exp(log_rr - zq * se_log) - 1
        rel_hi = math.exp(log_rr + zq * se_log) - 1
    out = _output(
        (c_t, n_t - c_t, c_c, n_c - c_c),
        (diff - zq * se, diff + zq * se, rel_lo, rel_hi),
        z,
        p,
        params,
        None,
    )
    return Released(out, Footprint(cells=(tuple(cells), tuple(conv_cells))))


def _columns(params: LiftParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (
        ColumnUse(params.key_exposure, "key", "key_exposure", 0),
        ColumnUse(params.group, "key", "group", 0),
        ColumnUse(params.key_conversions, "key", "key_conversions", 1),
        *(
            ()
            if params.conversion is None
            else (ColumnUse(params.conversion, "numeric", "conversion", 1),)
        ),
    )


COMPUTATION = Computation(
    id="lift",
    version="2.2.0",
    summary=(
        "Conversion rates of a test and a control arm (exposure from one party, conversions "
        "from another, joined on id): absolute and relative lift with intervals and p-value; "
        "DP, or exact from a pinned shape with k on both parties."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("exposure", "conversions"),
    params=LiftParams,
    output=LiftOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _stats, jp),
    cost_fn=jp.cost,
    isolating=(
        "key_exposure",
        "key_conversions",
        "group",
        "test_value",
        "control_value",
        "conversion",
    ),
    selectors=True,
)
