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
from collections.abc import Hashable, Sequence
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, Field
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
    ids = _stats.keys(exposure, params.key_exposure, input_name="exposure")
    labels = _stats.keys(exposure, params.group, input_name="exposure")
    ents = _stats.entities(exposure, privacy, 0, input_name="exposure")
    arms: dict[str, set[str]] = {}
    for key, label in zip(ids, labels, strict=True):
        if key is not None and label in (params.test_value, params.control_value):
            arms.setdefault(key, set()).add(label)
    arm_of = {key: next(iter(a)) for key, a in arms.items() if len(a) == 1}
    conv_ids = _stats.keys(conversions, params.key_conversions, input_name="conversions")
    if params.conversion is None:
        converted = {k for k in conv_ids if k is not None}
    else:
        flag = _stats.flags(conversions, params.conversion, input_name="conversions")
        best, _ = _stats.per_key(conv_ids, flag, "max")
        converted = {k for k, v in best.items() if v == 1.0}
    cells: dict[tuple[str, bool], set[Hashable]] = {
        (arm, c): set() for arm in (params.test_value, params.control_value) for c in (True, False)
    }
    for key, ent in zip(ids, ents, strict=True):
        if key is not None and key in arm_of and ent is not None:
            cells[(arm_of[key], key in converted)].add(ent)
    k = max(privacy.k)
    if any(len(members) < k for members in cells.values()):
        raise PolicyDenied(
            f"lift: every arm needs at least {k} distinct converted and {k} non-converted entities"
        )
    n_t = sum(1 for a in arm_of.values() if a == params.test_value)
    n_c = len(arm_of) - n_t
    c_t = sum(1 for key, a in arm_of.items() if a == params.test_value and key in converted)
    c_c = sum(1 for key, a in arm_of.items() if a == params.control_value and key in converted)
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


def _run(inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext) -> LiftOutput:
    if not isinstance(params, LiftParams):
        raise InvalidInput("lift needs LiftParams (use Computation.parse_params)")
    return run(inputs, params, privacy)


COMPUTATION = Computation(
    id="lift",
    version="1.0.0",
    summary=(
        "Conversion rates of a test and a control arm (exposure from one party, conversions "
        "from another, joined on id): absolute and relative lift with intervals, z-test p-value."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("exposure", "conversions"),
    params=LiftParams,
    output=LiftOutput,
    run_fn=_run,
    modules=(sys.modules[__name__], _stats),
)
