"""Input columns of the text computations: the checks they need, and the terms their entities use."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import pyarrow as pa

from sealroom import terms
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.privacy import PrivacyContext
from sealroom.policy.separation import Separated

__all__ = ["Topics", "entity_values", "term_entities", "text_values", "topics"]


def text_values(
    table: pa.Table,
    column: str,
    *,
    input_name: str,
    privacy: PrivacyContext | None = None,
    index: int = 0,
) -> list[str | None]:
    """The values of a string column, or :class:`InvalidInput` naming the input and column.

    With ``privacy``, a column the owner's policy keeps ``never_output`` or ``join_only``
    (input ``index``) is refused under that rule: its words would leave as terms or clauses.
    """
    if privacy is not None:
        for rule, kept in (
            ("never-output", privacy.never_output[index]),
            ("join-only", privacy.join_only[index]),
        ):
            if column in kept:
                raise PolicyDenied(
                    f"rule {rule}: input {input_name!r} column {column!r} is {rule} in its "
                    "owner's policy, and a text computation releases its words",
                    rule=rule,
                )
    if column not in table.column_names:
        names = ", ".join(table.column_names) or "none"
        raise InvalidInput(f"input {input_name!r} has no column {column!r} (columns: {names})")
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InvalidInput(
            f"input {input_name!r} column {column!r} is {col.type}, a text computation needs string"
        )
    values: list[str | None] = col.to_pylist()
    return values


def entity_values(
    table: pa.Table, column: str | None, *, input_name: str
) -> list[Hashable | None] | None:
    """Each record's entity (the values of the policy's entity column), or None when the
    policy names none and every record is its own entity."""
    if column is None:
        return None
    if column not in table.column_names:
        raise InvalidInput(f"input {input_name!r} has no entity column {column!r}")
    col = table.column(column)
    if pa.types.is_nested(col.type):
        raise InvalidInput(f"input {input_name!r} entity column {column!r} is {col.type}")
    values: list[Hashable | None] = col.to_pylist()
    return values


def term_entities(
    table: pa.Table, column: str, *, input_name: str, privacy: PrivacyContext, index: int
) -> terms.TermEntities:
    """The distinct entities (of input ``index``'s entity column) that use each term of
    ``column``, after the policy's column rules."""
    texts = text_values(table, column, input_name=input_name, privacy=privacy, index=index)
    entities = entity_values(table, privacy.entity_columns[index], input_name=input_name)
    return terms.term_entities(texts, entities)


@dataclass(frozen=True, slots=True)
class Topics:
    """One input's terms and its listed topics: at least ``k`` entities each, ranked, and
    separated (``separated`` holds their entity sets, for any count released beside them)."""

    used: terms.TermEntities
    k: int
    listed: tuple[terms.Topic, ...]
    separated: Separated

    def passes(self, term: str) -> bool:
        return self.used.count(term) >= self.k


def topics(
    table: pa.Table,
    column: str,
    *,
    input_name: str,
    privacy: PrivacyContext,
    index: int,
    top: int,
) -> Topics:
    """The ``top`` topics of input ``index`` under its policy's k, entity column and column rules."""
    used = term_entities(table, column, input_name=input_name, privacy=privacy, index=index)
    k = privacy.k[index]
    separated = Separated(k)
    listed = terms.select_topics(
        used.counts(), min_count=k, top=top, admit=lambda t: separated.admit(used.members[t])
    )
    return Topics(used, k, tuple(listed), separated)
