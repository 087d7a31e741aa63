"""correlation: how a column of one dataset moves with a column of another, joined on a key.

Privacy contract (class ``aggregate``, released to every party): the output is
n (matched keys), Pearson's r and Spearman's rho, each with a Fisher-z
confidence interval and a two-sided p-value. No row, key or per-key value
leaves. The run is refused (:class:`PolicyDenied`) unless the rows that make
the matched pairs hold at least ``k_a`` distinct entities of input a and
``k_b`` of input b (entities per ``PrivacyContext.entity_columns``, rows when
none is declared). No DP noise. Key columns may be ``join_only`` or
``never_output``; ``x`` and ``y`` may not.

Method: rows are matched on ``key_a`` = ``key_b`` (identifiers compared as
strings, integers as their digits). When a key has several rows on one side
(a *group key*: e.g. many reviews per restaurant) its value is ``agg_a`` /
``agg_b`` of those rows (default mean; ``count`` needs no column). Pearson r
and Spearman rho (average ranks for ties) over the n matched keys; p-values
from scipy (t distribution with n-2 degrees of freedom). Intervals: Fisher z,
``tanh(atanh(r) +- z_(1+c)/2 * sqrt(f / (n-3)))`` with f = 1 for Pearson and
f = 1.06 for Spearman (Fieller, Hartley and Pearson 1957); null when n < 4.
A coefficient is null when a side is constant. Numbers: see
:mod:`sealroom.computations._stats` (12 significant digits, decimal strings;
unusable cells are treated as absent rows).
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

from sealroom.computations import _stats
from sealroom.computations._stats import Agg, ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import PolicyDenied

__all__ = ["COMPUTATION", "Coefficient", "CorrelationOutput", "CorrelationParams", "run"]


class CorrelationParams(ParamsModel):
    key_a: ColumnName = "id"
    key_b: ColumnName = "id"
    x: ColumnName
    y: ColumnName
    agg_a: Agg = "mean"
    agg_b: Agg = "mean"
    confidence: Confidence = "0.95"


class Coefficient(Model):
    estimate: Num | None
    ci_low: Num | None
    ci_high: Num | None
    p_value: Num | None


class CorrelationOutput(Model):
    n: Annotated[int, Field(ge=0)]
    pearson: Coefficient
    spearman: Coefficient
    confidence: Num
    insight: Annotated[str, Field(min_length=1, max_length=1000)]


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


def run(
    inputs: Sequence[pa.Table], params: CorrelationParams, privacy: PrivacyContext
) -> CorrelationOutput:
    table_a, table_b = inputs
    for i, (name, col, role) in enumerate((("a", params.x, "x"), ("b", params.y, "y"))):
        _stats.check_use(privacy, i, col, input_name=name, role=f"correlated column {role}")
    confidence = _stats.confidence_value(params.confidence)
    (codes_a, codes_b), space = _stats.encode_keys(
        [(table_a, params.key_a, "a"), (table_b, params.key_b, "b")]
    )
    size = space.size
    xs = None if params.agg_a == "count" else _stats.numbers(table_a, params.x, input_name="a")
    ys = None if params.agg_b == "count" else _stats.numbers(table_b, params.y, input_name="b")
    has_a, va, used_a = _stats.group_values(codes_a, xs, params.agg_a, size)
    has_b, vb, used_b = _stats.group_values(codes_b, ys, params.agg_b, size)
    # Matched keys in str order, as sorted() would give them.
    matched = space.in_str_order(np.flatnonzero(has_a & has_b))
    for index, (name, table, key, codes, used) in enumerate(
        (
            ("a", table_a, params.key_a, codes_a, used_a),
            ("b", table_b, params.key_b, codes_b, used_b),
        )
    ):
        ents = _stats.entity_codes(table, privacy, index, input_name=name, key=(key, codes))
        n_ent = _stats.count_distinct(ents[used & _stats.member(codes, matched, size)])
        if n_ent < privacy.k[index]:
            raise PolicyDenied(
                f"correlation: the matched rows of input {name!r} hold fewer than its "
                f"threshold of {privacy.k[index]} distinct entities"
            )
    n = len(matched)
    x = va[matched]
    y = vb[matched]
    r = rho = p_r = p_rho = math.nan
    if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pr = stats.pearsonr(x, y)
            sr = stats.spearmanr(x, y)
        r, p_r = float(pr.statistic), float(pr.pvalue)
        rho, p_rho = float(sr.statistic), float(sr.pvalue)
    if math.isfinite(r):
        insight = (
            f"{_strength(r)} {'positive' if r > 0 else 'negative'} linear correlation "
            f"(r = {_stats.num(round(r, 3))}, {_stats.p_text(p_r)}, n = {n})"
        )
    else:
        insight = f"correlation undefined: fewer than 3 matched keys or a constant side (n = {n})"
    return CorrelationOutput(
        n=n,
        pearson=_coefficient(r, p_r, n, confidence, 1.0),
        spearman=_coefficient(rho, p_rho, n, confidence, 1.06),
        confidence=params.confidence,
        insight=insight,
    )


COMPUTATION = Computation(
    id="correlation",
    version="1.1.0",
    summary=(
        "Pearson and Spearman correlation, with Fisher-z confidence intervals, p-values and n, "
        "between a column of one dataset and a column of another joined on a key or group key."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=CorrelationParams,
    output=CorrelationOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats),
    isolating=("key_a", "key_b", "x", "y", "agg_a", "agg_b"),
    selectors=True,
)
