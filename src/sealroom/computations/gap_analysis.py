"""gap-analysis: what an expert's log covers that a learner's log does not yet.

Privacy contract (class ``aggregate``, released to the requester only; exact mode
only: nothing a requester chooses can single out an entity, so no noise). Both
inputs are protected; against each, the adversary controls the other input (it
may write an "expert" log of candidate terms, or name someone else's log as the
learner), the parameters, any number of identities and the timing.

* **Unit.** An entity of each input: a value of its policy's entity column
  (``PrivacyContext.entity_columns``; each record when none). A record with a
  null entity counts for nothing.
* **What leaves about the expert.** Its topics: terms used by at least
  ``k_expert`` distinct expert entities, the gaps among them with their exact
  entity counts (``mentions``), and how many topics there are.
* **What leaves about the learner.** One bit per expert topic and per word of a
  gap (covered or not, known or not), and the count of covered topics; never a
  term of the learner's own. A term is covered (a word known) only when at least
  ``max(learner_min, k_learner)`` distinct learner entities use it, so the bit
  is the same threshold as a term of the learner that topic-overlap would
  name: no expert input the requester writes can test whether fewer than
  ``k_learner`` learner entities use a term.
* **Separation and difference checks.** As in topic-overlap: no two released
  counts of the expert stand on entity sets that differ by 1 to ``k_expert - 1``
  entities (:class:`sealroom.policy.separation.Separated`), and every released
  count's entity set is its footprint for the enclave's difference checks. The
  learner's threshold bits are not counts and have no footprint.
* **Columns.** The text column may not be ``never_output`` or ``join_only`` on
  either input (rules ``never-output``, ``join-only``).

Residual leakage: the requester can test candidate terms against the learner at
the ``k_learner`` threshold (one bit each) and against the expert at
``k_expert`` with exact counts; across two versions of a dataset that differ by
one entity a threshold bit can flip, which the difference check (on counts)
does not see.

Method: the expert's topics are its top ``top`` terms after the threshold,
ranked by entity count x specificity, without redundant sub-terms and without
lone generic words (:func:`sealroom.terms.select_topics`). A topic is *covered*
when the learner uses it (at least ``learner_min`` learner entities, default 2:
one passing mention is not knowledge, and never fewer than ``k_learner``); the
others are *gaps*, in the expert's topic rank.

Level of a gap (an explainable rule, not a model):

* ``intermediate``: at least one of its specific words (not in
  :data:`sealroom.terms.GENERIC`) is already in the learner's
  vocabulary (used as often as a covered topic), so it builds on
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
from sealroom.computations.base import Computation, Footprint, PrivacyContext, Released
from sealroom.computations.column_uses import ColumnUse
from sealroom.policy import separation

__all__ = ["COMPUTATION", "Gap", "GapAnalysisOutput", "GapAnalysisParams", "run"]

MAX_TOP = 200

Level = Literal["intermediate", "advanced"]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True
    )


class GapAnalysisParams(_Model):
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    """Text column of both logs."""
    top: Annotated[int, Field(ge=1, le=MAX_TOP)] = 40
    """How many of the expert's topics to consider."""
    learner_min: Annotated[int, Field(ge=1, le=1_000_000)] = 2
    """Distinct learner entities that must use a topic for it to count as covered (never fewer than
    the learner's k)."""
    recommend: Annotated[int, Field(ge=1, le=20)] = 5
    """How many gaps to recommend."""


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
        return "no expert topics: the expert input has no term that at least k of its entities use"
    head = f"the learner covers {covered} of the expert's top {expert_topics} topics"
    if not gaps:
        return head + "; no gaps"
    n_int = sum(g.level == "intermediate" for g in gaps)
    return (
        f"{head}; {len(gaps)} gaps ({n_int} intermediate, {len(gaps) - n_int} advanced); "
        f"next: {', '.join(rec)}"
    )


def run(inputs: Sequence[pa.Table], params: GapAnalysisParams, privacy: PrivacyContext) -> Released:
    expert, learner = inputs
    expert_topics = columns.topics(
        expert, params.text_column, input_name="expert", privacy=privacy, index=0, top=params.top
    )
    topics, used_e = expert_topics.listed, expert_topics.used
    used_l = columns.term_entities(
        learner, params.text_column, input_name="learner", privacy=privacy, index=1
    )
    learner_k = max(params.learner_min, privacy.k[1])

    def known(term: str) -> bool:
        return used_l.count(term) >= learner_k

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
    output = GapAnalysisOutput(
        gaps=gaps,
        intermediate=intermediate,
        advanced=advanced,
        recommended=recommended,
        expert_topics=len(topics),
        covered=covered,
        summary=_summary(gaps, len(topics), covered, recommended),
    )
    return Released(output, Footprint(cells=(tuple(used_e.values(g.term) for g in gaps), ())))


def _columns(params: GapAnalysisParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (ColumnUse(params.text_column, "text", "text_column"),)


COMPUTATION = Computation(
    id="gap-analysis",
    version="2.2.0",
    summary=(
        "Topics of an expert's text dataset (terms at least k distinct expert entities use) "
        "that a learner's dataset does not cover, ranked and levelled, with recommended next "
        "topics."
    ),
    privacy_class="aggregate",
    release="requester",
    input_names=("expert", "learner"),
    params=GapAnalysisParams,
    output=GapAnalysisOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], terms, columns, separation),
)
