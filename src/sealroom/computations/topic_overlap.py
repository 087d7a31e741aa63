"""topic-overlap: which topics two text datasets share and which are their own.

Privacy contract (class ``aggregate``, released to every party): a term is a
topic of an input only if it occurs in at least that input's ``k`` records
(``PrivacyContext.k``). The output names only such topics, with their record
counts on the sides where they pass the threshold; a count below ``k`` is never
released, not even as "present".

Method: each side's topics are its top ``top`` terms after the threshold, ranked
by record count x specificity, without sub-terms a longer kept term already
covers and without lone generic words
(:func:`sealroom.terms.select_topics`). Over the union ``U`` of the
two lists, a term is *shared* when it passes both thresholds, otherwise it is
unique to the side whose list holds it. ``jaccard`` = shared / ``|U|``, rounded
half-even to 4 decimal places, as a canonical decimal string.

Shared topics are ranked by specificity x the smaller of their two relative
frequencies (count / rows), so a specific topic both sides write about often
comes first whatever the datasets' sizes; unique topics keep their side's rank.

Insight rules (first that applies):

* ``U`` empty: "no topics: ..." (neither side has a term in k records);
* nothing shared: "disjoint: ..." naming each side's top topic;
* jaccard >= 0.5: "high overlap: ..." naming the top three shared topics;
* jaccard >= 0.25: "partial overlap: ..." naming top shared and top unique topics;
* otherwise: "complementary: ..." naming top shared and top unique topics.

The insight names the sides as the output does, spelled out for a reader who
sees only the sentence: "the first dataset (a)" and "the second (b)", in the
order of the request's inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sealroom import terms
from sealroom.computations import columns
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.statements.fields import DecimalStr, canonical_decimal

__all__ = [
    "COMPUTATION",
    "SharedTopic",
    "SideTopic",
    "TopicOverlapOutput",
    "TopicOverlapParams",
    "decimal4",
    "run",
]

MAX_TOP = 200


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TopicOverlapParams(_Model):
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    top: Annotated[int, Field(ge=1, le=MAX_TOP)] = 40


Term = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=1)]


class SharedTopic(_Model):
    term: Term
    count_a: Count
    count_b: Count


class SideTopic(_Model):
    term: Term
    count: Count


class TopicOverlapOutput(_Model):
    shared: Annotated[tuple[SharedTopic, ...], Field(max_length=2 * MAX_TOP)]
    unique_to_a: Annotated[tuple[SideTopic, ...], Field(max_length=MAX_TOP)]
    unique_to_b: Annotated[tuple[SideTopic, ...], Field(max_length=MAX_TOP)]
    jaccard: DecimalStr
    insight: Annotated[str, Field(min_length=1, max_length=1000)]


def decimal4(value: Fraction) -> str:
    """``value`` rounded half-even to 4 places as a canonical decimal string ("0.25", "1", "0")."""
    d = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_EVEN
    )
    return canonical_decimal(d)


def _names(items: Sequence[str]) -> str:
    quoted = [f'"{t}"' for t in items]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _insight(
    shared: Sequence[SharedTopic],
    only_a: Sequence[SideTopic],
    only_b: Sequence[SideTopic],
    jaccard: Fraction,
) -> str:
    if not (shared or only_a or only_b):
        return "no topics: neither input has a term that occurs in at least k of its records"
    if not shared:
        a = _names([t.term for t in only_a[:1]]) or "nothing above its threshold"
        b = _names([t.term for t in only_b[:1]]) or "nothing above its threshold"
        return (
            "disjoint: no topic in common; "
            f"the first dataset (a) is about {a}, the second (b) about {b}"
        )
    top_shared = _names([t.term for t in shared[:3]])
    if jaccard >= Fraction(1, 2):
        return f"high overlap: both cover {top_shared}"
    label = "partial overlap" if jaccard >= Fraction(1, 4) else "complementary"
    parts = [f"{label}: both cover {_names([t.term for t in shared[:2]])}"]
    if only_a:
        parts.append(f"the first dataset (a) adds {_names([t.term for t in only_a[:2]])}")
    if only_b:
        second = "second" if only_a else "second dataset"
        parts.append(f"the {second} (b) adds {_names([t.term for t in only_b[:2]])}")
    return "; ".join(parts)


def run(
    inputs: Sequence[pa.Table], params: TopicOverlapParams, privacy: PrivacyContext
) -> TopicOverlapOutput:
    table_a, table_b = inputs
    k_a, k_b = privacy.k
    texts_a = columns.text_values(table_a, params.text_column, input_name="a")
    texts_b = columns.text_values(table_b, params.text_column, input_name="b")
    freq_a = terms.record_frequencies(texts_a)
    freq_b = terms.record_frequencies(texts_b)
    top_a = [t.term for t in terms.select_topics(freq_a, min_count=k_a, top=params.top)]
    top_b = [t.term for t in terms.select_topics(freq_b, min_count=k_b, top=params.top)]
    union = dict.fromkeys(top_a + top_b)

    def above(freq: dict[str, int], term: str, k: int) -> bool:
        return freq.get(term, 0) >= k

    shared_terms = [t for t in union if above(freq_a, t, k_a) and above(freq_b, t, k_b)]
    rows_a, rows_b = max(table_a.num_rows, 1), max(table_b.num_rows, 1)
    shared = sorted(
        (SharedTopic(term=t, count_a=freq_a[t], count_b=freq_b[t]) for t in shared_terms),
        key=lambda s: (
            -terms.specificity(s.term)
            * min(Fraction(s.count_a, rows_a), Fraction(s.count_b, rows_b)),
            s.term,
        ),
    )
    shared_set = set(shared_terms)
    only_a = [SideTopic(term=t, count=freq_a[t]) for t in top_a if t not in shared_set]
    only_b = [SideTopic(term=t, count=freq_b[t]) for t in top_b if t not in shared_set]
    jaccard = Fraction(len(shared), len(union)) if union else Fraction(0)
    return TopicOverlapOutput(
        shared=tuple(shared),
        unique_to_a=tuple(only_a),
        unique_to_b=tuple(only_b),
        jaccard=decimal4(jaccard),
        insight=_insight(shared, only_a, only_b, jaccard),
    )


COMPUTATION = Computation(
    id="topic-overlap",
    version="1.0.1",
    summary=(
        "Topics (terms in at least k records of their dataset) two text datasets share and "
        "those unique to each, with record counts, a Jaccard index and a one-line insight."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=TopicOverlapParams,
    output=TopicOverlapOutput,
    run_fn=run,
    modules=(sys.modules[__name__], terms, columns),
)
