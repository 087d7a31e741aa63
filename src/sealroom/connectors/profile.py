"""Local profiling: the dataset card an owner may disclose, computed on the owner's machine.

The card uses the same term extraction and ranking as the computations
(:func:`sealroom.terms.select_topics`), so the keywords others see
are the topics a computation would find, in the same order (record count x
specificity: multi-word, domain-specific terms first), each with its true record
count. Only terms in at least ``k`` records are listed (the same threshold a
computation's output obeys); everything else stays local. ``topics`` are the
multi-word keywords: the card's subject areas; ``primary_focus`` and
``expertise`` are the first of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sealroom import terms
from sealroom.errors import InvalidInput
from sealroom.policy.privacy import DEFAULT_K
from sealroom.statements.models import Column, DatasetProfile, Keyword, TimeRange

__all__ = ["DatasetCard", "attestation_fields", "profile_table"]

MAX_TOPICS = 10
MAX_EXPERTISE = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetCard:
    keywords: tuple[tuple[str, int], ...]
    topics: tuple[str, ...]
    profile: DatasetProfile
    time_range: tuple[int, int] | None
    schema: tuple[tuple[str, str], ...]
    row_count: int


def _distinct_count(table: pa.Table, column: str) -> int | None:
    if column not in table.column_names:
        return None
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return None
    return int(pc.count_distinct(col, mode="only_valid").as_py())


def _seconds(table: pa.Table, column: str) -> pa.ChunkedArray | None:
    if column not in table.column_names:
        return None
    col = table.column(column)
    if not pa.types.is_timestamp(col.type):
        return None
    return pc.cast(col.cast(pa.timestamp("s", tz="UTC")), pa.int64())


def profile_table(
    table: pa.Table,
    *,
    text_column: str = "text",
    time_column: str = "ts",
    project_column: str = "project",
    k: int = DEFAULT_K,
    max_keywords: int = 30,
) -> DatasetCard:
    """The card of ``table``: thresholded keywords, topics, volume and focus."""
    if k < 1:
        raise InvalidInput("profile threshold k must be at least 1")
    if max_keywords < 0:
        raise InvalidInput("max_keywords must not be negative")
    keywords: tuple[tuple[str, int], ...] = ()
    topics: tuple[str, ...] = ()
    if text_column in table.column_names:
        col = table.column(text_column)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise InvalidInput(f"text column {text_column!r} is {col.type}, not string")
        freq = terms.record_frequencies(col.to_pylist())
        ranked = terms.select_topics(freq, min_count=k, top=None)
        ranked = [t for t in ranked if len(t.term) <= 100]
        keywords = tuple((t.term, t.count) for t in ranked[:max_keywords])
        multi = [t.term for t in ranked if " " in t.term]
        topics = tuple(multi[:MAX_TOPICS])
    seconds = _seconds(table, time_column)
    time_range: tuple[int, int] | None = None
    active_days: int | None = None
    if seconds is not None:
        lo, hi = pc.min_max(seconds).values()
        if lo.is_valid and hi.is_valid:
            time_range = (int(lo.as_py()), int(hi.as_py()))
        days = pc.divide(seconds, 86400)  # integer division on int64 floors for t >= 0
        active_days = int(pc.count_distinct(days, mode="only_valid").as_py())
    focus_terms = topics or tuple(term for term, _ in keywords)
    profile = DatasetProfile(
        projects=_distinct_count(table, project_column),
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
