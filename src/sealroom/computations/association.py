"""association-test: does a signal in one dataset predict an outcome in another (joined on id)?

Privacy contract (class ``aggregate``, released to every party; the adversary of
docs/privacy.md holds either input, every parameter and any number of
identities). What leaves: n, one effect size with a confidence interval, a
p-value, whether it is significant at ``alpha``, a point-biserial / Pearson
correlation, and in exact mode the test statistic. No cell count, group mean or
per-identifier value leaves. Identifier columns may be ``join_only`` /
``never_output``; the signal and outcome columns may not.

Method: the signal per identifier is ``signal_agg`` of its rows (``count``
needs no column: e.g. support-ticket volume); a binary signal or outcome is
true when any of its rows is (flags: bool, 0/1, "true"/"false", "yes"/"no");
a numeric outcome is the mean of its rows. With ``fill_missing_signal`` an
identifier of the outcome input without signal rows gets signal 0 (count or sum
only: "no tickets"). A numeric variable is clipped to its public bounds
(``signal_bounds`` / ``outcome_bounds``, required for a numeric variable in both
modes). The types are declared, never inferred, so one row cannot change the
method. Tests by types (signal x outcome): binary x binary, an odds ratio with
Woolf (log) interval and Pearson's chi-square without continuity correction
(correlation = phi); binary x numeric either way, the standardized mean
difference (Cohen's d, pooled SD; class "true" minus "false") of the numeric
variable between the binary classes with the large-sample interval
d +- z sqrt((n1+n0)/(n1 n0) + d^2 / (2 (n1+n0))) and Welch's t-test
(correlation point-biserial); numeric x numeric, Pearson r with Fisher-z
interval and its t-test.

DP mode (``dp``; the default policies require it): OpenDP measurements of the
sufficient statistics of the joined keys, with epsilon split evenly over them
(:mod:`sealroom.computations._join_privacy`): binary x binary, the four cell
counts (one count by categories, discrete Laplace); binary x numeric, the two
class sizes (one count by categories) and per class the sums of the centred
numeric value and of its square (four clamp + sums, Laplace): epsilon / 5 each;
numeric x numeric, n and the sums of x, y, x^2, y^2, xy: epsilon / 6 each. d_in
per input, with m the keys one entity may hold (1 when the entity column is the
key or rows are the entities, else ``dp.max_keys_per_entity``, enforced by
truncation): 1 when its entity column is the key, else 2m; 2m on the signal
side with ``fill_missing_signal`` (a key's absence there is the value 0). The effect,
correlation, interval, p-value and ``significant`` are post-processing (a
bootstrap of the noise and the sampling error); the statistic is null; n is
the noisy size of the join. No exact count leaves.

Exact mode (no ``dp``; only the owner-pinned columns, types, aggregation and
bounds, with pinned partner data): refused (``k-threshold``) unless the joined
identifiers' rows hold at least ``k_i`` distinct entities of EACH input i and
every class of a binary variable (every 2x2 cell when both are binary) holds
at least K = max(k) identifiers and ``k_i`` distinct entities of each input; a
numeric variable is clipped to its pinned bounds, then top- and bottom-coded
so that each extreme level is shared by k entities of the other input
(``influence-bound`` when too few): a signal planted with one extreme value
on a target becomes one of k equal values and no longer marks the target's
outcome class. The footprint (per input, the entities behind the join and
each class or cell) goes to the enclave's difference checks.

Residual leakage: DP, epsilon per input per run. Exact: classes of at least k
entities per side and coded extremes; an attacker who knows the outcomes of
k-1 entities it marks together with a target learns about the target only
from data the owner pinned, and only once (difference checks).

Numbers: decimal strings of 12 significant digits; unusable cells are absent
rows (:mod:`sealroom.computations._stats`).

Utility at epsilon 1, entity = id, over 200 runs, on statsmodels' ``fair`` (ids
1000..3998 even, 1500 joined): r of yrs_married [0, 25] and rate_marriage
[1, 5] (-0.166) is off by 0.027 (median) and 0.11 (95th percentile); the
standardized mean difference of yrs_married between women with and without an
affair (0.525) by 0.033 and 0.11; the odds ratio of children x affair (2.91) by
0.019 and 0.083. On ``spector`` (32 students) the DP test is undefined in 72% of
runs (a noisy class variance below 0): small studies need an exact pinned
release, where the k = 3 coding of GPA moves the effect from 1.17 to 1.30.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Hashable, Sequence
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import Field, model_validator
from scipy import stats

from sealroom.computations import _join_privacy as jp
from sealroom.computations import _stats
from sealroom.computations._stats import Agg, ColumnName, Confidence, Model, Num, ParamsModel, Rate
from sealroom.computations.base import (
    Computation,
    Footprint,
    PrivacyContext,
    Released,
)
from sealroom.computations.column_uses import ColumnUse
from sealroom.errors import InvalidInput, PolicyDenied

__all__ = ["COMPUTATION", "AssociationOutput", "AssociationParams", "Effect", "run"]

Kind = Literal["binary", "numeric"]
StatName = Literal["chi2", "welch_t", "t"]
EffectName = Literal["odds_ratio", "standardized_mean_difference", "pearson_r"]
CELLS = ("signal 1 outcome 1", "signal 1 outcome 0", "signal 0 outcome 1", "signal 0 outcome 0")


class AssociationParams(ParamsModel):
    key_signal: ColumnName = "id"
    """Identifier column of the signal input (the join key)."""
    key_outcome: ColumnName = "id"
    """Identifier column of the outcome input (the join key)."""
    signal: ColumnName | None = None
    """Signal column; none with signal_agg 'count' (rows per identifier)."""
    signal_type: Kind = "numeric"
    """How the signal is tested: numeric or binary."""
    signal_agg: Agg = "mean"
    """How an identifier's signal rows are combined into one value."""
    signal_bounds: jp.Bounds | None = None
    """Public [lower, upper] of a numeric signal, as decimal strings (values are clamped)."""
    fill_missing_signal: bool = False
    """An outcome identifier without signal rows gets signal 0 (count or sum)."""
    outcome: ColumnName
    """Outcome column of the outcome input."""
    outcome_type: Kind = "binary"
    """How the outcome is tested: numeric or binary."""
    outcome_bounds: jp.Bounds | None = None
    """Public [lower, upper] of a numeric outcome, as decimal strings."""
    alpha: Rate = "0.05"
    """Significance level of the test, a decimal strictly between 0 and 1."""
    confidence: Confidence = "0.95"
    """Confidence level of the effect's interval, a decimal strictly between 0 and 1."""
    dp: jp.JoinDpParams | None = None
    """Differential privacy: epsilon and max_keys_per_entity (how many keys one entity may
    contribute); the policy's DP budget is charged."""

    @model_validator(mode="after")
    def _bounds_for_numeric(self) -> AssociationParams:
        for name, kind, bounds in (
            ("signal", self.signal_type, self.signal_bounds),
            ("outcome", self.outcome_type, self.outcome_bounds),
        ):
            if (kind == "numeric") != (bounds is not None):
                raise ValueError(f"{name}_bounds is required for a numeric {name} and only for one")
        return self


