"""intersection-overlap: how many identifiers two datasets share, without revealing which.

Privacy contract (class ``aggregate``, released to every party): only sizes
leave: the distinct identifiers of each side (each released only when it is at
least that side's ``k``; null otherwise), the size of the overlap, the union,
the Jaccard index and the share of each side found in the other. The overlap
and everything derived from it (union, Jaccard, shares) are released only when
the overlap holds at least K = max(k_a, k_b) identifiers and the overlapping
rows of each side hold at least that side's ``k`` distinct entities
(``PrivacyContext.entity_columns``; rows when none is declared); otherwise
``below_k`` is true and those fields are null: "below k", never the number. The
identifier columns are only matched, so they may be ``join_only`` or
``never_output``. No DP noise.

Identifiers are compared as strings (integers as their digits, so 17 matches
"17"; surrounding spaces ignored); null or empty identifiers are absent. Ratios
are decimal strings of 12 significant digits
(:mod:`sealroom.computations._stats`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, Field

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Model, Num, ParamsModel
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput

__all__ = ["COMPUTATION", "OverlapOutput", "OverlapParams", "run"]


class OverlapParams(ParamsModel):
    key_a: ColumnName = "id"
    key_b: ColumnName = "id"


Size = Annotated[int, Field(ge=0)] | None


class OverlapOutput(Model):
    size_a: Size
    size_b: Size
    overlap: Size
    union: Size
    jaccard: Num | None
    share_of_a: Num | None
    share_of_b: Num | None
    below_k: bool
    k: int
    insight: Annotated[str, Field(min_length=1, max_length=1000)]


def run(
    inputs: Sequence[pa.Table], params: OverlapParams, privacy: PrivacyContext
) -> OverlapOutput:
    table_a, table_b = inputs
    keys_a = _stats.keys(table_a, params.key_a, input_name="a")
    keys_b = _stats.keys(table_b, params.key_b, input_name="b")
    set_a = {k for k in keys_a if k is not None}
    set_b = {k for k in keys_b if k is not None}
    both = set_a & set_b
    k = max(privacy.k)
    enough = len(both) >= k
    for index, (name, table, ks) in enumerate((("a", table_a, keys_a), ("b", table_b, keys_b))):
        ents = _stats.entities(table, privacy, index, input_name=name)
        n_ent = _stats.distinct(e for e, key in zip(ents, ks, strict=True) if key in both)
        enough = enough and n_ent >= privacy.k[index]
    size_a = len(set_a) if len(set_a) >= privacy.k[0] else None
    size_b = len(set_b) if len(set_b) >= privacy.k[1] else None
    if not enough:
        return OverlapOutput(
            size_a=size_a,
            size_b=size_b,
            overlap=None,
            union=None,
            jaccard=None,
            share_of_a=None,
            share_of_b=None,
            below_k=True,
            k=k,
            insight=f"the overlap is below the threshold of {k}: its size is not released",
        )
    union = len(set_a | set_b)
    jaccard = len(both) / union
    return OverlapOutput(
        size_a=size_a,
        size_b=size_b,
        overlap=len(both),
        union=union,
        jaccard=_stats.num(jaccard),
        share_of_a=_stats.num(len(both) / len(set_a)) if size_a is not None else None,
        share_of_b=_stats.num(len(both) / len(set_b)) if size_b is not None else None,
        below_k=False,
        k=k,
        insight=(
            f"{len(both)} shared identifiers; Jaccard {jaccard:.3f}"
            + (f"; {100 * len(both) / len(set_a):.1f}% of a" if size_a is not None else "")
            + (f", {100 * len(both) / len(set_b):.1f}% of b" if size_b is not None else "")
        ),
    )


def _run(inputs: Sequence[pa.Table], params: BaseModel, privacy: PrivacyContext) -> OverlapOutput:
    if not isinstance(params, OverlapParams):
        raise InvalidInput("intersection-overlap needs OverlapParams (use parse_params)")
    return run(inputs, params, privacy)


COMPUTATION = Computation(
    id="intersection-overlap",
    version="1.0.0",
    summary=(
        "Size of the overlap of two identifier sets, with union, Jaccard index and the share of "
        "each side; an overlap below k is reported as below k, never as a number."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=OverlapParams,
    output=OverlapOutput,
    run_fn=_run,
    modules=(sys.modules[__name__], _stats),
)
