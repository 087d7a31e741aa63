"""Local profiling: the dataset card an owner may disclose, computed on the owner's machine.

The card is public and stays in the transparency log for good, so it obeys the
same rules as a computation's output on the same data, under the owner's own
policy:

* **Entities, not records.** A keyword is listed only when at least ``k``
  distinct entities use it (``k`` and the entity column are the policy's;
  without an entity column every record is an entity, and without a policy ``k``
  is :data:`~sealroom.policy.privacy.DEFAULT_K`). Its count is its number of
  entities. A record with a null entity counts for nothing.
* **The computations' terms.** Extraction and ranking are the computations'
  (:func:`sealroom.terms.select_topics`: entity count x specificity,
  multi-word, domain-specific terms first), so the keywords others see are the
  topics a computation would find, with their counts; and, like a computation's
  release, no two listed counts stand on entity sets that differ by 1 to
  ``k - 1`` entities (:class:`sealroom.policy.separation.Separated`).
* **The owner decides.** ``drop_terms`` removes terms (and every term that
  contains one as whole words) before anything is ranked; the client shows the
  exact card before it is signed (``sealroom dataset publish --dry-run``).
* **Coarse dates.** The time range is given in whole UTC days, and volume as
  counts of records, active days and projects.

Residual leakage: the card has no history to check against, so the cards of two
versions of a dataset that differ by a few entities can be subtracted (counts,
and terms that cross k); the owner publishes each, after seeing it.

``topics`` are the multi-word keywords: the card's subject areas;
``primary_focus`` and ``expertise`` are the first of them. Which columns hold
the text, the time and the project is the owner's to say; by default ``text``,
``ts`` and ``project`` when the file has them with the right type.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sealroom import terms
from sealroom.errors import InvalidInput
from sealroom.policy.privacy import DEFAULT_K
from sealroom.policy.separation import Separated
from sealroom.statements.models import Column, DatasetProfile, Keyword, TimeRange

__all__ = ["CardColumns", "DatasetCard", "attestation_fields", "profile_table"]

MAX_TOPICS = 10
MAX_EXPERTISE = 5
DAY = 86_400


@dataclass(frozen=True, slots=True)
class CardColumns:
    """The columns a card was built from (None: not used)."""

    text: str | None
    time: str | None
    project: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetCard:
    keywords: tuple[tuple[str, int], ...]
    topics: tuple[str, ...]
    profile: DatasetProfile
    time_range: tuple[int, int] | None
    schema: tuple[tuple[str, str], ...]
    row_count: int
    # How it was built: the threshold and entity column, the columns, the terms dropped.
    k: int
    entity_column: str | None
    columns: CardColumns
    dropped: tuple[str, ...]


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _column(
    table: pa.Table,
    given: str | None,
    *,
    default: str,
    what: str,
    fits: Callable[[pa.DataType], bool],
    kind: str,
) -> str | None:
    """``given`` (which must exist and fit), "" for none, or None for ``default`` when present
    (a default text column must fit; a default time or project column that does not is
    left out)."""
    if given == "":
        return None
    if given is None:
        if default not in table.column_names:
            return None
        if what != "text" and not fits(table.column(default).type):
            return None
        given = default
    elif given not in table.column_names:
        names = ", ".join(table.column_names) or "none"
        raise InvalidInput(f"the {what} column {given!r} is not in the file (columns: {names})")
    if not fits(table.column(given).type):
        raise InvalidInput(f"the {what} column {given!r} is {table.column(given).type}, not {kind}")
    return given


def _dropped(term: str, drops: Collection[tuple[str, ...]]) -> bool:
    words = terms.term_words(term)
    return any(words[i : i + len(d)] == d for d in drops for i in range(len(words) - len(d) + 1))


def _entities(table: pa.Table, column: str | None) -> list[Hashable | None] | None:
    if column is None:
        return None
    if column not in table.column_names:
        raise InvalidInput(f"the policy's entity column {column!r} is not in the file")
    if pa.types.is_nested(table.column(column).type):
        raise InvalidInput(f"the entity column {column!r} is {table.column(column).type}")
    values: list[Hashable | None] = table.column(column).to_pylist()
    return values


def profile_table(
    table: pa.Table,
    *,
    text_column: str | None = None,
    time_column: str | None = None,
    project_column: str | None = None,
    k: int = DEFAULT_K,
    entity_column: str | None = None,
    drop_terms: Collection[str] = (),
    max_keywords: int = 30,
) -> DatasetCard:
    """The card of ``table``: keywords of at least ``k`` entities, topics, volume and focus.

    A column argument names a column that must exist with the right type; "" leaves
    that part of the card out; None takes ``text``, ``ts`` or ``project`` when present.
    """
    if isinstance(k, bool) or k < 1:
        raise InvalidInput("profile threshold k must be at least 1")
    if max_keywords < 0:
        raise InvalidInput("max_keywords must not be negative")
    text = _column(table, text_column, default="text", what="text", fits=_is_string, kind="string")
    time = _column(
        table,
        time_column,
        default="ts",
        what="time",
        fits=lambda t: bool(pa.types.is_timestamp(t)),
        kind="a timestamp",
    )
    project = _column(
        table, project_column, default="project", what="project", fits=_is_string, kind="string"
    )
    drops = {d for d in (tuple(w for seg in terms.tokenize(t) for w in seg) for t in drop_terms)}
    drops.discard(())
    keywords: tuple[tuple[str, int], ...] = ()
    topics: tuple[str, ...] = ()
    if text is not None:
        used = terms.term_entities(table.column(text).to_pylist(), _entities(table, entity_column))
        separated = Separated(k)
        counts = {t: c for t, c in used.counts().items() if len(t) <= 100}
        if drops:
            counts = {t: c for t, c in counts.items() if not _dropped(t, drops)}
        listed: list[terms.Topic] = []
        multi: list[str] = []
        for topic in terms.iter_topics(
            counts, min_count=k, admit=lambda t: separated.admit(used.members[t])
        ):
            listed.append(topic)
            if " " in topic.term:
                multi.append(topic.term)
            if len(listed) >= max_keywords and len(multi) >= MAX_TOPICS:
                break
        keywords = tuple((t.term, t.count) for t in listed[:max_keywords])
        topics = tuple(multi[:MAX_TOPICS])
    time_range: tuple[int, int] | None = None
    active_days: int | None = None
    if time is not None:
        seconds = pc.cast(table.column(time).cast(pa.timestamp("s", tz="UTC")), pa.int64())
        lo, hi = pc.min_max(seconds).values()
        if lo.is_valid and hi.is_valid:
            time_range = (lo.as_py() // DAY * DAY, hi.as_py() // DAY * DAY + DAY - 1)
        days = pc.divide(seconds, DAY)  # integer division on int64 floors for t >= 0
        active_days = int(pc.count_distinct(days, mode="only_valid").as_py())
    projects = None
    if project is not None:
        projects = int(pc.count_distinct(table.column(project), mode="only_valid").as_py())
    focus_terms = topics or tuple(term for term, _ in keywords)
    profile = DatasetProfile(
        projects=projects,
        active_days=active_days,
        primary_focus=focus_terms[0] if focus_terms else None,
        expertise=focus_terms[:MAX_EXPERTISE],
    )
    return DatasetCard(
        keywords=keywords,
        topics=topics,
        profile=profile,
        time_range=time_range,
        schema=tuple((f.name, str(f.type)) for f in table.schema),
        row_count=table.num_rows,
        k=k,
        entity_column=entity_column,
        columns=CardColumns(text, time, project),
        dropped=tuple(" ".join(d) for d in sorted(drops)),
    )


def attestation_fields(card: DatasetCard) -> dict[str, Any]:
    """The DatasetAttestation fields the card fills, as values the strict model accepts.

    The client adds owner, title, description, commitment, policy and created_at
    and calls ``DatasetAttestation.model_validate``.
    """
    return {
        "keywords": tuple(Keyword(term=t, count=c) for t, c in card.keywords),
        "topics": card.topics,
        "schema": tuple(Column(name=n, type=t) for n, t in card.schema),
        "row_count": card.row_count,
        "time_range": (
            None
            if card.time_range is None
            else TimeRange(start=card.time_range[0], end=card.time_range[1])
        ),
        "profile": card.profile,
    }
