"""gap-analysis: what an expert's log covers that a learner's log does not yet.

Privacy contract (class ``aggregate``, released to the requester only): the
output lists only the expert's topics, each in at least ``k_expert`` expert
records, with its expert record count. The learner's terms never leave; the
learner's data only decides whether an expert topic is "covered", and the output
carries one count of covered topics.

Method: the expert's topics are its top ``top`` terms after the threshold,
ranked by record count x specificity, without redundant sub-terms and without
lone generic words (:func:`sealroom.terms.select_topics`). A topic
is *covered* when it occurs in at least ``learner_min`` learner records
(default 2: one passing mention is not knowledge); the others are *gaps*, in the
expert's topic rank.

Level of a gap (an explainable rule, not a model):

* ``intermediate``: at least one of its specific words (not in
  :data:`sealroom.terms.GENERIC`) is already in the learner's
  vocabulary (a word in >= ``learner_min`` learner records), so it builds on
  something the learner knows ("remote attestation" for someone who writes
  about "attestation"); knowing "app" or "hash" does not make "compose hash"
  familiar;
* ``advanced``: no specific word is known to the learner ("kms", "key derivation").

``recommended``: the ``recommend`` best-ranked intermediate gaps, topped up
with the best-ranked advanced gaps when there are fewer intermediate ones.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sealroom import terms
from sealroom.computations import columns
from sealroom.computations.base import Computation, PrivacyContext

__all__ = ["COMPUTATION", "Gap", "GapAnalysisOutput", "GapAnalysisParams", "run"]

MAX_TOP = 200

Level = Literal["intermediate", "advanced"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GapAnalysisParams(_Model):
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    top: Annotated[int, Field(ge=1, le=MAX_TOP)] = 40
    learner_min: Annotated[int, Field(ge=1, le=1_000_000)] = 2
    recommend: Annotated[int, Field(ge=1, le=20)] = 5


Term = Annotated[str, Field(min_length=1, max_length=200)]
Terms = Annotated[tuple[Term, ...], Field(max_length=MAX_TOP)]


class Gap(_Model):
    term: Term
    mentions: Annotated[int, Field(ge=1)]
    level: Level


class GapAnalysisOutput(_Model):
    gaps: Annotated[tuple[Gap, ...], Field(max_length=MAX_TOP)]
    intermediate: Terms
    advanced: Terms
    recommended: Annotated[tuple[Term, ...], Field(max_length=20)]
    expert_topics: Annotated[int, Field(ge=0, le=MAX_TOP)]
    covered: Annotated[int, Field(ge=0, le=MAX_TOP)]
    summary: Annotated[str, Field(min_length=1, max_length=1000)]


def _summary(gaps: Sequence[Gap], expert_topics: int, covered: int, rec: Sequence[str]) -> str:
    if expert_topics == 0:
        return "no expert topics: the expert input has no term in at least k of its records"
    head = f"the learner covers {covered} of the expert's top {expert_topics} topics"
    if not gaps:
        return head + "; no gaps"
    n_int = sum(g.level == "intermediate" for g in gaps)
    return (
        f"{head}; {len(gaps)} gaps ({n_int} intermediate, {len(gaps) - n_int} advanced); "
        f"next: {', '.join(rec)}"
    )


def run(
    inputs: Sequence[pa.Table], params: GapAnalysisParams, privacy: PrivacyContext
) -> GapAnalysisOutput:
    expert, learner = inputs
    k_expert = privacy.k[0]
    freq_e = terms.record_frequencies(
        columns.text_values(expert, params.text_column, input_name="expert")
    )
    freq_l = terms.record_frequencies(
        columns.text_values(learner, params.text_column, input_name="learner")
    )
    topics = terms.select_topics(freq_e, min_count=k_expert, top=params.top)

    def known(term: str) -> bool:
        return freq_l.get(term, 0) >= params.learner_min

    gaps = tuple(
        Gap(
            term=t.term,
            mentions=t.count,
            level=(
                "intermediate"
                if any(known(w) and not terms.is_generic(w) for w in terms.term_words(t.term))
                else "advanced"
            ),
        )
        for t in topics
        if not known(t.term)
    )
    intermediate = tuple(g.term for g in gaps if g.level == "intermediate")
    advanced = tuple(g.term for g in gaps if g.level == "advanced")
    recommended = (intermediate + advanced)[: params.recommend]
    covered = len(topics) - len(gaps)
    return GapAnalysisOutput(
        gaps=gaps,
        intermediate=intermediate,
        advanced=advanced,
        recommended=recommended,
        expert_topics=len(topics),
        covered=covered,
        summary=_summary(gaps, len(topics), covered, recommended),
    )


COMPUTATION = Computation(
    id="gap-analysis",
    version="1.0.1",
    summary=(
        "Topics of an expert's text dataset (terms in at least k expert records) that a "
        "learner's dataset does not cover, ranked and levelled, with recommended next topics."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("expert", "learner"),
    params=GapAnalysisParams,
    output=GapAnalysisOutput,
    run_fn=run,
    modules=(sys.modules[__name__], terms, columns),
)
