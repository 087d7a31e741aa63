"""intersection-sum: what the shared identifiers are worth, e.g. the spend of overlapping customers.

Privacy contract (class ``aggregate``, released to every party): the output is
the overlap size, the number of value rows in it, the sum of the value column
over the intersection, the mean per identifier with a Student-t confidence
interval, and the mean per row. Nothing per identifier leaves. The run is
refused (:class:`PolicyDenied`) unless the intersection (identifiers with at
least one usable value) holds at least K = max(k_a, k_b) identifiers and its
rows hold at least ``k`` distinct entities on each side
(``PrivacyContext.entity_columns``; rows when none is declared). Identifier
columns may be ``join_only`` / ``never_output``; the value column may not. No
DP noise.

Method: identifiers are matched as strings (see
:mod:`sealroom.computations.intersection_overlap`); the value column is on the
``value_input`` side (default b). An identifier's value is the sum of its rows;
the interval is over those per-identifier totals. Unusable value cells are
treated as absent rows; numbers are decimal strings of 12 significant digits
(:mod:`sealroom.computations._stats`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Confidence, Model, Num, ParamsModel
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import PolicyDenied

__all__ = ["COMPUTATION", "IntersectionSumOutput", "IntersectionSumParams", "run"]


class IntersectionSumParams(ParamsModel):
    key_a: ColumnName = "id"
    key_b: ColumnName = "id"
    value: ColumnName
    value_input: Literal["a", "b"] = "b"
    confidence: Confidence = "0.95"


class IntersectionSumOutput(Model):
    overlap: Annotated[int, Field(ge=0)]
    rows: Annotated[int, Field(ge=0)]
    sum: Num | None
    mean_per_id: Num | None
    ci_low: Num | None
    ci_high: Num | None
    mean_per_row: Num | None
    confidence: Num


def run(
    inputs: Sequence[pa.Table], params: IntersectionSumParams, privacy: PrivacyContext
) -> IntersectionSumOutput:
    vi = 0 if params.value_input == "a" else 1
    _stats.check_use(privacy, vi, params.value, input_name=params.value_input, role="value")
    confidence = _stats.confidence_value(params.confidence)
    names = ("a", "b")
    key_cols = (params.key_a, params.key_b)
    codes, space = _stats.encode_keys(
        [(t, c, n) for t, c, n in zip(inputs, key_cols, names, strict=True)]
    )
    values = _stats.numbers(inputs[vi], params.value, input_name=names[vi])
    has_v, totals, used_v = _stats.group_values(codes[vi], values, "sum", space.size)
    other = codes[1 - vi]
    in_other = np.bincount(other[other >= 0], minlength=space.size) > 0
    both = space.in_str_order(np.flatnonzero(has_v & in_other))
    k = max(privacy.k)
    enough = len(both) >= k
    value_rows = used_v & _stats.member(codes[vi], both, space.size)
    for index in (0, 1):
        ents = _stats.entity_codes(
            inputs[index],
            privacy,
            index,
            input_name=names[index],
            key=(key_cols[index], codes[index]),
        )
        if ents is codes[index]:
            # The entity is the identifier: every identifier of the intersection has a
            # (used) row on both sides, so the distinct entities are the intersection.
            n_ent = len(both)
        else:
            rows = value_rows if index == vi else _stats.member(codes[index], both, space.size)
            n_ent = _stats.count_distinct(ents[rows])
        enough = enough and n_ent >= privacy.k[index]
    if not enough:
        raise PolicyDenied(
            f"intersection-sum: the intersection is below the threshold of {k} identifiers "
            "or of an input's k distinct entities"
        )
    per_id = totals[both]
    n_rows = int(np.count_nonzero(value_rows))
    total = math.fsum(per_id.tolist())
    lo, hi = _stats.t_mean_ci(per_id, confidence)
    return IntersectionSumOutput(
        overlap=len(both),
        rows=n_rows,
        sum=_stats.num(total),
        mean_per_id=_stats.num(total / len(both)),
        ci_low=_stats.num(lo),
        ci_high=_stats.num(hi),
        mean_per_row=_stats.num(total / n_rows),
        confidence=params.confidence,
    )


COMPUTATION = Computation(
    id="intersection-sum",
    version="1.1.0",
    summary=(
        "Sum and mean (with confidence interval) of a value column over the identifiers two "
        "datasets share; refused when the intersection is below k."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=IntersectionSumParams,
    output=IntersectionSumOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats),
    isolating=("key_a", "key_b", "value", "value_input"),
    selectors=True,
)
