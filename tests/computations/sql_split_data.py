"""Grunfeld investment data (statsmodels, bundled offline) split by columns across parties."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import statsmodels.api as sm

# Every input joins on (firm, year); firm is the entity (11 firms x 20 years).
SQL_RULES: dict[str, Any] = {
    "aggregations": [
        "count",
        "count_distinct",
        "sum",
        "avg",
        "min",
        "max",
        "stddev",
        "median",
        "quantile",
    ],
    "aggregate_columns": ["invest", "value", "capital"],
    "dimension_columns": ["year", "decade"],
    "filter_columns": ["value", "year"],
    "join_columns": ["firm", "year"],
    "identity_columns": ["firm"],
}


def grunfeld() -> pd.DataFrame:
    df = sm.datasets.grunfeld.load_pandas().data.copy()
    df["year"] = df["year"].astype("int64")
    df["firm"] = df["firm"].astype(str)
    df["decade"] = (df["year"] // 10 * 10).astype("int64")
    return df


def split_by_columns(df: pd.DataFrame) -> list[pa.Table]:
    """Party a holds investment, b the firm value, c the capital stock; keys everywhere."""
    parts = (["invest", "decade"], ["value"], ["capital"])
    return [
        pa.Table.from_pandas(df[["firm", "year", *cols]], preserve_index=False) for cols in parts
    ]
