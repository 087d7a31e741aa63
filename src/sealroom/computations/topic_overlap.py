"""topic-overlap: which topics two text datasets share and which are their own.

Privacy contract (class ``aggregate``, released to every party; exact mode only:
nothing a requester chooses can single out an entity, so the computation is not
parametrised and runs without noise). Each input is protected; against input
``i`` the adversary controls the other input, the parameters, any number of
identities and the timing of requests.

* **Unit.** An entity of input ``i``: a value of its policy's entity column
  (``PrivacyContext.entity_columns[i]``; each record when none). A record with a
  null entity counts for nothing.
* **What leaves about input i.** Terms used by at least ``k_i`` distinct entities
  of ``i``, each with its exact entity count; the Jaccard index and the insight
  are computed from those terms alone.
* **Threshold on the protected side.** A term of ``i`` is named (as a topic of
  ``i`` or as shared) only when ``k_i`` entities of ``i`` use it. The other input,
  which the requester may have written to hold any candidate term, decides
  which of those terms are listed, never whether one passes ``k_i``.
* **Separation.** No two counts released on ``i`` stand on entity sets that
  differ by 1 to ``k_i - 1`` entities (the later-ranked term is left out:
  :class:`sealroom.policy.separation.Separated`), so no count below ``k_i``
  follows by subtraction inside one release.
* **Difference checks.** The footprint of every released count (its entity set
  on its input) goes to the enclave's release history, which refuses a release
  whose counts stand on nearly the same entities as an earlier release's (a
  republished dataset with one more person in it).
* **Columns.** The text column may not be ``never_output`` or ``join_only``
  (rules ``never-output``, ``join-only``).

Residual leakage: a requester can test any candidate term (by writing it into
its own input) for whether at least ``k_i`` entities of ``i`` use it, and learn
how many do. Which terms appear is an exact threshold decision, so across two
versions of a dataset that differ by one entity a term can appear or disappear:
at most one bit per term and version, which the difference check (on counts)
does not see. The order of a list reveals the relative counts of listed terms.

Method: each side's topics are its top ``top`` terms after the threshold,
ranked by entity count x specificity, without sub-terms a longer kept term
already covers and without lone generic words
(:func:`sealroom.terms.select_topics`). Over the union ``U`` of the two lists,
a term is *shared* when it passes both thresholds (and both separations),
otherwise it is unique to the side whose list holds it. ``jaccard`` = shared /
``|U|``, rounded half-even to 4 decimal places, as a canonical decimal string.

Shared topics are ranked by specificity x the smaller of their two relative
frequencies (count / entities), so a specific topic both sides write about often
comes first whatever the datasets' sizes; unique topics keep their side's rank.

Insight rules (first that applies):

* ``U`` empty: "no topics: ..." (neither side has a term of k entities);
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
from sealroom.computations.base import Computation, Footprint, PrivacyContext, Released
from sealroom.computations.column_uses import ColumnUse
from sealroom.policy import separation
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
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class TopicOverlapParams(_Model):
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    """Text column of both inputs."""
    top: Annotated[int, Field(ge=1, le=MAX_TOP)] = 40
    """How many topics per input to compare."""


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
        return "no topics: neither input has a term that at least k of its entities use"
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
) -> Released:
    a, b = (
        columns.topics(
            table, params.text_column, input_name=name, privacy=privacy, index=i, top=params.top
        )
        for i, (table, name) in enumerate(zip(inputs, "ab", strict=True))
    )
    listed_a = [t.term for t in a.listed]
    listed_b = [t.term for t in b.listed]
    shared_terms: list[str] = []
    only_a: list[str] = []
    only_b: list[str] = []
    for term in dict.fromkeys(listed_a + listed_b):
        if a.passes(term) and b.passes(term):
            # A term from the other side's list releases a count on this side too; it must
            # keep this side's separation, or the term is left out (calling it unique to the
            # side that listed it would be false).
            fresh = [s for s, listed in ((a, listed_a), (b, listed_b)) if term not in listed]
            if all(s.separated.admits(s.used.members[term]) for s in fresh):
                for s in fresh:
                    s.separated.admit(s.used.members[term])
                shared_terms.append(term)
        elif term in listed_a:
            only_a.append(term)
        else:
            only_b.append(term)
    total_a, total_b = max(a.used.total, 1), max(b.used.total, 1)
    shared = sorted(
        (
            SharedTopic(term=t, count_a=a.used.count(t), count_b=b.used.count(t))
            for t in shared_terms
        ),
        key=lambda s: (
            -terms.specificity(s.term)
            * min(Fraction(s.count_a, total_a), Fraction(s.count_b, total_b)),
            s.term,
        ),
    )
    side_a = [SideTopic(term=t, count=a.used.count(t)) for t in only_a]
    side_b = [SideTopic(term=t, count=b.used.count(t)) for t in only_b]
    union = len(shared) + len(side_a) + len(side_b)
    jaccard = Fraction(len(shared), union) if union else Fraction(0)
    output = TopicOverlapOutput(
        shared=tuple(shared),
        unique_to_a=tuple(side_a),
        unique_to_b=tuple(side_b),
        jaccard=decimal4(jaccard),
        insight=_insight(shared, side_a, side_b, jaccard),
    )
    in_shared = [s.term for s in shared]
    footprint = Footprint(
        cells=(
            tuple(a.used.values(t) for t in in_shared + only_a),
            tuple(b.used.values(t) for t in in_shared + only_b),
        )
    )
    return Released(output, footprint)


def _columns(params: TopicOverlapParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (ColumnUse(params.text_column, "text", "text_column"),)


COMPUTATION = Computation(
    id="topic-overlap",
    version="2.2.0",
    summary=(
        "Topics (terms at least k distinct entities of their dataset use) two text datasets "
        "share and those unique to each, with entity counts, a Jaccard index and a one-line "
        "insight."
    ),
    privacy_class="aggregate",
    release="all-parties",
    input_names=("a", "b"),
    params=TopicOverlapParams,
    output=TopicOverlapOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], terms, columns, separation),
)
