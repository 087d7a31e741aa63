"""Access to input columns with the checks every text computation needs."""

from __future__ import annotations

from collections.abc import Hashable

import pyarrow as pa

from sealroom import terms
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.policy.privacy import PrivacyContext

__all__ = ["entity_values", "term_entities", "text_values"]


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