class Effect(Model):
    name: EffectName
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
    dp: jp.JoinDp | None = None


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


def _method(params: AssociationParams) -> tuple[str, StatName, EffectName]:
    binary = (params.signal_type == "binary", params.outcome_type == "binary")
    if all(binary):
        return "chi-square test of a 2x2 table", "chi2", "odds_ratio"
    if not any(binary):
        return "Pearson correlation t-test", "t", "pearson_r"
    which = (
        "the outcome between signal classes" if binary[0] else "the signal between outcome classes"
    )
    return f"Welch t-test of {which}", "welch_t", "standardized_mean_difference"


def _per_key(
    sides: tuple[jp.Side, jp.Side],
    codes: tuple[_stats.Codes, _stats.Codes],
    params: AssociationParams,
    size: int,
) -> tuple[_stats.Codes, _stats.Floats, _stats.Floats, tuple[_stats.Bools, _stats.Bools]]:
    """Joined keys (str order), signal and outcome per key, and the rows used per side."""
    sig, out = sides
    if params.signal_type == "binary":
        if params.signal is None:
            raise InvalidInput("association-test: a binary signal needs a signal column")
        raw = _stats.flags(sig.table, params.signal, input_name="signal")
        has_s, sv, s_used = _stats.group_values(codes[0], raw, "max", size)
    else:
        raw = None
        if params.signal_agg != "count":
            assert params.signal is not None
            raw = _stats.numbers(sig.table, params.signal, input_name="signal")
        has_s, sv, s_used = _stats.group_values(codes[0], raw, params.signal_agg, size)
    if params.outcome_type == "binary":
        oraw = _stats.flags(out.table, params.outcome, input_name="outcome")
        has_o, ov, o_used = _stats.group_values(codes[1], oraw, "max", size)
    else:
        oraw = _stats.numbers(out.table, params.outcome, input_name="outcome")
        has_o, ov, o_used = _stats.group_values(codes[1], oraw, "mean", size)
    if params.fill_missing_signal:
        missing = has_o & ~has_s
        sv = np.where(missing, 0.0, sv)
        has_s = has_s | missing
    joined = np.flatnonzero(has_s & has_o)
    return joined, sv, ov, (s_used, o_used)


