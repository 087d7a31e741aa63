"""lift: what a campaign caused: exposure (test/control) from one party, conversions from another.

Privacy contract (class ``aggregate``, released to every party): per arm the
number of exposed identifiers, conversions and conversion rate; the absolute
lift with a Wald confidence interval, the relative lift with a log
risk-ratio (Katz) interval, the z statistic and p-value, and the estimated
incremental conversions. Nothing per identifier leaves. The run is refused
(:class:`PolicyDenied`) unless each of the four cells (arm x converted or not)
holds at least K = max(k_exposure, k_conversions) distinct entities of the
exposure input (``PrivacyContext.entity_columns``; rows when none is declared):
a cell below K, and in particular an arm where everyone or no one converted,
would tell the exposure owner the conversion of each of its few identifiers.
The identifier columns may be ``join_only`` / ``never_output``; the group and
conversion columns may not. No DP noise.

Method: an identifier is in an arm when its exposure rows carry ``test_value``
(or ``control_value``) in ``group``; an identifier in both arms is contaminated
and left out; other labels are ignored. It converted when it appears in the
conversions input (``conversion`` null) or when any of its rows there has a
true ``conversion`` flag (bool, 0/1, "true"/"false", "yes"/"no"; unusable cells
are absent rows). Rates p = conversions / n; absolute lift = p_t - p_c;
relative lift = p_t / p_c - 1; the test is the pooled two-proportion z-test,
two-sided (as statsmodels' ``proportions_ztest``); incremental conversions =
conversions_t - p_c * n_t. Numbers: decimal strings of 12 significant digits
(:mod:`sealroom.computations._stats`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field
from scipy import stats

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput, PolicyDenied

__all__ = ["COMPUTATION", "Arm", "LiftOutput", "LiftParams", "run"]

Label = Annotated[str, Field(min_length=1, max_length=200)]


class LiftParams(ParamsModel):
    key_exposure: ColumnName = "id"
    key_conversions: ColumnName = "id"
    group: ColumnName = "group"
    test_value: Label = "test"
    control_value: Label = "control"
    conversion: ColumnName | None = None
    confidence: Confidence = "0.95"


class Arm(Model):
    n: Annotated[int, Field(ge=0)]
    conversions: Annotated[int, Field(ge=0)]
    rate: Num


class LiftOutput(Model):
    test: Arm
    control: Arm
    absolute_lift: Num
    absolute_ci_low: Num | None
    absolute_ci_high: Num | None
    relative_lift: Num | None
    relative_ci_low: Num | None
    relative_ci_high: Num | None
    incremental_conversions: Num
    z: Num | None
    p_value: Num | None
    confidence: Num
    insight: Annotated[str, Field(min_length=1, max_length=1000)]


def run(inputs: Sequence[pa.Table], params: LiftParams, privacy: PrivacyContext) -> LiftOutput:
    exposure, conversions = inputs
    if params.test_value == params.control_value:
        raise InvalidInput("lift: test_value and control_value must differ")
    _stats.check_use(privacy, 0, params.group, input_name="exposure", role="group column")
    if params.conversion is not None:
        _stats.check_use(
            privacy, 1, params.conversion, input_name="conversions", role="conversion column"
        )
    confidence = _stats.confidence_value(params.confidence)
    (ids, conv_ids), space = _stats.encode_keys(
        [
            (exposure, params.key_exposure, "exposure"),
            (conversions, params.key_conversions, "conversions"),
        ]
    )
    size = space.size
    labels = _stats.key_array(exposure, params.group, input_name="exposure")
    ents = _stats.entity_codes(
        exposure, privacy, 0, input_name="exposure", key=(params.key_exposure, ids)
    )
    known = ids >= 0

    def labelled(value: str) -> _stats.Bools:
        rows = np.asarray(pc.fill_null(pc.equal(labels, value), False).to_numpy(False), dtype=bool)
        return np.bincount(ids[rows & known], minlength=size) > 0

    has_t, has_c = labelled(params.test_value), labelled(params.control_value)
    # An identifier in both arms is contaminated and left out.
    arm_t, arm_c = has_t & ~has_c, has_c & ~has_t
    if params.conversion is None:
        converted = np.bincount(conv_ids[conv_ids >= 0], minlength=size) > 0
    else:
        flag = _stats.flags(conversions, params.conversion, input_name="conversions")
        has, best, _ = _stats.group_values(conv_ids, flag, "max", size)
        converted = has & (best == 1.0)
    safe = np.where(known, ids, 0)
    rows_ok = known & (ents >= 0)
    conv_row = converted[safe]
    k = max(privacy.k)
    for arm in (arm_t, arm_c):
        in_arm = rows_ok & arm[safe]
        for cell in (in_arm & conv_row, in_arm & ~conv_row):
            if _stats.count_distinct(ents[cell]) < k:
                raise PolicyDenied(
                    f"lift: every arm needs at least {k} distinct converted and {k} "
                    "non-converted entities"
                )
    n_t = int(np.count_nonzero(arm_t))
    n_c = int(np.count_nonzero(arm_c))
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
    rel = p_t / p_c - 1 if p_c > 0 else math.nan
    rel_lo = rel_hi = math.nan
    if c_t > 0 and c_c > 0:
        se_log = math.sqrt(1 / c_t - 1 / n_t + 1 / c_c - 1 / n_c)
        log_rr = math.log(p_t / p_c)
        rel_lo = math.exp(log_rr - zq * se_log) - 1
        rel_hi = math.exp(log_rr + zq * se_log) - 1
    incremental = c_t - p_c * n_t
    return LiftOutput(
        test=Arm(n=n_t, conversions=c_t, rate=_stats.num(p_t) or "0"),
        control=Arm(n=n_c, conversions=c_c, rate=_stats.num(p_c) or "0"),
        absolute_lift=_stats.num(diff) or "0",
        absolute_ci_low=_stats.num(diff - zq * se),
        absolute_ci_high=_stats.num(diff + zq * se),
        relative_lift=_stats.num(rel),
        relative_ci_low=_stats.num(rel_lo),
        relative_ci_high=_stats.num(rel_hi),
        incremental_conversions=_stats.num(incremental) or "0",
        z=_stats.num(z),
        p_value=_stats.num(p),
        confidence=params.confidence,
        insight=(
            f"test converts at {100 * p_t:.2f}% vs control {100 * p_c:.2f}%: "
            f"{'+' if diff >= 0 else ''}{100 * diff:.2f} points "
            f"({_stats.p_text(p)}), about {incremental:.0f} incremental conversions"
        ),
    )


COMPUTATION = Computation(
    id="lift",
    version="1.1.0",
    summary=(
        "Conversion rates of a test and a control arm (exposure from one party, conversions "
        "from another, joined on id): absolute and relative lift with intervals, z-test p-value."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("exposure", "conversions"),
    params=LiftParams,
    output=LiftOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats),
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
