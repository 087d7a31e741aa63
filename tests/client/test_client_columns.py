"""A party's columns as protocol inputs: the same refusals for the CLI and for room runs."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sealroom.client.columns import column, training_arrays
from sealroom.errors import InvalidInput

TABLE = pa.table({"x": [0.5, 1.0, 2.0], "flag": [True, False, True], "y": [1, 0, 1]})


def test_training_arrays_are_the_feature_matrix_and_the_labels() -> None:
    x, y = training_arrays(TABLE, features=["x", "flag"], label="y")
    assert x.tolist() == [[0.5, 1.0], [1.0, 0.0], [2.0, 1.0]]
    assert y.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (pa.table({"x": ["a", "b"], "y": [1, 0]}), "'x' must be numeric"),
        (pa.table({"x": [1.0, None], "y": [1, 0]}), "'x' has empty cells"),
        (pa.table({"z": [1.0, 2.0], "y": [1, 0]}), r"no column 'x' \(columns: z, y\)"),
    ],
)
def test_bad_training_columns_are_refused_by_name(table: pa.Table, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        training_arrays(table, features=["x"], label="y")


def test_a_missing_column_names_the_ones_there_are() -> None:
    with pytest.raises(InvalidInput, match=r"no column 'id' \(columns: x, flag, y\)"):
        column(TABLE, "id")
