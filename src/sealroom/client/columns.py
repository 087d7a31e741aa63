"""A party's own columns as protocol inputs: named, present, and of the kind a protocol needs.

Shared by the CLI's protocol commands and a room's protocol runs, so both refuse the same
bad input with the same message before any session opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sealroom.errors import InvalidInput

if TYPE_CHECKING:  # pyarrow and numpy load only when a party runs a protocol
    import numpy as np
    import pyarrow as pa

__all__ = ["column", "training_arrays"]


def column(table: pa.Table, name: str) -> list[Any]:
    """The values of column ``name``; a missing column names the ones there are."""
    if name not in table.column_names:
        raise InvalidInput(f"no column {name!r} (columns: {', '.join(table.column_names)})")
    values: list[Any] = table.column(name).to_pylist()
    return values


def training_arrays(
    table: pa.Table, *, features: Sequence[str], label: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The feature matrix and label vector; every cell present and numeric (booleans are 1/0)."""
    import numpy as np

    columns = []
    for name in (*features, label):
        values = column(table, name)
        if any(v is None for v in values):
            raise InvalidInput(f"column {name!r} has empty cells; fill or drop them first")
        if not all(isinstance(v, int | float) and not isinstance(v, str) for v in values):
            raise InvalidInput(f"column {name!r} must be numeric (true/false count as 1/0)")
        columns.append(np.asarray(values, dtype=np.float64))
    x = np.column_stack(columns[:-1]) if features else np.zeros((table.num_rows, 0))
    return x, columns[-1]
