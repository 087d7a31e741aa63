"""The fast paths of the key helpers give the same answers as the general rules."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.computations import PrivacyContext, _stats, default_registry
from sealroom.errors import PolicyDenied


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**17 - 1), min_size=1, max_size=60, unique=True)
)
def test_str_order_of_small_non_negative_ints_is_python_string_order(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    order = _stats._str_order_of_ints(arr)
    assert [str(v) for v in arr[order]] == sorted(str(v) for v in values)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-1, max_value=12),
            st.one_of(st.just(math.nan), st.floats(-1e6, 1e6)),
        ),
        max_size=30,
    ),
    st.sampled_from(["sum", "mean", "count", "max", "min"]),
)
def test_group_values_matches_per_key(rows: list[tuple[int, float]], agg: _stats.Agg) -> None:
    codes = np.array([c for c, _ in rows], dtype=np.int64)
    values = np.array([v for _, v in rows], dtype=np.float64)
    present, out, used = _stats.group_values(codes, values, agg, 13)
    want, rows_by_key = _stats.per_key([None if c < 0 else str(c) for c in codes], values, agg)
    assert sorted(rows_by_key) == sorted(str(c) for c in np.flatnonzero(present))
    for key, value in want.items():
        assert out[int(key)] == value
    assert sorted(i for r in rows_by_key.values() for i in r) == np.flatnonzero(used).tolist()


def test_entity_is_identifier_threshold_is_the_joined_identifiers() -> None:
    """With the identifier as entity column, k counts joined identifiers (null keys never)."""
    a = pa.table({"id": pa.array([1, 2, 3, 4, 5, 6, None, 9], pa.int64())})
    b = pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5, 6, None, 7, 6], pa.int64()),
            "v": [1.0, 2.0, 3.0, 4.0, math.nan, 6.0, 8.0, 9.0, 1.0],
            "flag": [True, False, True, False, True, False, True, True, False],
        }
    )
    a = a.append_column("s", pa.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]))
    reg = default_registry()
    isum = reg.get("intersection-sum")
    params = isum.parse_params({"value": "v", "value_bounds": ["0", "10"]})
    ok = isum.run((a, b), params, PrivacyContext(k=(3, 3), entity_columns=("id", "id")))
    assert ok.overlap == 5
    with pytest.raises(PolicyDenied):
        isum.run((a, b), params, PrivacyContext(k=(3, 6), entity_columns=("id", "id")))
    assoc = reg.get("association-test")
    ap = assoc.parse_params({"signal": "s", "signal_bounds": ["0", "10"], "outcome": "flag"})
    got = assoc.run((a, b), ap, PrivacyContext(k=(1, 1), entity_columns=("id", "id")))
    assert got.n == 6
    with pytest.raises(PolicyDenied):
        assoc.run((a, b), ap, PrivacyContext(k=(7, 1), entity_columns=("id", "id")))
