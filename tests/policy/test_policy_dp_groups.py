"""Entity-level DP per group: truncation to the contribution bound, and exact privacy maps.

Every measurement is checked the OpenDP way: its privacy map, evaluated at the declared
contribution bound, equals the epsilon share it is charged (to float precision, never
more), and a measurement calibrated at a smaller bound spends more at the real one.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from sealroom.errors import InvalidInput
from sealroom.policy import dp_groups as g

SCHEMA = {"g0": pl.String(), "x": pl.Float64(), "q": pl.Int64()}
BOUNDS = (0.0, 20.0)


def stats(*percentiles: float) -> list[g.Statistic]:
    return [
        g.Statistic("n", "count"),
        g.Statistic("s", "sum", "q", g.integer_bounds(BOUNDS)),
        *(g.Statistic(f"p{a}", "quantile", "x", BOUNDS, a) for a in percentiles),
    ]


def spends(actual: float, share: float) -> None:
    """The map spends the share (to float precision) and never more."""
    assert actual <= share
    assert actual >= share * (1 - 1e-9)


def test_truncation_keeps_each_identifier_within_its_bounds() -> None:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50, 5000)
    groups = rng.integers(0, 8, 5000)
    bounds = g.Bounds(rows_per_group=2, groups=3)
    keep = g.truncate(ids, groups, bounds)
    kept = pl.DataFrame({"i": ids[keep], "g": groups[keep]})
    per_cell = kept.group_by("i", "g").len()
    assert per_cell["len"].max() == 2  # every identifier here has more than 2 rows per cell
    per_ident = kept.group_by("i").agg(pl.col("g").n_unique())
    assert per_ident["g"].max() == 3
    # An identifier over the bounds keeps exactly the bound: 2 rows in each of 3 groups.
    assert (per_ident["g"] == 3).all()
    assert len(kept) == 50 * 3 * 2


def test_truncation_keeps_an_identifier_within_bounds_whole() -> None:
    ids = np.array([1, 1, 2, 2, 2, 3], dtype=np.int64)
    groups = np.array([0, 1, 0, 0, 0, 5], dtype=np.int64)
    keep = g.truncate(ids, groups, g.Bounds(rows_per_group=3, groups=2))
    assert keep.all()
    keep = g.truncate(ids, groups, g.Bounds(rows_per_group=1, groups=1))
    assert keep.tolist().count(True) == 3  # one row of each identifier
    assert g.truncate(np.zeros(0, np.int64), np.zeros(0, np.int64), g.Bounds(1, 1)).size == 0


def test_truncation_draws_afresh() -> None:
    ids = np.zeros(100, dtype=np.int64)
    groups = np.arange(100, dtype=np.int64)
    picks = {int(np.flatnonzero(g.truncate(ids, groups, g.Bounds(1, 1)))[0]) for _ in range(20)}
    assert len(picks) > 5


@pytest.mark.parametrize(("rows", "groups"), [(1, 1), (3, 1), (2, 4)])
def test_every_statistic_spends_its_share_at_the_bound(rows: int, groups: int) -> None:
    plan = g.plan(
        schema=SCHEMA,
        labels=["g0"],
        statistics=stats(0.5, 0.25),
        bounds=g.Bounds(rows, groups),
        epsilon=Decimal(1),
        delta=Decimal("0.000001"),
    )
    share = 0.25
    assert plan.epsilon_each == Decimal("0.25")
    for name in ("n", "s", "p0.5", "p0.25"):
        spends(plan.loss_of(name), share)
    # Laplace scales at the bound: a count moves by rows x groups, a sum by that x 20.
    assert plan.scales["n"] == pytest.approx(rows * groups / share, rel=1e-12)
    step = g.step_for(BOUNDS)
    assert plan.scales["s"] * step == pytest.approx(rows * groups * 20 / share, rel=1e-12)
    epsilon, delta = plan.loss()
    spends(epsilon, 1.0)
    assert 0 < delta <= 1e-6
    assert plan.threshold is not None


def test_the_threshold_is_the_smallest_within_delta() -> None:
    plan = g.plan(
        schema=SCHEMA,
        labels=["g0"],
        statistics=stats(),
        bounds=g.Bounds(2, 2),
        epsilon=Decimal(1),
        delta=Decimal("0.000001"),
    )
    assert plan.threshold is not None
    builder = plan._builder
    count = [(plan.statistics[0], plan.scales["n"])]
    assert builder.loss(builder.make(count, plan.threshold))[1] <= 1e-6
    assert builder.loss(builder.make(count, plan.threshold - 1))[1] > 1e-6


def test_a_plan_calibrated_for_one_row_spends_more_when_three_go_in() -> None:
    one = g.plan(
        schema=SCHEMA,
        labels=[],
        statistics=stats(0.5),
        bounds=g.Bounds(1, 1),
        epsilon=Decimal(1),
        delta=Decimal(0),
    )
    spends(one.loss()[0], 1.0)
    at_three = float(one.measurement.map(g.Bounds(3, 1).d_in([])))
    assert at_three == pytest.approx(3.0, rel=1e-9)


def test_without_labels_there_is_no_partition_selection_and_no_delta() -> None:
    plan = g.plan(
        schema=SCHEMA,
        labels=[],
        statistics=stats(),
        bounds=g.Bounds(1, 1),
        epsilon=Decimal("0.5"),
        delta=Decimal(0),
    )
    assert plan.threshold is None
    assert plan.delta == 0
    assert plan.loss()[1] == 0.0
    frame = pl.DataFrame(
        {"g0": ["a"] * 3, "x": [1.0, 2.0, 3.0], "q": g.quantize(np.array([1.0, 2.0, 3.0]), BOUNDS)}
    )
    out = plan.release(frame).frame
    assert out.columns == ["n", "s"]
    assert out.height == 1


def test_sums_are_exact_integers_of_a_power_of_two_step() -> None:
    step = g.step_for((0.0, 20.0))
    assert step == 2.0**-15
    values = np.array([0.1, 3.0, 25.0, -1.0, np.nan])
    q = g.quantize(values, (0.0, 20.0))
    assert q.tolist() == [round(0.1 / step), 3 * 2**15, 20 * 2**15, 0, 0]
    assert g.integer_bounds((0.0, 20.0)) == (0.0, 20.0 * 2**15)
    assert g.integer_bounds((5.0, 20.0))[0] == 0.0  # widened to hold a missing value


def test_refusals() -> None:
    ok = {
        "schema": SCHEMA,
        "labels": ["g0"],
        "statistics": stats(),
        "bounds": g.Bounds(1, 1),
        "epsilon": Decimal(1),
        "delta": Decimal("0.000001"),
    }
    g.plan(**ok)  # type: ignore[arg-type]
    for change, message in (
        ({"delta": Decimal(0)}, "partition selection"),
        ({"epsilon": Decimal(0)}, "epsilon"),
        ({"epsilon": Decimal(101)}, "epsilon"),
        ({"statistics": stats()[1:]}, "row count"),
        ({"labels": ["n"]}, "distinct names"),
    ):
        with pytest.raises(InvalidInput, match=message):
            g.plan(**{**ok, **change})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="rows_per_group"):
        g.Bounds(0, 1)
    with pytest.raises(InvalidInput, match="groups"):
        g.Bounds(1, 10**7)
