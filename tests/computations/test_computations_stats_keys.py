"""The vectorised key helpers of ``_stats`` agree with their simple per-row definitions."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.computations import _stats

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SMALL_INT = st.integers(min_value=-50, max_value=50)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6).map(float),
    st.sampled_from([0.0, -0.0, 1.5, -2.5]),
)
TEXT = st.text(alphabet=" \t\u00a0\u30000123abc-", max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(INT64, min_size=1, max_size=60, unique=True))
def test_str_order_of_ints_is_python_string_order(values: list[int]) -> None:
    arr = np.array(values, dtype=np.int64)
    order = _stats._str_order_of_ints(arr)
    assert [str(v) for v in arr[order]] == sorted(str(v) for v in values)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), FLOATS), max_size=40))
def test_key_array_floats_follow_the_per_cell_rule(cells: list[float | None]) -> None:
    table = pa.table({"k": pa.array(cells, pa.float64())})
    assert _stats.key_array(table, "k", input_name="t").to_pylist() == [
        _stats._key(v) for v in cells
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=40))
def test_key_array_strings_follow_the_per_cell_rule(cells: list[str | None]) -> None:
    table = pa.table({"k": pa.array(cells, pa.string())})
    assert _stats.key_array(table, "k", input_name="t").to_pylist() == [
        _stats._key(v) for v in cells
    ]


def _same_partition(codes: list[int], keys: list[str | None]) -> None:
    """Two cells share a code exactly when they share a (non-null) key; null keys are -1."""
    by_code: dict[int, str | None] = {}
    for code, key in zip(codes, keys, strict=True):
        if key is None:
            assert code == -1
            continue
        assert code >= 0
        assert by_code.setdefault(code, key) == key
    assert len(by_code) == len({k for k in keys if k is not None})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), SMALL_INT), max_size=30),
    st.lists(st.one_of(st.none(), SMALL_INT), max_size=30),
    st.booleans(),
)
def test_encode_keys_integer_columns(a: list[int | None], b: list[int | None], wide: bool) -> None:
    if wide:  # outside the lookup-table range: the hashing path
        a = [None if v is None else v * 10**15 for v in a]
    ta, tb = pa.table({"id": pa.array(a, pa.int64())}), pa.table({"id": pa.array(b, pa.int32())})
    (ca, cb), space = _stats.encode_keys([(ta, "id", "a"), (tb, "id", "b")])
    keys = [_stats._key(v) for v in [*a, *b]]
    codes = [*ca.tolist(), *cb.tolist()]
    _same_partition(codes, keys)
    assert space.ints is not None
    assert space.size == len(space.ints)
    for code, key in zip(codes, keys, strict=True):
        if key is not None:
            assert str(int(space.ints[code])) == key
    present = np.unique(np.array([c for c in codes if c >= 0], dtype=np.int64))
    ordered = space.in_str_order(present)
    assert [str(int(space.ints[c])) for c in ordered] == sorted(
        str(int(space.ints[c])) for c in present
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.none(), FLOATS), max_size=30),
    st.lists(st.one_of(st.none(), TEXT, SMALL_INT.map(str)), max_size=30),
)
def test_encode_values_matches_key_strings(a: list[float | None], b: list[str | None]) -> None:
    ta, tb = pa.table({"k": pa.array(a, pa.float64())}), pa.table({"k": pa.array(b, pa.string())})
    (ca, cb), dictionary = _stats.encode_values([(ta, "k", "a"), (tb, "k", "b")])
    keys = [_stats._key(v) for v in [*a, *b]]
    codes = [*ca.tolist(), *cb.tolist()]
    _same_partition(codes, keys)
    labels = dictionary.to_pylist()
    for code, key in zip(codes, keys, strict=True):
        if key is not None:
            assert labels[code] == key
    # mixed types still go through the same code space as encode_keys
    (ka, kb), space = _stats.encode_keys([(ta, "k", "a"), (tb, "k", "b")])
    _same_partition([*ka.tolist(), *kb.tolist()], keys)
    assert space.strings is not None


def test_negative_zero_and_integral_float_share_a_key_with_the_integer_string() -> None:
    ta = pa.table({"k": pa.array([0.0, -0.0, 17.0, math.nan], pa.float64())})
    tb = pa.table({"k": pa.array(["0", " 17 ", ""], pa.string())})
    (ca, cb), _ = _stats.encode_values([(ta, "k", "a"), (tb, "k", "b")])
    assert ca[0] == ca[1] == cb[0]
    assert ca[2] == cb[1]
    assert ca[3] == -1
    assert cb[2] == -1
