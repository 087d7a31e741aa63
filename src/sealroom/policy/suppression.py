"""Small-group suppression: release a group only if at least ``k`` distinct entities are in it.

``k`` counts DISTINCT entities (values of the policy's entity column), not rows,
so one person with many records cannot lift a group over the threshold. With no
entity column declared, every row is its own entity.

The totals rule: any total or overall statistic released next to groups MUST
be computed over the RELEASED groups only, never as "grand total minus what is
shown", and never as a separately released grand total over all rows. Otherwise
a suppressed group could be rebuilt by subtraction. :func:`suppress` returns the
released groups; compute totals from ``Suppressed.released``.

Groups whose key contains a null are treated like any other group (the null is
part of the key); they are suppressed by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa

from sealroom.errors import InvalidInput

__all__ = ["Suppressed", "entity_counts", "suppress"]

T = TypeVar("T")


def _column(table: pa.Table, name: str) -> list[object]:
    if name not in table.column_names:
        raise InvalidInput(f"column {name!r} is not in the input")
    values: list[object] = table.column(name).to_pylist()
    return values


def entity_counts(
    table: pa.Table, *, by: Sequence[str], entity_column: str | None
) -> dict[tuple[object, ...], int]:
    """Distinct entities per group of ``by`` (rows when ``entity_column`` is None).

    With ``by`` empty there is one group, the empty tuple (present even for an
    empty table, with count 0).
    """
    keys = [_column(table, c) for c in by]
    n = table.num_rows
    if entity_column is None:
        counts: dict[tuple[object, ...], int] = {}
        for i in range(n):
            key = tuple(col[i] for col in keys)
            counts[key] = counts.get(key, 0) + 1
    else:
        ent = _column(table, entity_column)
        seen: dict[tuple[object, ...], set[object]] = {}
        for i in range(n):
            key = tuple(col[i] for col in keys)
            # A null entity is not an identified entity; it cannot lift a group over k.
            if ent[i] is None:
                seen.setdefault(key, set())
                continue
            seen.setdefault(key, set()).add(ent[i])
        counts = {key: len(members) for key, members in seen.items()}
    if not by and () not in counts:
        counts[()] = 0
    return counts


@dataclass(frozen=True, slots=True)
class Suppressed(Generic[T]):
    """The groups that may be released and how many were withheld."""

    released: dict[tuple[object, ...], T]
    suppressed_groups: int


def suppress(
    groups: Mapping[tuple[object, ...], T],
    *,
    entities: Mapping[tuple[object, ...], int],
    k: int,
) -> Suppressed[T]:
    """Keep the groups with at least ``k`` distinct entities; a group with no entity
    count is suppressed (fail closed)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be an integer of at least 1, got {k!r}")
    released: dict[tuple[object, ...], T] = {}
    withheld = 0
    for key, value in groups.items():
        if entities.get(key, 0) >= k:
            released[key] = value
        else:
            withheld += 1
    return Suppressed(released=released, suppressed_groups=withheld)
