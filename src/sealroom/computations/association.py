"""association-test: does a signal in one dataset predict an outcome in another (joined on id)?

Privacy contract (class ``aggregate``, released to every party): n, one effect
size with a confidence interval, one test statistic and its p-value, whether it
is significant at ``alpha``, and a point-biserial / Pearson correlation. No
cell count, group mean or per-identifier value leaves. The run is refused
(:class:`PolicyDenied`) unless the joined identifiers' rows hold at least
``k`` distinct entities of each input (``PrivacyContext.entity_columns``; rows
when none is declared) and every class of a binary variable (both 2x2 cells of
each class when both are binary) holds at least K = max(k) joined identifiers:
a near-empty class could tell the signal owner the outcome of a few known
identifiers. Identifier columns may be ``join_only`` / ``never_output``; the
signal and outcome columns may not. No DP noise.

Method: the signal per identifier is ``signal_agg`` of its rows (``count``
needs no column: e.g. support-ticket volume); a binary signal or outcome is
true when any of its rows is (flags: bool, 0/1, "true"/"false", "yes"/"no");
a numeric outcome is the mean of its rows. With ``fill_missing_signal`` an
identifier of the outcome input without signal rows gets signal 0 (count or sum
only: "no tickets"). The types are declared, never inferred, so one row cannot
change the method. Tests by types (signal x outcome):

* binary x binary: odds ratio with Woolf (log) interval (null with an empty
  cell); Pearson chi-square without continuity correction (scipy
  ``chi2_contingency(correction=False)``); correlation = phi.
* binary x numeric, numeric x binary: standardized mean difference (Cohen's d,
  pooled SD; group "true" minus "false") of the numeric variable between the
  binary classes, with the large-sample interval
  d +- z * sqrt((n1+n0)/(n1 n0) + d^2 / (2 (n1+n0))); Welch's t-test; the
  correlation is point-biserial.
* numeric x numeric: Pearson r with Fisher-z interval and its t-test.

Unusable cells are absent rows; numbers are decimal strings of 12 significant
digits (:mod:`sealroom.computations._stats`).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field
from scipy import stats

from sealroom.computations import _stats
from sealroom.computations._stats import Agg, ColumnName, Confidence, Model, Num, ParamsModel, Rate
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput, PolicyDenied

__all__ = ["COMPUTATION", "AssociationOutput", "AssociationParams", "Effect", "run"]

Kind = Literal["binary", "numeric"]
StatName = Literal["chi2", "welch_t", "t"]


class AssociationParams(ParamsModel):
    key_signal: ColumnName = "id"
    key_outcome: ColumnName = "id"
    signal: ColumnName | None = None
    signal_type: Kind = "numeric"
    signal_agg: Agg = "mean"
    fill_missing_signal: bool = False
    outcome: ColumnName
    outcome_type: Kind = "binary"
    alpha: Rate = "0.05"
    confidence: Confidence = "0.95"


class Effect(Model):
    name: Literal["odds_ratio", "standardized_mean_difference", "pearson_r"]
    estimate: Num | None
    ci_low: Num | None
    ci_high: Num | None


class AssociationOutput(Model):
    method: str
    n: Annotated[int, Field(ge=0)]
    effect: Effect
    statistic_name: StatName
    statistic: Num | None
    p_value: Num | None
    significant: bool | None
    correlation: Num | None
    alpha: Num
    confidence: Num
    insight: Annotated[str, Field(min_length=1, max_length=1000)]


def _smd(
    values: np.ndarray, classes: np.ndarray, zq: float
) -> tuple[float, float, float, float, float]:
    """(d, ci_low, ci_high, welch t, p) of ``values`` between class 1 and class 0."""
    g1, g0 = values[classes == 1.0], values[classes == 0.0]
    n1, n0 = len(g1), len(g0)
    pooled = math.sqrt(
        ((n1 - 1) * np.var(g1, ddof=1) + (n0 - 1) * np.var(g0, ddof=1)) / (n1 + n0 - 2)
    )
    d = (float(np.mean(g1)) - float(np.mean(g0))) / pooled if pooled > 0 else math.nan
    se = math.sqrt((n1 + n0) / (n1 * n0) + d * d / (2 * (n1 + n0))) if math.isfinite(d) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.ttest_ind(g1, g0, equal_var=False)
    return d, d - zq * se, d + zq * se, float(res.statistic), float(res.pvalue)


def run(
    inputs: Sequence[pa.Table], params: AssociationParams, privacy: PrivacyContext
) -> AssociationOutput:
    sig_t, out_t = inputs
    if params.signal is None and params.signal_agg != "count":
        raise InvalidInput("association-test: signal is required unless signal_agg is count")
    if params.fill_missing_signal and params.signal_agg not in ("count", "sum"):
        raise InvalidInput("association-test: fill_missing_signal needs signal_agg count or sum")
    if params.signal is not None:
        _stats.check_use(privacy, 0, params.signal, input_name="signal", role="signal")
    _stats.check_use(privacy, 1, params.outcome, input_name="outcome", role="outcome")
    confidence = _stats.confidence_value(params.confidence)
    alpha = _stats.parse_num(params.alpha, what="alpha")
    zq = float(stats.norm.ppf((1 + confidence) / 2))
    (sig_codes, out_codes), space = _stats.encode_keys(
        [(sig_t, params.key_signal, "signal"), (out_t, params.key_outcome, "outcome")]
    )
    size = space.size
    if params.signal_type == "binary":
        assert params.signal is not None or params.signal_agg == "count"
        if params.signal is None:
            raise InvalidInput("association-test: a binary signal needs a signal column")
        has_s, sv, s_used = _stats.group_values(
            sig_codes, _stats.flags(sig_t, params.signal, input_name="signal"), "max", size
        )
    else:
        raw = None
        if params.signal_agg != "count":
            assert params.signal is not None
            raw = _stats.numbers(sig_t, params.signal, input_name="signal")
        has_s, sv, s_used = _stats.group_values(sig_codes, raw, params.signal_agg, size)
    if params.outcome_type == "binary":
        oraw = _stats.flags(out_t, params.outcome, input_name="outcome")
        has_o, ov, o_used = _stats.group_values(out_codes, oraw, "max", size)
    else:
        oraw = _stats.numbers(out_t, params.outcome, input_name="outcome")
        has_o, ov, o_used = _stats.group_values(out_codes, oraw, "mean", size)
    if params.fill_missing_signal:
        missing = has_o & ~has_s
        sv = np.where(missing, 0.0, sv)
        has_s = has_s | missing
    joined = space.in_str_order(np.flatnonzero(has_s & has_o))
    for index, (name, table, key, codes, used) in enumerate(
        (
            ("signal", sig_t, params.key_signal, sig_codes, s_used),
            ("outcome", out_t, params.key_outcome, out_codes, o_used),
        )
    ):
        ents = _stats.entity_codes(table, privacy, index, input_name=name, key=(key, codes))
        if ents is codes and not params.fill_missing_signal:
            # The entity is the identifier and every joined identifier has a used row
            # on both sides, so the distinct entities are the joined identifiers.
            n_ent = len(joined)
        else:
            n_ent = _stats.count_distinct(ents[used & _stats.member(codes, joined, size)])
        if n_ent < privacy.k[index]:
            raise PolicyDenied(
                f"association-test: the joined rows of input {name!r} hold fewer than its "
                f"threshold of {privacy.k[index]} distinct entities"
            )
    x = sv[joined]
    y = ov[joined]
    n = len(joined)
    k = max(privacy.k)
    binary = [
        a for a, kind in ((x, params.signal_type), (y, params.outcome_type)) if kind == "binary"
    ]
    if len(binary) == 2:
        classes = [int(np.sum((x == a) & (y == b))) for a in (1.0, 0.0) for b in (1.0, 0.0)]
    else:
        classes = [int(np.sum(v == c)) for v in binary for c in (1.0, 0.0)]
    if n < k or any(c < k for c in classes):
        raise PolicyDenied(
            f"association-test: every class (and 2x2 cell) needs at least {k} joined identifiers"
        )
    corr = math.nan
    stat_name: StatName
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        corr = float(np.corrcoef(x, y)[0, 1])
    if len(binary) == 2:
        a, b, c, d = classes  # (s1,o1), (s1,o0), (s0,o1), (s0,o0)
        odds = (a * d) / (b * c)
        half = zq * math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        chi2, p, _, _ = stats.chi2_contingency(np.array([[a, b], [c, d]]), correction=False)
        effect = Effect(
            name="odds_ratio",
            estimate=_stats.num(odds),
            ci_low=_stats.num(math.exp(math.log(odds) - half)),
            ci_high=_stats.num(math.exp(math.log(odds) + half)),
        )
        method, stat_name, stat = "chi-square test of a 2x2 table", "chi2", float(chi2)
    elif len(binary) == 1:
        if params.signal_type == "binary":
            d_, lo, hi, stat, p = _smd(y, x, zq)
            method = "Welch t-test of the outcome between signal classes"
        else:
            d_, lo, hi, stat, p = _smd(x, y, zq)
            method = "Welch t-test of the signal between outcome classes"
        effect = Effect(
            name="standardized_mean_difference",
            estimate=_stats.num(d_),
            ci_low=_stats.num(lo if math.isfinite(d_) else math.nan),
            ci_high=_stats.num(hi if math.isfinite(d_) else math.nan),
        )
        stat_name = "welch_t"
    else:
        lo, hi = _stats.fisher_ci(corr, n, confidence)
        stat = p = math.nan
        if math.isfinite(corr) and abs(corr) < 1:
            stat = corr * math.sqrt((n - 2) / (1 - corr * corr))
            p = float(2 * stats.t.sf(abs(stat), n - 2))
        effect = Effect(
            name="pearson_r",
            estimate=_stats.num(corr),
            ci_low=_stats.num(lo),
            ci_high=_stats.num(hi),
        )
        method, stat_name = "Pearson correlation t-test", "t"
    significant = bool(p < alpha) if math.isfinite(p) else None
    verdict = (
        "undetermined"
        if significant is None
        else ("predicts" if significant else "shows no significant association with")
    )
    return AssociationOutput(
        method=method,
        n=n,
        effect=effect,
        statistic_name=stat_name,
        statistic=_stats.num(stat),
        p_value=_stats.num(p),
        significant=significant,
        correlation=_stats.num(corr),
        alpha=params.alpha,
        confidence=params.confidence,
        insight=(
            f"the signal {verdict} the outcome ({effect.name.replace('_', ' ')} "
            f"{effect.estimate}, {_stats.p_text(p)}, n = {n})"
        ),
    )


COMPUTATION = Computation(
    id="association-test",
    version="1.1.0",
    summary=(
        "Whether a signal in one dataset predicts an outcome in another (joined on id): effect "
        "size (odds ratio, standardized mean difference or r) with interval and significance."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("signal", "outcome"),
    params=AssociationParams,
    output=AssociationOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats),
    isolating=(
        "key_signal",
        "key_outcome",
        "signal",
        "signal_type",
        "signal_agg",
        "fill_missing_signal",
        "outcome",
        "outcome_type",
    ),
    selectors=True,
)
