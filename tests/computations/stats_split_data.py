"""Real public data (statsmodels' bundled datasets) split between parties for the stats tests.

The datasets have no identifiers, so ``id`` is invented
as the row number ("invent ids by row number"): a vertical split gives each
party some columns of the same rows, keyed by that id; a horizontal split gives
each party some rows with all columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import statsmodels.api as sm


@cache
def frame(name: str) -> pd.DataFrame:
    """The dataset with an ``id`` column = row number (0..n-1)."""
    data: pd.DataFrame = getattr(sm.datasets, name).load_pandas().data.copy()
    data.insert(0, "id", np.arange(len(data), dtype=np.int64))
    return data


def columns_of(name: str, cols: Sequence[str], *, rows: Sequence[int] | None = None) -> pa.Table:
    """A vertical share: ``id`` plus ``cols`` (optionally only some rows)."""
    df = frame(name)
    if rows is not None:
        df = df.iloc[list(rows)]
    return pa.Table.from_pandas(df[["id", *cols]], preserve_index=False)


def row_shares(name: str, parties: int, *, cols: Sequence[str] | None = None) -> list[pa.Table]:
    """A horizontal split: rows dealt round-robin to ``parties`` parties (row i to party i % n)."""
    df = frame(name)
    if cols is not None:
        df = df[["id", *cols]]
    return [pa.Table.from_pandas(df.iloc[p::parties], preserve_index=False) for p in range(parties)]


def with_row(table: pa.Table, row: dict[str, object]) -> pa.Table:
    """``table`` plus one row (cells cast to the table's types where Arrow can)."""
    extra = pa.table({name: [row.get(name)] for name in table.column_names})
    return pa.concat_tables([table, extra.cast(table.schema)], promote_options="default")


def as_strings(table: pa.Table, col: str) -> pa.Table:
    """``table`` with ``col`` turned into strings (for poison cells that are not numbers)."""
    values = [None if v is None else repr(v) for v in table.column(col).to_pylist()]
    return table.set_column(table.column_names.index(col), col, pa.array(values, pa.string()))
