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

import numpy as np
import pyarrow as pa
from pydantic import Field

from sealroom.computations import _stats
from sealroom.computations._stats import ColumnName, Model, Num, ParamsModel
from sealroom.computations.base import Computation, PrivacyContext

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
    (codes_a, codes_b), space = _stats.encode_keys(
        [(table_a, params.key_a, "a"), (table_b, params.key_b, "b")]
    )
    in_a = np.bincount(codes_a[codes_a >= 0], minlength=space.size) > 0
    in_b = np.bincount(codes_b[codes_b >= 0], minlength=space.size) > 0
    n_a, n_b = int(np.count_nonzero(in_a)), int(np.count_nonzero(in_b))
    both = np.flatnonzero(in_a & in_b)
    n_both = len(both)
    k = max(privacy.k)
    enough = n_both >= k
    for index, (name, table, key, codes) in enumerate(
        (("a", table_a, params.key_a, codes_a), ("b", table_b, params.key_b, codes_b))
    ):
        ents = _stats.entity_codes(table, privacy, index, input_name=name, key=(key, codes))
        n_ent = _stats.count_distinct(ents[_stats.member(codes, both, space.size)])
        enough = enough and n_ent >= privacy.k[index]
    size_a = n_a if n_a >= privacy.k[0] else None
    size_b = n_b if n_b >= privacy.k[1] else None
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
    union = n_a + n_b - n_both
    jaccard = n_both / union
    return OverlapOutput(
        size_a=size_a,
        size_b=size_b,
        overlap=n_both,
        union=union,
        jaccard=_stats.num(jaccard),
        share_of_a=_stats.num(n_both / n_a) if size_a is not None else None,
        share_of_b=_stats.num(n_both / n_b) if size_b is not None else None,
        below_k=False,
        k=k,
        insight=(
            f"{n_both} shared identifiers; Jaccard {jaccard:.3f}"
            + (f"; {100 * n_both / n_a:.1f}% of a" if size_a is not None else "")
            + (f", {100 * n_both / n_b:.1f}% of b" if size_b is not None else "")
        ),
    )


COMPUTATION = Computation(
    id="intersection-overlap",
    version="1.1.0",
    summary=(
        "Size of the overlap of two identifier sets, with union, Jaccard index and the share of "
        "each side; an overlap below k is reported as below k, never as a number."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=OverlapParams,
    output=OverlapOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _stats),
    isolating=("key_a", "key_b"),
    selectors=True,
)
