"""Real public data (statsmodels' bundled datasets) split between parties, for the model tests."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import statsmodels.api as sm


@cache
def frame(name: str) -> pd.DataFrame:
    """A bundled statsmodels dataset with a synthetic integer ``id`` per row."""
    data: pd.DataFrame = getattr(sm.datasets, name).load_pandas().data.copy()
    data.insert(0, "id", np.arange(len(data), dtype=np.int64) * 7 + 1000)
    return data


def by_columns(
    data: pd.DataFrame, groups: Sequence[Sequence[str]], *, shuffle_seed: int = 1
) -> list[pa.Table]:
    """A vertical split: each party gets ``id`` plus its columns, rows in its own order."""
    rng = np.random.default_rng(shuffle_seed)
    out = []
    for cols in groups:
        part = data[["id", *cols]].iloc[rng.permutation(len(data))]
        out.append(pa.Table.from_pandas(part, preserve_index=False))
    return out


def by_rows(data: pd.DataFrame, parties: int) -> list[pa.Table]:
    """A horizontal split: contiguous row blocks, one per party, all columns."""
    blocks = np.array_split(np.arange(len(data)), parties)
    return [pa.Table.from_pandas(data.iloc[b], preserve_index=False) for b in blocks]
