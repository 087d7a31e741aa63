"""pattern-search: recurring problem -> investigation -> solution patterns in a text log.

Privacy contract (class ``content``: releases redacted record text, so never
approved automatically; released to the requester only; exact mode). The log is
protected; the adversary chooses the query (any number of queries, from any
number of identities, at any time) and nothing else. The query is a filter the
requester writes, and it is not pinned by policy: the owner reads and approves
every query by hand (class ``content``), and the rules below hold for any query.

* **Unit.** An entity of the log: a value of its policy's entity column
  (``entity_columns[0]``; each record when none). A record with a null entity
  counts for nothing.
* **Redaction first.** Every record is redacted before anything else reads it
  (:mod:`sealroom.computations._redact`: keys, URLs, e-mail addresses, UUIDs,
  secrets after their names and in prose, high-entropy tokens, Luhn-checked card
  numbers, phone numbers (libphonenumber), national ids and IBANs (python-stdnum),
  IP addresses, paths, hostnames, identifiers and long digit groups). Matching,
  clause splitting, grouping and counting see redacted text only, so a query
  cannot probe a redacted span: extending a query into a secret matches
  nothing, whatever the secret. Redaction is best effort (free text holds
  identifiers no detector knows: names, diagnoses); the output says so and
  lists the classes that ran.
* **What leaves.** The query; problems, investigations and solutions that are
  redacted clauses written identically by at least ``k`` distinct entities
  (a step only when ``k`` entities have that problem *and* that step); and
  their entity counts, and ``matched`` (entities whose redacted records contain
  the query), all rounded down to a multiple of ``k`` (``counts_rounded_to``):
  one entity more or less moves a count only when it crosses a multiple of k.
  Fewer than ``k`` matching entities: ``matched`` 0 and nothing else. No count of
  suppressed groups leaves.
* **Separation.** No two released counts stand on entity sets that differ by 1
  to ``k - 1`` entities: a step (or ``matched``, which is then null) whose set is
  that close to one already listed is left out
  (:class:`sealroom.policy.separation.Separated`).
* **Difference checks.** Every released count's entity set is its footprint
  for the enclave's release history, which refuses a release whose counts
  stand on nearly the same entities as an earlier one's (two queries whose
  matches differ by one person, a republished log with one more person).
* **Caps and columns.** At most ``max_patterns`` problems (and the policy's
  ``max_output_rows``), most frequent first. The text column may not be
  ``never_output`` or ``join_only`` (rules ``never-output``, ``join-only``).

Residual leakage: text that no detector recognises leaves when ``k`` entities
wrote the same clause; a query reveals, at the ``k`` threshold and to a
multiple of ``k``, how many entities wrote it; which patterns appear is an
exact threshold decision, so across two versions of a log that differ by one
entity a pattern can appear or disappear (one bit per pattern), which the
difference check (on counts) does not see. The placeholder names the
detector, so a redacted number's placeholder tells whether it passed a
checksum. The owner reviews every request by hand (class ``content``).

Method. Each record is redacted; it *matches* when its redacted text,
lower-cased with whitespace collapsed, contains the query phrase (normalised
the same way). Each matching record is cut into clauses at sentence ends and
semicolons; a leading filler ("Today:", "FYI", "Note to self:"...) is dropped;
each clause is lower-cased and stripped of end punctuation. A clause is an
*investigation* step when it names one (investigate, debugging, root cause,
traced, postmortem, found the cause...), else a *solution* when it names one
(fixed, resolved, workaround, had to, rolled back, pinned, refreshed,
restarted, upgraded...), else a *problem* when it names one (error, failed,
bug, broke, choked, mismatch, stuck, denied...) or contains the query. A
record's problem is its first problem clause containing the query (else its
first problem clause, else its first clause containing the query); its steps
are its investigation and solution clauses.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from sealroom.computations import _redact, columns
from sealroom.computations.base import Computation, Footprint, PrivacyContext, Released
from sealroom.computations.column_uses import ColumnUse
from sealroom.policy import separation

__all__ = [
    "COMPUTATION",
    "Pattern",
    "PatternSearchOutput",
    "PatternSearchParams",
    "Redaction",
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
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PatternSearchParams(_Model):
    query: Annotated[str, Field(min_length=2, max_length=200)]
    """Text to search for (2..200 characters)."""
    text_column: Annotated[str, Field(min_length=1, max_length=200)] = "text"
    """Text column searched."""
    max_patterns: Annotated[int, Field(ge=1, le=MAX_PATTERNS)] = 20
    """Most patterns to return."""


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


class Redaction(_Model):
    best_effort: Literal[True] = True
    note: str = (
        "best effort: only the classes listed are redacted, by pattern and checksum detectors; "
        "names and other free text that no detector recognises are not"
    )
    classes: tuple[str, ...] = _redact.CLASSES


class PatternSearchOutput(_Model):
    query: str
    # Entities whose redacted records contain the query, rounded down to a multiple of
    # counts_rounded_to (0: fewer than k); None: withheld, as it stands on nearly the
    # same entities as a released pattern.
    matched: Annotated[int, Field(ge=0)] | None
    patterns: tuple[Pattern, ...]
    counts_rounded_to: Annotated[int, Field(ge=1)]
    redaction: Redaction


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def clauses(text: str) -> list[str]:
    """The normalised clauses of one (already redacted) record, in order, empty ones dropped."""
    out = []
    for raw in _CLAUSE_BREAK.split(text):
        clause = raw.strip()
        while True:
            stripped = _FILLER.sub("", clause, count=1)
            if stripped == clause:
                break
            clause = stripped
        clause = _normalise(clause).rstrip(".!?:, ")
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


def _coarse(n: int, k: int) -> int:
    return n - n % k


def run(
    inputs: Sequence[pa.Table], params: PatternSearchParams, privacy: PrivacyContext
) -> Released:
    (table,) = inputs
    k = privacy.k[0]
    texts = columns.text_values(
        table, params.text_column, input_name="log", privacy=privacy, index=0
    )
    entities = columns.entity_values(table, privacy.entity_columns[0], input_name="log")
    # Everything below reads redacted text only: no query can probe what was redacted.
    redacted = [None if t is None else _redact.redact(t) for t in texts]
    del texts
    query = _normalise(params.query)
    matched: set[Hashable] = set()
    by_problem: dict[str, set[Hashable]] = defaultdict(set)
    steps: dict[tuple[str, str, str], set[Hashable]] = defaultdict(set)
    for i, text in enumerate(redacted):
        entity = i if entities is None else entities[i]
        if text is None or entity is None or query not in _normalise(text):
            continue
        matched.add(entity)
        problem, investigations, solutions = _record_pattern(text, query)
        if problem is None:
            continue
        by_problem[problem].add(entity)
        for step in investigations:
            steps[(problem, "investigation", step)].add(entity)
        for step in solutions:
            steps[(problem, "solution", step)].add(entity)
    redaction = Redaction()
    if len(matched) < k:
        output = PatternSearchOutput(
            query=params.query, matched=0, patterns=(), counts_rounded_to=k, redaction=redaction
        )
        return Released(output, Footprint(cells=((),)))
    limit = params.max_patterns
    if privacy.max_output_rows is not None:
        limit = min(limit, privacy.max_output_rows)
    separated = separation.Separated(k)
    cells: list[frozenset[Hashable]] = []

    def release(members: set[Hashable]) -> bool:
        if len(members) < k or not separated.admit(members):
            return False
        cells.append(frozenset(members))
        return True

    def released_steps(problem: str, kind: str) -> tuple[Step, ...]:
        found = sorted(
            ((s, e) for (p, kd, s), e in steps.items() if p == problem and kd == kind),
            key=lambda item: (-_coarse(len(item[1]), k), item[0]),
        )
        return tuple(Step(text=s, count=_coarse(len(e), k)) for s, e in found if release(e))

    ranked = sorted(by_problem.items(), key=lambda item: (-_coarse(len(item[1]), k), item[0]))
    patterns: list[Pattern] = []
    for problem, members in ranked:
        if len(patterns) >= limit:
            break
        if release(members):
            patterns.append(
                Pattern(
                    problem=problem,
                    count=_coarse(len(members), k),
                    investigations=released_steps(problem, "investigation"),
                    solutions=released_steps(problem, "solution"),
                )
            )
    output = PatternSearchOutput(
        query=params.query,
        matched=_coarse(len(matched), k) if release(matched) else None,
        patterns=tuple(patterns),
        counts_rounded_to=k,
        redaction=redaction,
    )
    return Released(output, Footprint(cells=(tuple(cells),)))


def _columns(params: PatternSearchParams, n_inputs: int) -> tuple[ColumnUse, ...]:
    """The columns the request names (checked against the schemas before any row is read)."""
    return (ColumnUse(params.text_column, "text", "text_column"),)


COMPUTATION = Computation(
    id="pattern-search",
    version="2.2.0",
    summary=(
        "Records of a text log whose redacted text matches a query, summarised as recurring "
        "problem -> investigation -> solution patterns with entity counts rounded down to a "
        "multiple of k; keys, secrets, cards, phone numbers, national ids, addresses, hosts, "
        "paths and identifiers are redacted (best effort) before anything reads the text, and "
        "only clauses written identically by at least k entities are released."
    ),
    privacy_class="content",
    release="requester",
    input_names=("log",),
    params=PatternSearchParams,
    output=PatternSearchOutput,
    run_fn=run,
    columns_fn=_columns,
    modules=(sys.modules[__name__], _redact, columns, separation),
)
