"""pattern-search: recurring problem -> investigation -> solution patterns in a text log.

Method. A record *matches* when its text, lower-cased with whitespace collapsed,
contains the query phrase (normalised the same way). Each matching record is
cut into clauses at sentence ends and semicolons; a leading filler ("Today:",
"FYI", "Note to self:"...) is dropped; every clause is redacted
(:mod:`sealroom.computations._redact`: identifiers, paths, UUIDs, e-mail and IP
addresses, URLs, keys and tokens), lower-cased and stripped of end
punctuation. A clause is an *investigation* step when it names one
(investigate, debugging, root cause, traced, postmortem, found the cause...),
else a *solution* when it names one (fixed, resolved, workaround, had to,
rolled back, pinned, refreshed, restarted, upgraded...), else a *problem* when
it names one (error, failed, bug, broke, choked, mismatch, stuck, denied...) or
contains the query. A record's problem is its first problem clause containing
the query (else its first problem clause, else its first clause containing the
query); its steps are its investigation and solution clauses.

Privacy contract (class ``content``: releases redacted record text, so never
approved automatically; released to the requester only):

* A problem is released only when at least ``k`` distinct entities
  (``entity_columns[0]``, records when None) have it; an investigation or
  solution under it only when at least ``k`` distinct entities have that
  problem *and* that step. Every released text is therefore a redacted clause
  written identically in at least k entities' records, and every count is a
  true count of distinct entities. ``matched`` (entities whose records match)
  is released only when at least k, else 0 with nothing else.
* ``suppressed_problems`` counts problems below k (the groups, never their
  entities); no total is given from which a suppressed count could be derived.
* At most ``max_patterns`` problems (and ``max_output_rows`` of the policy)
  are listed, most frequent first, ties by text.
* The text column may not be ``never_output`` or ``join_only``.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _redact, columns
from sealroom.computations.base import Computation, PrivacyContext
from sealroom.errors import InvalidInput
from sealroom.policy import suppression

__all__ = [
    "COMPUTATION",
    "Pattern",
    "PatternSearchOutput",
    "PatternSearchParams",
    "Step",
    "classify",
    "clauses",
    "run",
]

MAX_PATTERNS = 100

_CLAUSE_BREAK = re.compile(r"(?<=[.!?])\s+|;\s*|\n+")
_FILLER = re.compile(
    r"^(?:today|update|fyi|finally|note to self|quick note|late night|hmm|ok|so|also|btw)"
    r"\s*[:,]?\s+",
    re.I,
)
_INVESTIGATION = re.compile(
    r"\b(?:investigat\w*|debugg\w*|root cause|traced|found the cause|postmortem|looked into|"
    r"digging|bisect\w*|suspect\w*|set up alerts)\b"
)
_SOLUTION = re.compile(
    r"\b(?:fix|fixed|fixes|fixing|resolv\w*|solv\w*|workaround|had to|rolled back|pinned|"
    r"refresh\w*|restart\w*|upgraded|increased|switched|retried|stabilis\w*|stabiliz\w*)\b"
)
_PROBLEM = re.compile(
    r"\b(?:errors?|fail\w*|bug|broke\w*|choked|crash\w*|mismatch|stuck|denied|timeout|"
    r"timed out|not responding|oom|flaky|differed|does not match|unable|cannot|invalid|"
    r"expired|wrong|incident|reported|too large|out of range|not enough|panic\w*|refused)\b"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatternSearchParams(_Model):
    query: Annotated[str, Field(min_length=2, max_length=200)]
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    max_patterns: Annotated[int, Field(ge=1, le=MAX_PATTERNS)] = 20


Text = Annotated[str, Field(min_length=1, max_length=2000)]
Count = Annotated[int, Field(ge=1)]


class Step(_Model):
    text: Text
    count: Count


class Pattern(_Model):
    problem: Text
    count: Count
    investigations: tuple[Step, ...]
    solutions: tuple[Step, ...]


class PatternSearchOutput(_Model):
    query: str
    matched: Annotated[int, Field(ge=0)]
    patterns: tuple[Pattern, ...]
    suppressed_problems: Annotated[int, Field(ge=0)]
    redacted: tuple[str, ...]


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def clauses(text: str) -> list[str]:
    """The redacted, normalised clauses of one record, in order, empty ones dropped."""
    out = []
    for raw in _CLAUSE_BREAK.split(text):
        clause = raw.strip()
        while True:
            stripped = _FILLER.sub("", clause, count=1)
            if stripped == clause:
                break
            clause = stripped
        clause = _normalise(_redact.redact(clause)).rstrip(".!?:, ")
        if clause:
            out.append(clause)
    return out


def classify(clause: str) -> str | None:
    """ "investigation", "solution", "problem" or None (context that is none of them)."""
    if _INVESTIGATION.search(clause):
        return "investigation"
    if _SOLUTION.search(clause):
        return "solution"
    if _PROBLEM.search(clause):
        return "problem"
    return None


def _record_pattern(text: str, query: str) -> tuple[str | None, set[str], set[str]]:
    parts = clauses(text)
    kinds = [classify(c) for c in parts]
    problems = [c for c, k in zip(parts, kinds, strict=True) if k == "problem"]
    with_query = [c for c in problems if query in c]
    any_query = [c for c, k in zip(parts, kinds, strict=True) if k is None and query in c]
    candidates = with_query or problems or any_query
    problem = candidates[0] if candidates else None
    investigations = {c for c, k in zip(parts, kinds, strict=True) if k == "investigation"}
    solutions = {c for c, k in zip(parts, kinds, strict=True) if k == "solution"}
    return problem, investigations, solutions


def run(
    inputs: Sequence[pa.Table], params: PatternSearchParams, privacy: PrivacyContext
) -> PatternSearchOutput:
    (table,) = inputs
    k = privacy.k[0]
    if params.text_column in privacy.never_output[0]:
        raise InvalidInput(f"pattern-search: column {params.text_column!r} is never_output")
    if params.text_column in privacy.join_only[0]:
        raise InvalidInput(f"pattern-search: column {params.text_column!r} is join_only")
    texts = columns.text_values(table, params.text_column, input_name="log")
    entity_col = privacy.entity_columns[0]
    if entity_col is None:
        entities: list[object] = list(range(table.num_rows))
    elif entity_col not in table.column_names:
        raise InvalidInput(f"pattern-search: the log has no entity column {entity_col!r}")
    else:
        entities = table.column(entity_col).to_pylist()
    query = _normalise(params.query)
    matched: set[object] = set()
    by_problem: dict[tuple[object, ...], set[object]] = defaultdict(set)
    steps: dict[tuple[str, str, str], set[object]] = defaultdict(set)
    for text, entity in zip(texts, entities, strict=True):
        if text is None or entity is None or query not in _normalise(text):
            continue
        matched.add(entity)
        problem, investigations, solutions = _record_pattern(text, query)
        if problem is None:
            continue
        by_problem[(problem,)].add(entity)
        for step in investigations:
            steps[(problem, "investigation", step)].add(entity)
        for step in solutions:
            steps[(problem, "solution", step)].add(entity)
    if len(matched) < k:
        return PatternSearchOutput(
            query=params.query,
            matched=0,
            patterns=(),
            suppressed_problems=0,
            redacted=_redact.CLASSES,
        )
    counts = {g: len(e) for g, e in by_problem.items()}
    kept = suppression.suppress(counts, entities=counts, k=k)
    limit = params.max_patterns
    if privacy.max_output_rows is not None:
        limit = min(limit, privacy.max_output_rows)

    def released_steps(problem: str, kind: str) -> tuple[Step, ...]:
        found = [
            Step(text=s, count=len(e))
            for (p, kd, s), e in steps.items()
            if p == problem and kd == kind and len(e) >= k
        ]
        return tuple(sorted(found, key=lambda st: (-st.count, st.text)))

    ranked = sorted(kept.released.items(), key=lambda item: (-item[1], str(item[0][0])))
    patterns = tuple(
        Pattern(
            problem=str(group[0]),
            count=count,
            investigations=released_steps(str(group[0]), "investigation"),
            solutions=released_steps(str(group[0]), "solution"),
        )
        for group, count in ranked[:limit]
    )
    return PatternSearchOutput(
        query=params.query,
        matched=len(matched),
        patterns=patterns,
        suppressed_problems=kept.suppressed_groups,
        redacted=_redact.CLASSES,
    )


COMPUTATION = Computation(
    id="pattern-search",
    version="1.0.1",
    summary=(
        "Records of a text log that match a query, summarised as recurring problem -> "
        "investigation -> solution patterns with entity counts; identifiers, paths, UUIDs, "
        "e-mail and IP addresses, keys and tokens are redacted, and only patterns seen for at "
        "least k entities are released."
    ),
    privacy_class="content",
    release="requester",
    input_names=("log",),
    params=PatternSearchParams,
    output=PatternSearchOutput,
    run_fn=run,
    modules=(sys.modules[__name__], _redact, columns, suppression),
)
