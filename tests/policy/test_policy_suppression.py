"""Suppression counts distinct entities, and totals come from released groups only."""

from __future__ import annotations

import pyarrow as pa
import pytest
import statsmodels.api as sm

from sealroom.errors import InvalidInput
from sealroom.policy.suppression import entity_counts, suppress


def test_k_minus_one_entities_with_many_rows_are_suppressed() -> None:
    k = 5
    # Group "rare": 4 people, 1000 rows each. Group "common": 5 people, 1 row each.
    rows = [("rare", f"p{i}") for i in range(k - 1) for _ in range(1000)]
    rows += [("common", f"q{i}") for i in range(k)]
    table = pa.table({"g": [r[0] for r in rows], "person": [r[1] for r in rows]})
    ents = entity_counts(table, by=["g"], entity_column="person")
    assert ents == {("rare",): 4, ("common",): 5}
    sums = {("rare",): 4000, ("common",): 5}
    out = suppress(sums, entities=ents, k=k)
    assert out.released == {("common",): 5}
    assert out.suppressed_groups == 1
    # Without an entity column, rows count, and the rare group would pass.
    rows_counts = entity_counts(table, by=["g"], entity_column=None)
    assert rows_counts[("rare",)] == 4000


def test_totals_over_released_groups_only() -> None:
    # Real data: statsmodels' Fair affairs survey, grouped by occupation.
    df = sm.datasets.fair.load_pandas().data
    df = df.assign(person=range(len(df)))
    table = pa.Table.from_pandas(df, preserve_index=False)
    ents = entity_counts(table, by=["occupation"], entity_column="person")
    truth = df.groupby("occupation").size()
    assert {k[0]: v for k, v in ents.items()} == truth.to_dict()
    k = int(truth.sort_values().iloc[1])  # at least the smallest group falls below k
    out = suppress({key: n for key, n in ents.items()}, entities=ents, k=k + 1)
    assert out.suppressed_groups >= 2
    released_total = sum(out.released.values())
    expected = int(truth[truth >= k + 1].sum())
    assert released_total == expected
    # The released total is NOT the grand total: subtraction recovers nothing.
    assert released_total < len(df)


def test_null_entities_do_not_count_and_missing_counts_fail_closed() -> None:
    table = pa.table({"g": ["a", "a", "a"], "person": [None, None, "x"]})
    assert entity_counts(table, by=["g"], entity_column="person") == {("a",): 1}
    out = suppress({("a",): 1, ("b",): 2}, entities={("a",): 10}, k=2)
    assert out.released == {("a",): 1}
    assert out.suppressed_groups == 1


def test_no_grouping_and_errors() -> None:
    empty = pa.table({"person": pa.array([], pa.string())})
    assert entity_counts(empty, by=[], entity_column="person") == {(): 0}
    with pytest.raises(InvalidInput, match="'nope'"):
        entity_counts(empty, by=["nope"], entity_column=None)
    with pytest.raises(InvalidInput, match="k must"):
        suppress({}, entities={}, k=0)