def _verdict(p: float, alpha: float) -> bool | None:
    return bool(p < alpha) if math.isfinite(p) else None


def _finish(
    params: AssociationParams,
    n: int,
    effect: Effect,
    statistic: float,
    p: float,
    corr: float,
    dp: jp.JoinDp | None,
) -> AssociationOutput:
    method, stat_name, _ = _method(params)
    alpha = _stats.parse_num(params.alpha, what="alpha")
    significant = _verdict(p, alpha)
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
        statistic=_stats.num(statistic),
        p_value=_stats.num(p),
        significant=significant,
        correlation=_stats.num(corr),
        alpha=params.alpha,
        confidence=params.confidence,
        insight=_insight(verdict, effect, p, n, dp),
        dp=dp,
    )


def _insight(verdict: str, effect: Effect, p: float, n: int, dp: jp.JoinDp | None) -> str:
    """One sentence; a DP release says so first, with its epsilon and contribution bound,
    and that its figures (n included) come from noisy statistics."""
    figures = f"{effect.name.replace('_', ' ')} {effect.estimate}, {_stats.p_text(p)}"
    if dp is None:
        return f"the signal {verdict} the outcome ({figures}, n = {n})"
    return (
        f"differentially private release (epsilon {dp.epsilon} per entity of each input, at "
        f"most {dp.max_keys_per_entity} key(s) per entity): the signal {verdict} the outcome "
        f"({figures}, n ~ {n}; every figure is computed from noisy statistics)"
    )


def _bounds(params: AssociationParams) -> tuple[tuple[float, float] | None, ...]:
    return tuple(
        None if b is None else jp.bounds_of(b, what=f"{name}_bounds")
        for name, b in (("signal", params.signal_bounds), ("outcome", params.outcome_bounds))
    )


# (estimate, interval low, high, p-value, correlation, n) of a DP release.
DpResult = tuple[float, float, float, float, float, int]


def _dp_cells(plan: jp.DpPlan, x: _stats.Floats, y: _stats.Floats, confidence: float) -> DpResult:
    """binary x binary: the odds ratio of the four noisy cells."""
    labels = [f"signal {int(s)} outcome {int(o)}" for s, o in zip(x, y, strict=True)]
    noisy = plan.release({"cells": labels})
    a, b, c, d = (float(max(v, 0)) for v in noisy.counts("cells"))
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    odds = (a * d) / (b * c) if b * c > 0 else math.nan
    corr = (a * d - b * c) / math.sqrt(margins) if margins > 0 else math.nan
    reps = plan.replicates(noisy)
    r = np.maximum(reps["cells"], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_or = np.log(r[:, 0] * r[:, 3] / (r[:, 1] * r[:, 2]))
        draws = log_or + reps.z * np.sqrt(np.sum(1 / r, axis=1))
    lo, hi = jp.interval(draws, confidence)
    return odds, math.exp(lo), math.exp(hi), jp.p_two_sided(draws), corr, int(a + b + c + d)


def _smd_of_sums(
    n1: npt.ArrayLike,
    n0: npt.ArrayLike,
    s1: npt.ArrayLike,
    s0: npt.ArrayLike,
    q1: npt.ArrayLike,
    q0: npt.ArrayLike,
) -> tuple[_stats.Floats, _stats.Floats, _stats.Floats]:
    """Cohen's d, its standard error and the point-biserial r from class sizes and the
    classes' sums and sums of squares (of values centred anywhere), element-wise."""
    n1, n0, s1, s0, q1, q0 = (np.asarray(v, dtype=np.float64) for v in (n1, n0, s1, s0, q1, q0))
    with np.errstate(divide="ignore", invalid="ignore"):
        m1, m0 = s1 / n1, s0 / n0
        var = (q1 - n1 * m1 * m1 + q0 - n0 * m0 * m0) / (n1 + n0 - 2)
        ok = (n1 >= 2) & (n0 >= 2) & (var > 0)
        d = np.where(ok, (m1 - m0) / np.sqrt(var), np.nan)
        se = np.sqrt((n1 + n0) / (n1 * n0) + d * d / (2 * (n1 + n0)))
        total = n1 + n0
        var_n = (q1 + q0) / total - ((s1 + s0) / total) ** 2
        r = np.where(
            ok & (var_n > 0), (m1 - m0) * np.sqrt(n1 * n0) / total / np.sqrt(var_n), np.nan
        )
    return d, se, np.clip(r, -1.0, 1.0)


def _dp_classes(
    plan: jp.DpPlan,
    classes: _stats.Floats,
    values: _stats.Floats,
    bounds: tuple[float, float],
    confidence: float,
) -> DpResult:
    """binary x numeric: the standardized mean difference from noisy class sums."""
    v = np.clip(values, *bounds) - (bounds[0] + bounds[1]) / 2
    one = classes == 1.0
    noisy = plan.release(
        {
            "classes": ["1" if c else "0" for c in one],
            "s1": np.where(one, v, 0.0),
            "s0": np.where(one, 0.0, v),
            "q1": np.where(one, v * v, 0.0),
            "q0": np.where(one, 0.0, v * v),
        }
    )
    n1, n0 = (float(max(c, 0)) for c in noisy.counts("classes"))
    d, _, r = _smd_of_sums(n1, n0, *(noisy.sum(name) for name in ("s1", "s0", "q1", "q0")))
    reps = plan.replicates(noisy)
    cls = np.maximum(reps["classes"], 0.0)
    d_r, se_r, _ = _smd_of_sums(
        cls[:, 0], cls[:, 1], reps["s1"], reps["s0"], reps["q1"], reps["q0"]
    )
    draws = d_r + reps.z * se_r
    lo, hi = jp.interval(draws, confidence)
    return float(d), lo, hi, jp.p_two_sided(draws), float(r), int(n1 + n0)


def _dp(
    sides: tuple[jp.Side, jp.Side],
    space: _stats.KeySpace,
    params: AssociationParams,
    privacy: PrivacyContext,
    confidence: float,
) -> AssociationOutput:
    assert params.dp is not None
    m = params.dp.max_keys_per_entity
    contributions = (
        jp.contributions(sides[0], m, valued=True, labels=params.fill_missing_signal),
        jp.contributions(sides[1], m, valued=True),
    )
    codes = (jp.truncate(sides[0], space, m), jp.truncate(sides[1], space, m))
    joined, sv, ov, _ = _per_key(sides, codes, params, space.size)
    x, y = sv[joined], ov[joined]
    b_sig, b_out = _bounds(params)
    _, _, effect_name = _method(params)
    both = (0, 1)

    def plan(stats: Sequence[jp.Stat]) -> jp.DpPlan:
        assert params.dp is not None
        return jp.DpPlan(
            stats,
            params=params.dp,
            privacy=privacy,
            contributions=contributions,
            computation="association-test",
        )

    if effect_name == "odds_ratio":
        built = plan((jp.Stat("cells", both, categories=CELLS),))
        result = _dp_cells(built, x, y, confidence)
    elif effect_name == "standardized_mean_difference":
        classes, values, bounds = (x, y, b_out) if params.signal_type == "binary" else (y, x, b_sig)
        assert bounds is not None
        half = (bounds[1] - bounds[0]) / 2
        built = plan(
            (
                jp.Stat("classes", both, categories=("1", "0")),
                jp.Stat("s1", both, bounds=(-half, half)),
                jp.Stat("s0", both, bounds=(-half, half)),
                jp.Stat("q1", both, bounds=(0.0, half * half)),
                jp.Stat("q0", both, bounds=(0.0, half * half)),
            )
        )
        result = _dp_classes(built, classes, values, bounds, confidence)
    else:
        assert b_sig is not None
        assert b_out is not None
        built = plan(jp.moment_stats(b_sig, b_out))
        r, lo, hi, p, n = jp.pearson_release(built, x, y, (b_sig, b_out), confidence)
        result = r, lo, hi, p, r, n
    estimate, lo, hi, p, corr, n = result
    defined = math.isfinite(estimate)
    effect = Effect(
        name=effect_name,
        estimate=_stats.num(estimate),
        ci_low=_stats.num(lo if defined else math.nan),
        ci_high=_stats.num(hi if defined else math.nan),
    )
    return _finish(params, n, effect, math.nan, p, corr, built.info(confidence))


def _class_check(
    sides: tuple[jp.Side, jp.Side],
    rows: tuple[_stats.Bools, _stats.Bools],
    keys: _stats.Codes,
    size: int,
    privacy: PrivacyContext,
    cells: tuple[list[frozenset[Hashable]], list[frozenset[Hashable]]],
) -> None:
    """A class or cell of binary variables: K identifiers and k_i entities of each input."""
    k = max(privacy.k)
    enough = len(keys) >= k
    for side, used in zip(sides, rows, strict=True):
        here = used & side.rows_of(keys, size)
        enough = enough and side.entities(here) >= privacy.k[side.index]
        cells[side.index].append(jp.entity_set(side, here))
    if not enough:
        raise PolicyDenied(
            f"association-test: every class (and 2x2 cell) needs at least {k} joined "
            "identifiers and k distinct entities of each input",
            rule="k-threshold",
        )


def run(
    inputs: Sequence[pa.Table], params: AssociationParams, privacy: PrivacyContext
) -> AssociationOutput | Released:
    if params.signal is None and params.signal_agg != "count":
        raise InvalidInput("association-test: signal is required unless signal_agg is count")
    if params.fill_missing_signal and params.signal_agg not in ("count", "sum"):
        raise InvalidInput("association-test: fill_missing_signal needs signal_agg count or sum")
    if params.signal is not None:
        _stats.check_use(privacy, 0, params.signal, input_name="signal", role="signal")
    _stats.check_use(privacy, 1, params.outcome, input_name="outcome", role="outcome")
    confidence = _stats.confidence_value(params.confidence)
    sides, space = jp.sides(
        inputs, privacy, (params.key_signal, params.key_outcome), ("signal", "outcome")
    )
    if params.dp is not None:
        return _dp(sides, space, params, privacy, confidence)
    size = space.size
    zq = float(stats.norm.ppf((1 + confidence) / 2))
    joined, sv, ov, used = _per_key(sides, (sides[0].codes, sides[1].codes), params, size)
    joined = space.in_str_order(joined)
    rows = (
        used[0] & sides[0].rows_of(joined, size),
        used[1] & sides[1].rows_of(joined, size),
    )
    jp.require_k(sides, rows, privacy, what="association-test")
    cells: tuple[list[frozenset[Hashable]], list[frozenset[Hashable]]] = (
        [jp.entity_set(sides[0], rows[0])],
        [jp.entity_set(sides[1], rows[1])],
    )
    per_key = [sv, ov]
    for i, (kind, bounds) in enumerate(
        zip((params.signal_type, params.outcome_type), _bounds(params), strict=True)
    ):
        if kind == "numeric":
            assert bounds is not None
            per_key[i] = jp.cover_clip(
                np.clip(per_key[i], *bounds),
                joined,
                sides[1 - i],
                rows[1 - i],
                privacy.k[1 - i],
                what="association-test",
            )
    x, y = per_key[0][joined], per_key[1][joined]
    n = len(joined)
    binary = [
        (a, code)
        for a, kind, code in ((x, params.signal_type, sv), (y, params.outcome_type, ov))
        if kind == "binary"
    ]
    if len(binary) == 2:
        for a in (1.0, 0.0):
            for b in (1.0, 0.0):
                keys = joined[(x == a) & (y == b)]
                _class_check(sides, rows, keys, size, privacy, cells)
    else:
        for values, _ in binary:
            for c in (1.0, 0.0):
                _class_check(sides, rows, joined[values == c], size, privacy, cells)
    corr = math.nan
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        corr = float(np.corrcoef(x, y)[0, 1])
    if len(binary) == 2:
        a, b, c, d = (int(np.sum((x == s) & (y == o))) for s in (1.0, 0.0) for o in (1.0, 0.0))
        odds = (a * d) / (b * c)
        half = zq * math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        chi2, p, _, _ = stats.chi2_contingency(np.array([[a, b], [c, d]]), correction=False)
        effect = Effect(
            name="odds_ratio",
            estimate=_stats.num(odds),
            ci_low=_stats.num(math.exp(math.log(odds) - half)),
            ci_high=_stats.num(math.exp(math.log(odds) + half)),
        )
        stat = float(chi2)
    elif len(binary) == 1:
        if params.signal_type == "binary":
            d_, lo, hi, stat, p = _smd(y, x, zq)
        else:
            d_, lo, hi, stat, p = _smd(x, y, zq)
        effect = Effect(
            name="standardized_mean_difference",
            estimate=_stats.num(d_),
            ci_low=_stats.num(lo if math.isfinite(d_) else math.nan),
            ci_high=_stats.num(hi if math.isfinite(d_) else math.nan),
        )
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
    out = _finish(params, n, effect, stat, float(p), corr, None)
    return Released(out, Footprint(cells=(tuple(cells[0]), tuple(cells[1]))))


def _columns(params: AssociationParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (
        ColumnUse(params.key_signal, "key", "key_signal", 0),
        *(() if params.signal is None else (ColumnUse(params.signal, "numeric", "signal", 0),)),
        ColumnUse(params.key_outcome, "key", "key_outcome", 1),
        ColumnUse(params.outcome, "numeric", "outcome", 1),
    )


COMPUTATION = Computation(
    id="association-test",
    version="2.3.0",
    summary=(
        "Whether a signal in one dataset predicts an outcome in another (joined on id): effect "
        "size (odds ratio, standardized mean difference or r) with interval and significance; "
        "DP, or exact from a pinned shape with k on both parties."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("signal", "outcome"),
    params=AssociationParams,
    output=AssociationOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _stats, jp),
    cost_fn=jp.cost,
    isolating=(
        "key_signal",
        "key_outcome",
        "signal",
        "signal_type",
        "signal_agg",
        "signal_bounds",
        "fill_missing_signal",
        "outcome",
        "outcome_type",
        "outcome_bounds",
    ),
    selectors=True,
)
